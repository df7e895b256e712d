"""A spec's text never becomes code in `engine codegen` output: names, comments, file names and
`--set` values with triple quotes, quotes, newlines and `__import__` calls stay text, and names
that are not identifiers still give a valid file."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

import engine
from engine.views.codegen import codegen_source, write_codegen
from engine.views.codegen.literals import camel, comment_text, docstring_text

PAYLOAD = '__import__("pathlib").Path("PWNED").write_text("ran")'
QUOTED = PAYLOAD.replace('"', '\\"')  # inside a double-quoted YAML string

# the name holds triple quotes, a newline, the payload and a final quote; the comment (which
# becomes the file's docstring) holds them too
HOSTILE = (
    '# A tiny net. """\n'
    f'# {PAYLOAD}\n'
    f'# """ ; {PAYLOAD}\n'
    'name: "evil \\"\\"\\"\\n' + QUOTED + '\\n\\"\\"\\" x\\" "\n'
    """params: {tag: "t", width: 4}
inputs: {image: [B, 1, 8, 8]}
graph:
  conv: {op: conv, out: $width, k: 3, pad: 1}
  relu: {op: relu}
  pool: {op: adaptive_avgpool, size: 1}
  flat: {op: flatten}
  fc: {op: linear, out: 3}
""")

RUN = textwrap.dedent('''
    import importlib.util, json, sys, torch
    spec = importlib.util.spec_from_file_location("generated", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.build().eval()
    model.load_state_dict(torch.load(sys.argv[2], weights_only=True), strict=True)
    torch.save(model(torch.load(sys.argv[3], weights_only=True)), sys.argv[4])
''')


@pytest.mark.parametrize("overrides", [[], ['tag="\\"\\"\\"\\n' + QUOTED + '"']])
def test_hostile_text_stays_text_and_the_model_works(tmp_path, overrides):
    path = tmp_path / "hostile.yaml"
    path.write_text(HOSTILE)
    shaped = engine.analyze(path, overrides)
    assert '"""' in shaped.spec.name and "\n" in shaped.spec.name  # the spec really is hostile
    target = write_codegen(shaped, tmp_path / "model.py")
    built = engine.build(path, **{k: v for k, v in (o.split("=", 1) for o in overrides)}).eval()
    torch.save(built.state_dict(), tmp_path / "weights.pt")
    x = torch.randn(2, 1, 8, 8)
    torch.save(x, tmp_path / "x.pt")
    result = subprocess.run([sys.executable, "-c", RUN, str(target), str(tmp_path / "weights.pt"),
                             str(tmp_path / "x.pt"), str(tmp_path / "y.pt")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not (tmp_path / "PWNED").exists()  # importing the file ran nothing of the spec's
    with torch.no_grad():
        assert torch.equal(torch.load(tmp_path / "y.pt", weights_only=True), built(x))


@pytest.mark.parametrize("name", ["my model", "resnet-50.v1.5", "3d net", "ünïcode", "_"])
def test_names_that_are_not_identifiers_still_give_a_valid_file(spec_file, name):
    path = spec_file(f"""
        name: "{name}"
        inputs: {{x: [B, 4]}}
        graph:
          fc: {{op: linear, out: 2}}
    """)
    source = codegen_source(engine.analyze(path))
    namespace: dict = {}
    exec(compile(source.replace('if __name__ == "__main__":', "if False:"), "model.py", "exec"),
         namespace)
    assert namespace["build"]()(torch.randn(3, 4)).shape == (3, 2)


def test_the_escapes_keep_text_inside_its_comment_or_docstring():
    assert "\n" not in comment_text('a\nb\r\x00"""')
    assert camel('evil """ name').isidentifier() and camel("-").isidentifier()
    for text in ['"""', 'x"', '""', '\\"""', '"\\', "a\x00b"]:
        source = f'def f():\n    """{docstring_text(text)}"""\n'
        compile(source, "t.py", "exec")  # raises where the text would escape the docstring
