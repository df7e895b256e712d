"""The spec schema's fast path (engine/compiler/schema.py `predicate`) against jsonschema.

The validator tests each block argument in Python before jsonschema does; the Python test may
only accept what the schema accepts. Oracle: jsonschema's own verdict on the same value, for
every argument of every registered block and a spread of values of every JSON type.
"""

from __future__ import annotations

import jsonschema

from engine.blocks.registry import all_blocks
from engine.compiler.merge import load_merged
from engine.compiler.schema import predicate, spec_schema
from engine.compiler.validate import check_schema

VALUES = [0, 1, -3, 2.5, 1.0, True, False, None, "", "relu", "$width", "${w * 2}", "x$",
          [], [1, 2], [1, "$k"], [1.5], [True], ["a"], [[1]], {}, {"a": 1}]


def test_the_fast_path_accepts_only_what_the_schema_accepts():
    schema = spec_schema(editor=False)
    tried = 0
    for name in all_blocks():
        for arg, prop in schema["$defs"][f"op_{name}"]["properties"].items():
            test = predicate(prop) if "anyOf" in prop else None
            if test is None:
                continue
            validator = jsonschema.Draft202012Validator(prop)
            for value in VALUES:
                tried += 1
                if test(value):
                    assert validator.is_valid(value), (name, arg, value)
    assert tried > 1000


def test_a_wrong_argument_is_still_reported_by_jsonschema(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: bad\ninputs: {x: [1, 3, 8, 8]}\ngraph:\n"
                    "  a: {op: conv, out: 4, k: [3, three]}\n")
    errors = list(check_schema(load_merged(spec, None)))
    assert len(errors) == 1 and errors[0].path == "graph.a.k" and errors[0].loc.line == 4

