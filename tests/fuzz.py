"""Seeded mutants of the bundled specs and recipes, and a harness that runs `engine validate` on
each: what the fuzz test (tests/compiler/test_fuzz.py) and benchmarks/fuzz_validate.py share.

A mutant is a bundled file with one to three random edits made on its YAML node tree (so tags,
anchors and complex keys survive), sometimes followed by a text edit (a cut, a stray character).
Every graft is a deep copy: a mutant never becomes a cyclic document by accident. The same seed
always gives the same mutants, so a failure names a seed that reproduces it:

    python benchmarks/fuzz_validate.py --seed 1234 --count 1 --show
"""

from __future__ import annotations

import contextlib
import copy
import io
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

REPO = Path(__file__).resolve().parent.parent
TAG = "tag:yaml.org,2002:"


def sources() -> list[Path]:
    """Every bundled spec and recipe: the mutants' parents."""
    return sorted((REPO / "specs").glob("*.yaml")) + sorted((REPO / "recipes").glob("*.yaml"))


def _scalar(kind: str, value: str) -> ScalarNode:
    return ScalarNode(kind if kind.startswith("!") else TAG + kind, value)


# values a careless or hostile author might write anywhere
SCALARS = [("int", "0"), ("int", "-1"), ("int", "1000000"), ("int", "99999999999999999999"),
           ("float", ".nan"), ("float", ".inf"), ("float", "-.inf"), ("float", "1e400"),
           ("float", "-0.0"), ("float", "0.5"), ("null", "~"), ("bool", "true"), ("bool", "false"),
           ("str", ""), ("str", "x"), ("str", "ñame"), ("str", "in"), ("str", "__class__"),
           ("str", "a b"), ("str", "${"), ("str", "}"), ("str", "${}"), ("str", "${1/0}"),
           ("str", "${[1, 2][5]}"), ("str", "${'a' * 3}"), ("str", "${x.y.z}"), ("str", "${input}"),
           ("str", "${__import__('os')}"), ("str", "${(1).__class__}"), ("str", "x" * 300),
           ("str", "../../etc/passwd"), ("str", "/dev/zero"), ("str", "\u202e\u0000"),
           ("!delete", ""), ("!replace", "x"), ("!foo", "bar"), ("str", "-"), ("str", ":")]

KEYS = ["in", "__class__", "naïve", "a b", "", "0", "${x}", "op", "repeat", "blocks", "inputs",
        "outputs", "params", "extends", "include", "when", "out", "args", "spec", "data", "lr"]

EXPR_ATOMS = ["1", "0", "-1", "2.5", "'s'", "[1, 2]", "{}", "None", "True", "x", "input",
              "input.channels", "input.shape", "out", "len", "max", "min", "int", "abs", "10**20",
              "1e308", "[0] * 3", "(1, 2)"]
EXPR_OPS = ["+", "-", "*", "/", "//", "%", "**", "==", "<", "and", "or", " if 1 else ", "[0]",
            "[::0]", "[1:]", ".x", "(1)", "(", ")", "["]

TEXT_JUNK = [":", "-", "\t", "{", "}", "[", "\"", "'", "&a", "*a", "!", "%", "@", "\x00", "\n  ",
             "\ufeff", "? "]


@dataclass
class Slot:
    """A place in the tree that holds a node: a mapping's key or value, or a sequence item."""
    parent: Node
    index: int
    part: int | None  # 0 key, 1 value of a mapping pair; None for a sequence item

    def get(self) -> Node:
        item = self.parent.value[self.index]
        return item if self.part is None else item[self.part]

    def set(self, node: Node) -> None:
        if self.part is None:
            self.parent.value[self.index] = node
        else:
            pair = list(self.parent.value[self.index])
            pair[self.part] = node
            self.parent.value[self.index] = tuple(pair)

    def drop(self) -> None:
        del self.parent.value[self.index]


def slots(root: Node) -> list[Slot]:
    """Every slot under `root`, each shared (aliased) node visited once."""
    found: list[Slot] = []
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen or isinstance(node, ScalarNode):
            continue
        seen.add(id(node))
        for i, item in enumerate(node.value):
            if isinstance(node, MappingNode):
                found += [Slot(node, i, 0), Slot(node, i, 1)]
                stack += list(item)
            else:
                found.append(Slot(node, i, None))
                stack.append(item)
    return found


class Mutator:
    """Mutants of YAML texts, reproducible from a seed."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def mutant(self, text: str) -> str:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is None or isinstance(root, ScalarNode):
            return self.text_edit(text)
        for _ in range(self.rng.choice((1, 1, 2, 3))):
            places = slots(root)
            if not places:
                break
            getattr(self, self.rng.choice(EDITS))(self.rng.choice(places), places)
        out = yaml.serialize(root, Dumper=yaml.SafeDumper, allow_unicode=True)
        return self.text_edit(out) if self.rng.random() < 0.1 else out

    # the edits: each takes a slot and every slot of the document (a graft's sources)
    def drop(self, slot: Slot, _: list[Slot]) -> None:
        slot.drop()

    def value(self, slot: Slot, _: list[Slot]) -> None:
        slot.set(_scalar(*self.rng.choice(SCALARS)))

    def key(self, slot: Slot, places: list[Slot]) -> None:
        """A key that is not a plain word: a number, null, a list, a mapping, a reserved name."""
        keyed = [s for s in places if s.part == 0] or [slot]
        target = Slot(keyed[0].parent, keyed[0].index, 0) if slot.part != 0 else slot
        target = self.rng.choice(keyed) if self.rng.random() < 0.5 else target
        roll = self.rng.random()
        if roll < 0.3:
            node = _scalar(*self.rng.choice(SCALARS[:13]))
        elif roll < 0.45:
            node = SequenceNode(TAG + "seq", [_scalar("int", "1"), _scalar("str", "a")])
        elif roll < 0.55:
            node = MappingNode(TAG + "map", [(_scalar("str", "k"), _scalar("int", "1"))])
        else:
            node = _scalar("str", self.rng.choice(KEYS))
        target.set(node)

    def graft(self, slot: Slot, places: list[Slot]) -> None:
        """Another part of the document, copied (never shared: no cycles) into this slot."""
        slot.set(copy.deepcopy(self.rng.choice(places).get()))

    def reshape(self, slot: Slot, _: list[Slot]) -> None:
        """A mapping where a list was, a list where a scalar was, an empty one of either."""
        node = slot.get()
        options = [MappingNode(TAG + "map", []), SequenceNode(TAG + "seq", []),
                   SequenceNode(TAG + "seq", [copy.deepcopy(node)]),
                   MappingNode(TAG + "map", [(_scalar("str", "x"), copy.deepcopy(node))])]
        slot.set(self.rng.choice(options))

    def repeat(self, slot: Slot, _: list[Slot]) -> None:
        """The entry twice (a duplicate key in a mapping, a repeated item in a list)."""
        slot.parent.value.insert(slot.index, copy.deepcopy(slot.parent.value[slot.index]))

    def expr(self, slot: Slot, _: list[Slot]) -> None:
        parts = [self.rng.choice(EXPR_ATOMS)]
        for _ in range(self.rng.randint(0, 3)):
            parts += [self.rng.choice(EXPR_OPS), self.rng.choice(EXPR_ATOMS)]
        slot.set(_scalar("str", "${" + "".join(parts) + "}"))

    def text_edit(self, text: str) -> str:
        at = self.rng.randrange(len(text) + 1)
        if self.rng.random() < 0.3:
            return text[:at]
        return text[:at] + self.rng.choice(TEXT_JUNK) + text[at:]


EDITS = ["drop", "value", "value", "key", "graft", "graft", "reshape", "repeat", "expr", "expr"]


@dataclass
class Outcome:
    source: str
    seed: int
    code: int | str  # the exit code, or "hang" / "escaped" (an exception out of the CLI)
    seconds: float
    stderr: str

    @property
    def failed(self) -> bool:
        return self.code not in (0, 1) or "Traceback" in self.stderr


class _Hang(Exception):
    pass


def _alarm(*_) -> None:
    raise _Hang


def run_one(seed: int, folder: Path, timeout: float = 30.0) -> Outcome:
    """The mutant of `seed` (its parent chosen by the seed too), validated by the CLI in-process;
    a spec that validates is then built (on the meta device: no memory) and its code generated,
    since `validate` saying ok promises that both work."""
    rng = random.Random(seed)
    parent = rng.choice(sources())
    text = Mutator(seed).mutant(parent.read_text(encoding="utf-8"))
    path = folder / str(seed) / parent.name  # its own folder: no mutant extends another
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    err = io.StringIO()
    start = time.process_time()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = _stages(path)
    except _Hang:
        code = "hang"
    except BaseException as exc:  # noqa: BLE001 - anything out of main is the finding
        code = f"escaped {type(exc).__name__}: {exc}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return Outcome(parent.name, seed, code, time.process_time() - start, err.getvalue())


def _stages(path: Path) -> int | str:
    from engine import cli
    from engine.compiler import SpecError, analyze
    from engine.compiler.build import build
    from engine.views.codegen import write_codegen
    code = cli.main(["validate", str(path)])
    if code != 0 or cli._is_recipe(str(path)):
        return code
    try:
        shaped = analyze(path)
        build(shaped, "meta")
        write_codegen(shaped, path.parent / "model.py")
    except SpecError:
        return 1  # a limit (the parameters to allocate ...): a clean error, as the CLI shows it
    except Exception as exc:  # noqa: BLE001 - validate said ok: this is the finding
        return f"validated, then {type(exc).__name__}: {exc}"
    return 0
