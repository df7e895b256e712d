"""The command line, end to end: what a user types and what they see."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from engine.cli import main
from engine.compiler.merge import SPECS_DIR
from engine.compiler.schema import spec_schema

from .conftest import REPO


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_build_vit_b16_prints_its_parameter_count(capsys):
    code, out, _ = run(capsys, "build", "specs/vit_b16.yaml", "--depth", "1")
    assert code == 0
    assert "86,567,656 parameters" in out
    assert "conv_proj" in out and "[1, 768, 14, 14]" in out


def test_build_by_bundled_name_with_override(capsys):
    code, out, _ = run(capsys, "build", "resnet50", "--set", "num_classes=10", "--depth", "1")
    assert code == 0
    fc = next(line for line in out.splitlines() if line.startswith("fc "))
    assert "[1, 10]" in fc and "20,490" in fc  # 2048 * 10 + 10


def test_validate_every_bundled_spec(capsys):
    specs = sorted(str(p) for p in SPECS_DIR.glob("*.yaml"))
    code, out, err = run(capsys, "validate", *specs)
    assert code == 0, err
    assert out.count("ok ") == len(specs)


def test_resolve_prints_expanded_yaml(capsys):
    import yaml
    code, out, _ = run(capsys, "resolve", "resnet18")
    assert code == 0
    data = yaml.safe_load(out)
    layer2 = data["networks"]["resnet18"]["nodes"]["layer2"]
    first = layer2["body"]["nodes"]["0"]
    assert first["body"]["nodes"]["conv1"]["args"]["stride"] == 2
    assert first["body"]["nodes"]["downsample"]["op"] == "seq"
    second = layer2["body"]["nodes"]["1"]["body"]["nodes"]["downsample"]
    assert second["op"] == "pass"  # switched off by `when`: passes its input through


def test_blocks_lists_every_primitive_with_arguments(capsys):
    code, out, _ = run(capsys, "blocks")
    assert code == 0
    assert "conv(out: int, k: int | list[int] = 1" in out
    assert "attention(heads: int" in out


def test_schema_is_valid_json_schema_and_accepts_bundled_specs(capsys):
    code, out, _ = run(capsys, "schema")
    schema = json.loads(out)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema == spec_schema()
    from engine.compiler.load import load_file
    from engine.compiler.merge import load_merged
    validator = jsonschema.Draft202012Validator(schema)
    for path in SPECS_DIR.glob("*.yaml"):
        doc = json.loads(json.dumps(load_merged(path)))
        assert not list(validator.iter_errors(doc)), path
    assert load_file  # the raw files validate too once merged; merging is what the engine checks


def test_errors_exit_1_with_location_and_no_traceback(spec_file):
    path = spec_file("""
        inputs: {x: [B, 3, 8, 8]}
        graph:
          conv: {op: convv, out: 4}
    """)
    result = subprocess.run([sys.executable, "-m", "engine.cli", "build", str(path)],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 1
    assert f"{path}:3:3: error in node 'conv': unknown op 'convv'" in result.stderr
    assert "did you mean 'conv'" in result.stderr and "Traceback" not in result.stderr


def test_unknown_spec_name_suggests_close_ones(capsys):
    code, _, err = run(capsys, "build", "resnet5")
    assert code == 1 and "did you mean 'resnet50'" in err


@pytest.mark.parametrize("argv", [[], ["build"]])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        code = main(argv)
        raise SystemExit(code)
    assert caught.value.code == 2


def test_version_is_the_installed_distributions(capsys):
    from importlib.metadata import version
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out.strip() == f"engine {version('engine')}"


def test_list_filters_by_wildcard_and_lists_recipes(capsys):
    code, out, _ = run(capsys, "list", "*vit*")
    names = [line.split()[0] for line in out.splitlines()]
    assert code == 0 and names and all("vit" in n for n in names) and "vit_b16" in names
    code, out, _ = run(capsys, "list", "resnet5?")
    assert code == 0 and [line.split()[0] for line in out.splitlines()] == ["resnet50"]
    code, out, _ = run(capsys, "list", "--recipes")
    line = next(line for line in out.splitlines() if line.split()[0] == "digits_cnn")
    assert code == 0 and "small_cnn on scikit-learn's bundled digits" in line
    assert "resnet50 " not in out  # recipes only
    code, out, _ = run(capsys, "list", "--recipes", "digits")  # a plain word matches anywhere
    assert code == 0 and {"digits_cnn", "ddpm_digits"} <= {line.split()[0] for line in out.splitlines()}
    code, out, err = run(capsys, "list", "*no_such*")
    assert code == 1 and not out and "no bundled spec matches '*no_such*'" in err


def test_resolve_a_recipe_prints_it_with_the_spec_it_trains(capsys):
    import yaml
    code, out, _ = run(capsys, "resolve", "digits_cnn", "--set", "epochs=3")
    assert code == 0
    data = yaml.safe_load(out)
    assert set(data) == {"recipe", "spec"}
    assert data["recipe"]["epochs"] == 3 and data["recipe"]["spec"] == "small_cnn"
    assert data["recipe"]["amp"] is False  # unset keys at their defaults
    assert data["spec"]["name"] == "small_cnn"
    assert data["spec"]["params"]["in_channels"] == 1  # the sizes the digits give
    assert data["spec"]["networks"]["small_cnn"]["inputs"]["image"] == [1, 1, 8, 8]
    code, out, _ = run(capsys, "resolve", "digits_cnn", "--json")
    assert code == 0 and json.loads(out)["recipe"]["epochs"] == 20


def test_every_subcommand_help_shows_an_example():
    from engine.cli import _parser
    sub = next(a for a in _parser()._actions if a.choices and "build" in a.choices)
    for name, command in sub.choices.items():
        text = command.format_help()
        assert f"examples:\n  engine {name}" in text, name


@pytest.fixture
def hostile_folder(tmp_path):
    """A working folder whose engine.py and blocks/ would replace the engine if they were imported."""
    (tmp_path / "engine.py").write_text('raise SystemExit("shadowed")\n')
    (tmp_path / "blocks").mkdir()
    (tmp_path / "blocks" / "__init__.py").write_text('raise SystemExit("shadowed")\n')
    return tmp_path


def test_the_engine_command_ignores_the_working_folders_modules(hostile_folder):
    script = Path(sys.executable).parent / "engine"
    for argv, expected in ((["list"], "resnet50"), (["build", "small_cnn"], "built small_cnn")):
        result = subprocess.run([str(script), *argv], capture_output=True, text=True, cwd=hostile_folder,
                                timeout=300)
        assert result.returncode == 0 and "shadowed" not in result.stderr, result.stderr[-2000:]
        assert expected in result.stdout


def test_ddp_workers_start_with_the_working_folder_off_the_path(hostile_folder):
    from engine.train.distributed import WORKER, launch_command
    cmd = launch_command(2, ["train", "digits_cnn"])
    assert "-m" not in cmd and "--no-python" in cmd
    assert cmd[-3:-2] == [WORKER] and cmd[-2:] == ["train", "digits_cnn"]
    # what each torchrun worker runs, here in the hostile folder (test_train.py runs two for real)
    worker = cmd[cmd.index("--no-python") + 1:-2]
    result = subprocess.run([*worker, "list", "small_*"], capture_output=True, text=True,
                            cwd=hostile_folder, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("small_cnn")


def test_a_users_blocks_folder_never_stands_in_for_the_engines_blocks(hostile_folder):
    """The blocks ship as `engine.blocks`: with the working folder first on sys.path (python -c,
    a notebook, `python -m`), its blocks/ package is never imported by the engine."""
    (hostile_folder / "engine.py").unlink()  # the one name that is the package itself
    code = "import engine; print(type(engine.build('small_cnn')).__name__)"
    for argv in ([sys.executable, "-c", code], [sys.executable, "-m", "engine.cli", "build", "small_cnn"]):
        result = subprocess.run(argv, capture_output=True, text=True, cwd=hostile_folder, timeout=300)
        assert result.returncode == 0 and "shadowed" not in result.stderr, result.stderr[-2000:]


@pytest.mark.parametrize("argv", [["codegen", "small_cnn", "-o"], ["render", "small_cnn", "-o"]])
def test_a_path_the_file_system_refuses_is_a_clear_error(tmp_path, capsys, argv):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    target = blocker / "out.py"  # a folder that is a file: every user, root included, gets refused
    assert main([*argv, str(target)]) == 1
    err = capsys.readouterr().err
    assert "internal error" not in err and str(blocker) in err, err
