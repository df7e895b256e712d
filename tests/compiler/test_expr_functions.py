"""Math functions, range/zip/enumerate, list comprehensions and the helpers of a spec's
`functions:`: what they compute (against Python's math and torchvision's own code), and the
bounds on their work (ENGINE_MAX_EXPR_STEPS, ENGINE_MAX_EXPR_DEPTH), with located errors."""

from __future__ import annotations

import math
import time

import pytest

from engine.compiler import build, resolve_spec
from engine.compiler.expr import ExprError, evaluate
from engine.compiler.expr_functions import define_functions
from engine.compiler.ir import Loc, SpecError
from engine.compiler.load import load_text

SCOPE = {"depths": [3, 4, 6, 3], "width": 64, "name": "ab", "huge": 10**400}

MAKE_DIVISIBLE = '''
  make_divisible:                      # torchvision.models._utils._make_divisible
    description: round v to a multiple of divisor, losing at most 10%
    args: [v, divisor, {min_value: null}]
    let:
      min_value: "${divisor if min_value is None else min_value}"
      new_v: "${max(min_value, int(v + divisor / 2) // divisor * divisor)}"
    expr: "${new_v + divisor if new_v < 0.9 * v else new_v}"
'''

# torchvision's BlockParams.from_init_params, as helpers: the quantized linear widths of the
# blocks, then the stages (runs of equal widths), then widths and groups made compatible
REGNET = MAKE_DIVISIBLE + '''
  regnet_block_widths:
    args: [depth, w_0, w_a, w_m, {quant: 8}]
    let:
      capacity: "${[round(log((i * w_a + w_0) / w_0) / log(w_m)) for i in range(depth)]}"
    expr: "${[round(w_0 * w_m ** c / quant) * quant for c in capacity]}"
  regnet_stages:
    args: [depth, w_0, w_a, w_m, group_width, {bottleneck: 1.0}]
    let:
      widths: "${regnet_block_widths(depth, w_0, w_a, w_m)}"
      starts: "${[k for k, (w, wp) in enumerate(zip(widths + [0], [0] + widths)) if w != wp]}"
      w_bot: "${[int(widths[k] * bottleneck) for k in starts[:-1]]}"
      groups: "${[min(group_width, w) for w in w_bot]}"
    expr: "${[[int(make_divisible(w, g) / bottleneck) for w, g in zip(w_bot, groups)],
              [b - a for a, b in zip(starts[:-1], starts[1:])], groups]}"
'''


def helpers(text: str) -> dict:
    """The scope entry of `functions:` written as `text`, checked to have no errors."""
    doc = load_text("functions:" + text, "helpers.yaml")
    entry, problems = define_functions(doc["functions"], doc.value_loc("functions"))
    assert not problems, problems
    return entry


def refusal(source: str, scope: dict | None = None) -> str:
    with pytest.raises(ExprError) as caught:
        evaluate(source, {**SCOPE, **(scope or {})})
    return f"{caught.value} ({caught.value.hint})"


def spec_errors(spec_file, text: str) -> list:
    with pytest.raises(SpecError) as caught:
        resolve_spec(spec_file(text))
    return caught.value.diagnostics


# ---- math ------------------------------------------------------------------------------------
VALUES = [1e-9, 0.5, 1, 2, 2.5, 3, 10, 27.89, 1000, 10**30]


@pytest.mark.parametrize("name", ["log", "log2", "log10", "exp", "sqrt", "ceil", "floor"])
@pytest.mark.parametrize("x", VALUES)
def test_math_functions_match_python(name, x):
    if name == "exp" and x > 700:
        assert "overflows" in refusal(f"exp({x!r})")
        return
    got = evaluate(f"{name}(x)", {"x": x})
    assert got == getattr(math, name)(x)
    assert type(got) is type(getattr(math, name)(x))


def test_ceil_and_floor_give_ints_and_log_takes_a_base():
    assert evaluate("ceil(2.1)", {}) == 3 and isinstance(evaluate("ceil(2.1)", {}), int)
    assert evaluate("floor(-2.1)", {}) == -3 and isinstance(evaluate("floor(2.9)", {}), int)
    assert evaluate("log(8, 2)", {}) == math.log(8, 2)
    assert evaluate("round(log(width) / log(2))", SCOPE) == 6


@pytest.mark.parametrize("source, hint", [
    ("log(0)", "above 0"), ("log(-1.5)", "above 0"), ("log(8, 1)", "other than 1"),
    ("log(8, 0)", "above 0"), ("log2(0)", "above 0"), ("log10(-1)", "above 0"),
    ("sqrt(-1)", "0 or more"), ("range(0, 5, 0)", "must not be 0"),
])
def test_domain_errors_are_expression_errors_with_a_hint(source, hint):
    with pytest.raises(ExprError) as caught:
        evaluate(source, {})
    assert f"cannot compute '{source}'" in str(caught.value)
    assert hint in caught.value.hint


@pytest.mark.parametrize("source, message", [
    ("exp(10**3)", "overflows"), ("sqrt(huge)", "overflows"), ("ceil(float('inf'))", "overflows"),
    ("log('a')", "cannot compute"), ("floor(None)", "cannot compute"), ("sqrt(1, 2)", "cannot compute"),
])
def test_bad_arguments_are_expression_errors(source, message):
    assert message in refusal(source)


# ---- range, zip, enumerate, comprehensions ----------------------------------------------------
@pytest.mark.parametrize("source, value", [
    ("range(4)", [0, 1, 2, 3]), ("range(2, 11, 3)", [2, 5, 8]), ("range(5, 0, -2)", [5, 3, 1]),
    ("range(-3)", []), ("zip(depths, range(3))", [(3, 0), (4, 1), (6, 2)]),
    ("zip(name, name, name)", [("a", "a", "a"), ("b", "b", "b")]), ("zip()", []),
    ("enumerate(name)", [(0, "a"), (1, "b")]), ("enumerate(depths, 1)[-1]", (4, 3)),
    ("[d * 2 for d in depths]", [6, 8, 12, 6]),
    ("[d for d in depths if d > 3]", [4, 6]),
    ("[d for d in depths if d > 3 if d < 6]", [4]),
    ("[(i, j) for i in range(3) for j in range(i)]", [(1, 0), (2, 0), (2, 1)]),
    ("[[j for j in range(i)] for i in range(3)]", [[], [0], [0, 1]]),
    ("[i * w for i, w in enumerate(depths)]", [0, 4, 12, 9]),
    ("[k for k, (a, b) in enumerate(zip(depths, depths[1:])) if a != b]", [0, 1, 2]),
    ("sum(d for d in depths)", 16), ("max(d % 4 for d in depths)", 3),
    ("[c + c for c in name]", ["aa", "bb"]), ("[width for width in range(2)] + [width]", [0, 1, 64]),
    ("any(d > 5 for d in depths) and not all(d > 3 for d in depths)", True),
    ("list(zip(depths, depths)[0])", [3, 3]), ("width is not None and None is None", True),
])
def test_sequences_and_comprehensions(source, value):
    assert evaluate(source, SCOPE) == value


def test_comprehension_variables_do_not_leak():
    scope = dict(SCOPE)
    assert evaluate("[i for i in depths]", scope) == [3, 4, 6, 3]
    assert scope == SCOPE
    assert "unknown name 'i'" in refusal("[i for i in depths] + [i]")
    assert "unknown name 'j'" in refusal("[j for i in depths] + [j for j in depths]")


@pytest.mark.parametrize("source, message", [
    ("{d for d in depths}", "not allowed"), ("{d: 1 for d in depths}", "not allowed"),
    ("(lambda: 1)()", "not allowed"), ("[d async for d in depths]", "not allowed"),
    ("[d for *d, e in [[1, 2]]]", "not allowed"), ("[d.real for d in depths]", "attribute access"),
    ("[(y := d) for d in depths]", "not allowed"), ("[d for d in width]", "cannot loop over int"),
    ("[a for a, b in depths]", "cannot unpack"), ("[d for d in depths if nope]", "unknown name 'nope'"),
    ("width is 64", "compares with None"), ("max(depths, key=len)", "keyword arguments are not allowed"),
    ("range(1.5)", "cannot compute"), ("zip(width)", "cannot compute"),
])
def test_comprehension_refusals(source, message):
    assert message in refusal(source)


def test_range_is_refused_before_it_is_built():
    start = time.perf_counter()
    assert "ENGINE_MAX_SEQUENCE_LENGTH" in refusal("range(10**9)")
    assert "ENGINE_MAX_SEQUENCE_LENGTH" in refusal("range(2**62, -2**62, -1)")
    assert "ENGINE_MAX_SEQUENCE_LENGTH" in refusal("enumerate(range(600000))")
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("source", [
    "[i * j for i in range(10**4) for j in range(10**3)]",               # 10**7 iterations
    "sum([1 for i in range(1000) for j in range(1000) for k in range(10)])",
    "[[j for j in range(10**5)] for i in range(100)]",                   # inner lists made
    "[sum(big) for i in range(1000)]",                                   # a list read each time
    "[i + i + i + i + i + i + i + i + i + i + i + i + i + i for i in range(10**4)]",  # big bodies
])
def test_the_step_limit_refuses_work_quickly(source):
    start = time.perf_counter()
    message = refusal(source, {"big": list(range(10**5))})
    assert time.perf_counter() - start < 0.5
    assert "over the limit of 100,000" in message and "ENGINE_MAX_EXPR_STEPS=" in message


def test_the_step_limit_is_raised_by_its_variable(monkeypatch):
    source = "sum([i for i in range(500) for j in range(100)])"
    assert "ENGINE_MAX_EXPR_STEPS" in refusal(source)
    monkeypatch.setenv("ENGINE_MAX_EXPR_STEPS", "1000000")
    assert evaluate(source, {}) == 100 * sum(range(500))
    monkeypatch.setenv("ENGINE_MAX_EXPR_STEPS", "10")
    assert "ENGINE_MAX_EXPR_STEPS" in refusal("[i for i in range(20)]")
    assert evaluate("sum(range(1000))", {}) == 499500  # no loop: counted by sequence_length alone


# ---- helpers ---------------------------------------------------------------------------------
def test_make_divisible_matches_torchvision():
    utils = pytest.importorskip("torchvision.models._utils")
    scope = helpers(MAKE_DIVISIBLE)
    values = [k * 0.37 for k in range(1, 300)] + list(range(1, 200)) + [0.9 * 2**k for k in range(12)]
    cases = 0
    for divisor in (1, 3, 8, 16, 32):
        for min_value in (None, 1, divisor, 64):
            for v in values:
                s = {**scope, "v": v, "d": divisor, "m": min_value}
                got = evaluate("make_divisible(v, d, m)", s)
                assert got == utils._make_divisible(v, divisor, min_value), (v, divisor, min_value)
                cases += 1
            assert evaluate("make_divisible(v, divisor=d)", s) == utils._make_divisible(v, divisor)
    assert cases > 5_000


REGNETS = {  # torchvision.models.regnet's settings (group_width, for the stage widths)
    "regnet_y_400mf": dict(depth=16, w_0=48, w_a=27.89, w_m=2.09, group_width=8),
    "regnet_y_800mf": dict(depth=14, w_0=56, w_a=38.84, w_m=2.4, group_width=16),
    "regnet_y_8gf": dict(depth=17, w_0=192, w_a=76.82, w_m=2.19, group_width=56),
    "regnet_x_400mf": dict(depth=22, w_0=24, w_a=24.48, w_m=2.54, group_width=16),
    "regnet_x_3_2gf": dict(depth=25, w_0=88, w_a=26.31, w_m=2.25, group_width=48),
}


@pytest.mark.parametrize("model", sorted(REGNETS))
def test_regnet_widths_match_torchvision(model, spec_file):
    regnet = pytest.importorskip("torchvision.models.regnet")
    s = REGNETS[model]
    expected = regnet.BlockParams.from_init_params(**s, se_ratio=0.25)
    call = f"regnet_stages({s['depth']}, {s['w_0']}, {s['w_a']}, {s['w_m']}, {s['group_width']})"
    spec = resolve_spec(spec_file("name: regnet_widths\nfunctions:" + REGNET + f'''
params:
  stages: "${{{call}}}"
  widths: "${{stages[0]}}"
  depths: "${{stages[1]}}"
inputs: {{x: [B, 8]}}
graph:
  stem: {{op: linear, out: "${{widths[0]}}"}}
'''))
    assert spec.params["widths"] == expected.widths
    assert spec.params["depths"] == expected.depths
    assert spec.params["stages"][2] == expected.group_widths


def test_helpers_are_callable_from_every_expression_of_a_spec(spec_file):
    path = spec_file('''
        name: everywhere
        functions:
          double: {args: [x], expr: "${2 * x}"}
          scaled:
            args: [x, {by: 2}, {plus: "${by + 1}"}]    # a default may use the arguments before it
            expr: "${x * by + plus}"
          pair: {expr: "${[double(1), scaled(1)]}"}  # no arguments; helpers call helpers
        params:
          width: "${double(8)}"
          widths: "${[double(w) for w in range(1, 4)]}"
          named: "${scaled(1, plus=0)}"
          pair: "${pair()}"
        inputs: {x: [B, 4]}
        blocks:
          head:
            params: {n: int, out: "${double(n)}"}
            nodes:
              fc: {op: linear, out: $out}
        graph:
          fc: {op: linear, out: "${double(width)}"}
          skipped: {op: linear, out: 3, when: "${double(1) == 3}"}
          head: {op: head, n: "${double(2)}"}
          wide: {op: linear, out: "${double(input.shape[-1])}"}
    ''')
    spec = resolve_spec(path)
    assert spec.params == {"width": 16, "widths": [2, 4, 6], "named": 2, "pair": [2, 5]}
    net = spec.networks["everywhere"]
    nodes = {n.name: n for n in net.nodes}
    assert nodes["fc"].args["out"] == 32
    assert nodes["skipped"].kind == "pass"
    assert nodes["head"].body.nodes[0].args["out"] == 8
    model = build(path)
    assert model.wide.out_features == 2 * 8  # a deferred expression (the shape stage's)


def test_helpers_see_their_arguments_only(spec_file):
    errors = spec_errors(spec_file, '''
        name: scope
        functions:
          wider: {args: [x], expr: "${x * width}"}
        params:
          width: 4
          w: "${wider(2)}"
        inputs: {x: [B, 4]}
        graph:
          fc: {op: linear, out: 4}
    ''')
    assert len(errors) == 1
    assert "in function 'wider' (" in errors[0].message and "unknown name 'width'" in errors[0].message
    assert errors[0].loc.line == 6  # the call


def test_an_error_inside_a_helper_names_its_line_and_points_at_the_call(spec_file):
    errors = spec_errors(spec_file, '''
        name: located
        functions:
          ratio:
            args: [x]
            let:
              half: "${x / 2}"
            expr: "${log(half)}"
          outer: {args: [x], expr: "${ratio(x) + 1}"}
        params:
          a: "${ratio(0)}"
          b: 1
          c: "${outer(0)}"
          d: "${ratio()}"
        inputs: {x: [B, 4]}
        graph:
          fc: {op: linear, out: 4}
    ''')
    path = str(errors[0].loc.file)
    by_line = {e.loc.line: e for e in errors}
    assert sorted(by_line) == [10, 12, 13]  # the calls
    assert f"in function 'ratio' ({path}:7:11): cannot compute 'log(half)' = log(0.0)" \
        in by_line[10].message
    assert "above 0" in by_line[10].hint
    assert f"({path}:7:11; via outer -> ratio)" in by_line[12].message
    assert "missing argument 'x' in a call to ratio(x)" in by_line[13].message


def test_a_let_error_names_the_let_line(spec_file):
    errors = spec_errors(spec_file, '''
        name: located
        functions:
          f:
            args: [x]
            let:
              y: "${x[5]}"
            expr: "${y}"
        params: {a: "${f([1])}"}
        inputs: {x: [B, 4]}
        graph: {fc: {op: linear, out: 4}}
    ''')
    assert len(errors) == 1 and errors[0].loc.line == 8
    assert f"in function 'f' ({errors[0].loc.file}:6:10): cannot index" in errors[0].message


def test_a_helper_calling_itself_endlessly_is_a_located_error(spec_file):
    start = time.perf_counter()
    errors = spec_errors(spec_file, '''
        name: endless
        functions:
          forever: {args: [n], expr: "${forever(n + 1)}"}
          fact: {args: [n], expr: "${1 if n <= 1 else n * fact(n - 1)}"}
          fib: {args: [n], expr: "${n if n < 2 else fib(n - 1) + fib(n - 2)}"}
        params:
          ok: "${fact(20)}"
          a: "${forever(0)}"
          b: "${fib(30)}"
        inputs: {x: [B, 4]}
        graph:
          fc: {op: linear, out: "${fact(3)}"}
    ''')
    assert time.perf_counter() - start < 2
    by_line = {e.loc.line: e for e in errors}
    assert sorted(by_line) == [8, 9]
    endless = by_line[8]
    assert f"in function 'forever' ({endless.loc.file}:3:30; via forever -> forever" in endless.message
    assert "over the limit of 32" in endless.message
    assert "ENGINE_MAX_EXPR_DEPTH=33" in endless.hint and "without end" in endless.hint
    assert "ENGINE_MAX_EXPR_STEPS" in by_line[9].hint  # 2**30 calls: bounded by the work


def test_the_recursion_limit_is_raised_by_its_variable(monkeypatch):
    scope = helpers('''
  count: {args: [n], expr: "${0 if n == 0 else 1 + count(n - 1)}"}
''')
    assert evaluate("count(31)", scope) == 31
    assert "ENGINE_MAX_EXPR_DEPTH" in refusal("count(40)", scope)
    monkeypatch.setenv("ENGINE_MAX_EXPR_DEPTH", "50")
    assert evaluate("count(40)", scope) == 40


@pytest.mark.parametrize("body, line, message", [
    ('f: {args: [x], expr: "x * 2"}', 2, "expected one ${...} expression"),
    ('f: {args: [x], expr: "${x *}"}', 2, "cannot parse"),
    ('f: {args: [x, x], expr: "${x}"}', 2, "listed twice"),
    ('f: {args: ["not a name"], expr: "${1}"}', 2, "not a Python identifier"),
    ('f: {args: [{a: 1, b: 2}], expr: "${1}"}', 2, "a name or {name: default}"),
    ('f: {args: [x], exp: "${x}"}', 2, "did you mean 'expr'"),
    ('max: {args: [x], expr: "${x}"}', 2, "is a built-in function"),
    ('f: {args: [x], let: [1], expr: "${x}"}', 2, "`let:` must map names"),
    ('f: {args: [x], let: {y: "${x +}"}, expr: "${x}"}', 2, "cannot parse"),
    ('f: 3', 2, "must be a mapping"),
])
def test_definition_errors_are_located(spec_file, body, line, message):
    errors = spec_errors(spec_file, f'''
        name: defs
        functions:
          {body}
        params: {{a: "${{f(1)}}"}}
        inputs: {{x: [B, 4]}}
        graph: {{fc: {{op: linear, out: 4}}}}
    ''')
    assert any(e.loc.line == line + 1 and message in f"{e.message} {e.hint}" for e in errors), errors
    if body.startswith("f:"):  # a call of a broken helper adds no error
        assert all(e.loc.line != 4 for e in errors), errors


def test_the_schema_knows_functions(spec_file):
    errors = spec_errors(spec_file, '''
        name: schema
        functions:
          f: {args: [x], expr: "${x}", bogus: 1}
        inputs: {x: [B, 4]}
        graph: {fc: {op: linear, out: 4}}
    ''')
    assert {e.loc.line for e in errors} == {3}
    assert resolve_spec(spec_file('''
        name: schema
        functions: {f: {args: [x], expr: "${x + 1}", description: one more}}
        inputs: {x: [B, 4]}
        graph: {fc: {op: linear, out: "${f(3)}"}}
    ''')).networks["schema"].nodes[0].args["out"] == 4


def test_a_helpers_table_prints_short():
    entry = helpers(MAKE_DIVISIBLE)
    assert repr(next(iter(entry.values()))) == "<functions make_divisible>"
    assert isinstance(next(iter(entry.values()))["make_divisible"].loc, Loc)
