"""The most work a spec or recipe file may ask for, checked before that work is done.

Specs come from strangers (papers, colleagues, model zoos), and `engine validate` exists to be
run on files one does not trust yet: a file must not be able to make it run for minutes or fill
the memory. Each limit has a default that every bundled model fits with room to spare, and an
environment variable that raises it for users with bigger models (`ENGINE_MAX_REPEAT=100000`).
Going over one is a located error that names the limit and that variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from engine.compiler.ir import Diagnostic, Loc


@dataclass(frozen=True)
class Limit:
    name: str  # ENGINE_MAX_<NAME upper-cased> raises it
    default: int
    what: str  # what is counted, for the message: "YAML file size (bytes)"

    @property
    def env(self) -> str:
        return f"ENGINE_MAX_{self.name.upper()}"

    def value(self) -> int:
        raw = os.environ.get(self.env, "")
        return int(raw) if raw.strip().isdigit() else self.default

    def check(self, count: int, loc: Loc | None, path: str = "") -> Diagnostic | None:
        """None when `count` is within the limit, else the error to report."""
        top = self.value()
        if count <= top:
            return None
        return Diagnostic(f"{self.what} is {count:,}, over the limit of {top:,}", loc, path,
                          f"a file should not ask for this much; if it is yours and meant, raise "
                          f"the limit: {self.env}={count}")


LIMITS = {limit.name: limit for limit in (
    Limit("file_bytes", 64 * 2**20, "the file's size (bytes)"),
    Limit("yaml_nodes", 2_000_000, "the number of YAML values after expanding aliases"),
    Limit("yaml_depth", 200, "the nesting depth of the YAML"),
    Limit("files", 512, "the number of files loaded through extends: and include:"),
    Limit("include_depth", 64, "the depth of extends: and include: chains"),
    Limit("repeat", 100_000, "a repeat count"),
    Limit("expr_chars", 20_000, "the length of an expression"),
    Limit("int_digits", 1_000, "the number of digits of an integer in an expression"),
    Limit("sequence_length", 1_000_000, "the length of a string or list made by an expression"),
    Limit("expr_steps", 100_000, "the work of one expression (the parts evaluated by each loop "
          "iteration and function call, and the list items made or read there)"),
    Limit("expr_depth", 32, "the depth of calls of `functions:` inside one another"),
    Limit("params", 4_000_000_000, "the number of parameters to allocate"),
    Limit("activation_bytes", 256 * 2**30, "the activation memory of one sample (bytes)"),
)}


def limit(name: str) -> Limit:
    return LIMITS[name]
