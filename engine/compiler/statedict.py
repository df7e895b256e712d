"""Reference weights: translate a reference implementation's state_dict keys by a spec's `rename:` map.

`rename:` maps keys of the reference (left) to the engine's (right), one rule per entry, of three
kinds:

- a plain prefix, `"features.denseblock1": "blocks.0"`: a key equal to it, or going on after it
  with `.`, gets the right side instead (`features.denseblock1.conv.weight` -> `blocks.0.conv.weight`);
- a prefix with placeholders, `"features.{i}.conv": "stage{i}.conv"`: `{name}` matches a run of
  digits (an index) and the right side writes it back, as is or shifted by a constant
  (`{i-1}`, `{i+1}`); it also ends at a `.` or the end of the key;
- a regular expression, `"re:^features\\.(\\d+)\\.": "stage\\1."`: Python's `re`, searched in the
  key, whose first match is replaced by the right side (`\\1`, `\\g<name>` for groups).

The rules are tried in the order written and the first that matches a key renames it (once: the
result is not renamed again); a key no rule matches passes unchanged. Plain prefixes keep their
old rule among themselves: where several match a key, the longest wins, whatever their order.
A rule that cannot work (a placeholder on the right that the left lacks, a bad regular
expression) is an error of `engine validate` at its entry (`rename_problem`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor, nn

REGEX = "re:"  # the prefix of a regular-expression rule
_HOLE = re.compile(r"\{([^{}]*)\}")  # a placeholder, `{i}` (left) or `{i}`, `{i+1}` (right)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OFFSET = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:([+-])\s*(\d+))?\s*")


@dataclass(frozen=True)
class RenameRule:
    """One `rename:` entry, compiled. `kind`: "prefix", "pattern" (placeholders) or "regex"."""

    left: str
    right: str
    kind: str
    regex: re.Pattern | None = None

    def apply(self, key: str) -> str | None:
        """The renamed key, or None when the rule does not match `key`."""
        if self.kind == "prefix":
            if key == self.left or key.startswith(self.left + "."):
                return self.right + key[len(self.left):]
            return None
        match = self.regex.search(key) if self.regex is not None else None
        if match is None:
            return None
        new = match.expand(self.right) if self.kind == "regex" else _fill(self.right, match, self)
        return key[:match.start()] + new + key[match.end():]


def rename_problem(left: object, right: object) -> tuple[str, str] | None:
    """(message, hint) when the rule `left: right` cannot be used, None when it can."""
    try:
        compile_rule(left, right)
    except ValueError as err:
        return str(err), _HINT
    return None


_HINT = ('write "features.{i}.conv": "stage{i}.conv" ({i} matches digits; {i-1} shifts them) '
         'or "re:^features\\\\.(\\\\d+)\\\\.": "stage\\\\1."')


def compile_rule(left: object, right: object) -> RenameRule:
    """A `rename:` entry as a rule; ValueError says what is wrong with it."""
    left, right = str(left), str(right)
    if left.startswith(REGEX):
        try:
            regex = re.compile(left[len(REGEX):])
        except re.error as err:
            raise ValueError(f"rename rule '{left}': bad regular expression: {err}") from None
        try:
            regex.sub(right, "")  # checks the group references of the replacement
        except (re.error, IndexError) as err:
            raise ValueError(f"rename rule '{left}': bad replacement '{right}': {err}") from None
        return RenameRule(left, right, "regex", regex)
    if "{" not in left and "}" not in left:
        _right_holes(left, right, set())
        return RenameRule(left, right, "prefix")
    parts, seen, pos = ["^"], set(), 0
    for hole in _HOLE.finditer(left):
        name = hole.group(1).strip()
        if not _NAME.fullmatch(name):
            raise ValueError(f"rename rule '{left}': placeholder '{hole.group(0)}' must be a name, "
                             "as in {i}")
        parts.append(re.escape(_outside(left, left[pos:hole.start()])))
        parts.append(f"(?P={name})" if name in seen else rf"(?P<{name}>\d+)")
        seen.add(name)
        pos = hole.end()
    parts.append(re.escape(_outside(left, left[pos:])))
    parts.append(r"(?=\.|$)")
    _right_holes(left, right, seen)
    return RenameRule(left, right, "pattern", re.compile("".join(parts)))


def _outside(left: str, text: str) -> str:
    """Text of a pattern's left side between placeholders: no stray brace."""
    if "{" in text or "}" in text:
        raise ValueError(f"rename rule '{left}': unmatched brace")
    return text


def _right_holes(left: str, right: str, known: set[str]) -> None:
    """Every placeholder of a right side is one the left side has."""
    pos = 0
    for hole in _HOLE.finditer(right):
        _outside(right, right[pos:hole.start()])
        pos = hole.end()
        spec = _OFFSET.fullmatch(hole.group(1))
        if spec is None:
            raise ValueError(f"rename rule '{left}': placeholder '{hole.group(0)}' on the right must "
                             "be a name, or a name plus or minus a number, as in {i} or {i-1}")
        if spec.group(1) not in known:
            have = ", ".join(f"{{{k}}}" for k in sorted(known)) or "none"
            raise ValueError(f"rename rule '{left}': placeholder '{hole.group(0)}' on the right is "
                             f"not on the left (the left has {have})")
    _outside(right, right[pos:])


def _fill(right: str, match: re.Match, rule: RenameRule) -> str:
    """The right side of a placeholder rule with the matched indices written in."""
    def one(hole: re.Match) -> str:
        name, sign, amount = _OFFSET.fullmatch(hole.group(1)).groups()
        text = match.group(name)
        if sign is None:
            return text
        value = int(text) + (int(amount) if sign == "+" else -int(amount))
        if value < 0:
            raise ValueError(f"rename rule '{rule.left}': {hole.group(0)} is {value} for "
                             f"'{match.group(0)}'")
        return str(value)
    return _HOLE.sub(one, right)


def compile_rename(rename: Mapping[str, str]) -> list[RenameRule]:
    """The rules of a `rename:` map, in order; ValueError for the first that cannot work."""
    return [compile_rule(left, right) for left, right in rename.items()]


def rename_key(key: str, rules: list[RenameRule]) -> str:
    """`key` renamed by the first rule that matches it (the longest plain prefix, where that is
    a plain prefix), or unchanged."""
    for rule in rules:
        new = rule.apply(key)
        if new is None:
            continue
        if rule.kind == "prefix":  # plain prefixes among themselves: the longest, as always
            longest = max((r for r in rules if r.kind == "prefix" and r.apply(key) is not None),
                          key=lambda r: len(r.left))
            return longest.apply(key)
        return new
    return key


def rename_state_dict(state_dict: Mapping[str, Tensor], rename: Mapping[str, str]) -> dict[str, Tensor]:
    """`state_dict` with every key renamed by the rules of `rename` (a spec's `rename:` map)."""
    rules = compile_rename(rename)
    return {rename_key(key, rules): value for key, value in state_dict.items()}


def load_reference_state_dict(model: nn.Module, state_dict: Mapping[str, Tensor],
                              spec: str | Path, strict: bool = True):
    """Load a reference implementation's weights into a model built from `spec`."""
    from engine.compiler import resolve_spec
    rename = resolve_spec(spec).rename
    return model.load_state_dict(rename_state_dict(state_dict, rename), strict=strict)
