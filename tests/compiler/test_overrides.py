"""The `--set` grammar (engine/compiler/overrides.py): key=value, +key=value, ++key=value, ~key
and ~key=value, with values read as YAML 1.2 core schema; applied to specs and to recipes."""

from __future__ import annotations

import math

import pytest
import yaml

import engine
from engine.compiler import build_modules
from engine.compiler.ir import LocDict, SpecError
from engine.compiler.overrides import (
    ADD,
    DELETE,
    FORCE,
    RECIPE_KEYS,
    RECIPE_OPEN,
    SET,
    apply_overrides,
    declared_keys,
    parse_override,
    parse_overrides,
    read_value,
)

SPEC = """
    name: base
    params: {n: 4, widths: [2, 3]}
    inputs: {x: [B, 5]}
    graph:
      fc1: {op: linear, out: $n}
      act: relu
      fc2: {op: linear, out: 2}
"""


def model(path, overrides):
    """The module `path` builds with `overrides` (a list of --set strings or a dict)."""
    return build_modules(engine.analyze(path, overrides), "cpu")


def error(call, *args) -> tuple[str, str]:
    """The one diagnostic `call(*args)` raises: (message, hint)."""
    with pytest.raises(SpecError) as info:
        call(*args)
    [diag] = info.value.diagnostics
    return diag.message, diag.hint


# --- the grammar on its own ---------------------------------------------------------------------

@pytest.mark.parametrize("item, op, key, value", [
    ("lr=0.01", SET, "lr", 0.01),
    ("optimizer.lr=0.01", SET, "optimizer.lr", 0.01),
    ("+scheduler.warmup_steps=10", ADD, "scheduler.warmup_steps", 10),
    ("++data.batch_size=32", FORCE, "data.batch_size", 32),
    ("~loss.label_smoothing=0.05", DELETE, "loss.label_smoothing", 0.05),
    ("steps=", SET, "steps", None),  # an empty value is null, as in YAML
])
def test_each_form_parses(item, op, key, value):
    ov = parse_override(item)
    assert (ov.op, ov.key, ov.value) == (op, key, value)
    assert str(ov.loc) == f"--set {item}"


def test_a_delete_without_a_value_matches_anything_and_the_last_override_of_a_key_wins():
    ov = parse_override("~loss.label_smoothing")
    assert (ov.op, ov.key) == (DELETE, "loss.label_smoothing")
    parsed = parse_overrides(["n=1", "n=2", "~m", "+k=3"])
    assert list(parsed) == ["n", "~m", "+k"] and parsed["n"].value == 2


@pytest.mark.parametrize("text, value", [
    ("1e-3", 1e-3), ("1.0e-3", 1e-3), ("-1e-3", -1e-3), ("1E3", 1000.0), (".5", 0.5),
    ("1.", 1.0), ("+2.5", 2.5), ("10", 10), ("-3", -3), ("012", 12), ("0x1f", 31), ("0o17", 15),
    ("true", True), ("False", False), ("null", None), ("~", None), ("", None),
    (".inf", math.inf), ("-.Inf", -math.inf),
    # YAML 1.1 read these as bool, int, int (sexagesimal) and date: YAML 1.2 keeps them strings
    ("yes", "yes"), ("off", "off"), ("1_000", "1_000"), ("1:30", "1:30"), ("2024-01-01", "2024-01-01"),
    ("'1e-3'", "1e-3"), ('"true"', "true"), ("adamw", "adamw"),
    ("[1, 2]", [1, 2]), ("[1e-3, true, x]", [1e-3, True, "x"]), ("{a: 1, b: [2e0]}", {"a": 1, "b": [2.0]}),
])
def test_values_are_read_as_yaml_1_2_core_schema(text, value):
    got = read_value(text)
    assert got == value and type(got) is type(value)


def test_nan_and_nested_values_become_located_containers():
    assert math.isnan(read_value(".nan"))
    value = parse_override("x={a: [1, {b: 2}]}").value
    assert isinstance(value, LocDict) and value == {"a": [1, {"b": 2}]}


@pytest.mark.parametrize("item, why", [
    ("lr", "no '='"),
    ("optimizer.lr", "no '='"),
    ("+lr", "no '='"),
    ("++lr", "no '='"),
    ("=3", "no key before '='"),
    ("+=3", "no key before '='"),
    ("~", "no key"),
    ("", "it is empty"),
    ("+~lr", "one prefix"),
    ("~+lr", "one prefix"),
    ("+++lr=1", "one prefix"),
    ("~~lr", "one prefix"),
    ("a..b=1", "not a key path"),
    (".a=1", "not a key path"),
    ("a.=1", "not a key path"),
    ("my key=1", "not a key path"),
    ("lr=[1, 2", "the value is not YAML"),
    ("lr={a: 1", "the value is not YAML"),
    ("lr=!delete", "the value is not YAML"),
    ("~lr=[", "the value is not YAML"),
])
def test_a_malformed_override_shows_the_accepted_forms(item, why):
    message, hint = error(parse_override, item)
    assert message.startswith(f"cannot read override '{item}'") and why in message
    for form in ("key=value", "+key=value", "++key=value", "~key", "~key=value"):
        assert form in hint


# --- applied to a spec: a single word names a param ---------------------------------------------

def test_a_spec_param_is_set_with_typed_values(spec_file):
    path = spec_file(SPEC)
    assert model(path, ["n=7"]).fc1.out_features == 7
    assert model(path, ["widths=[1, 2, 3]", "n=0x10"]).fc1.out_features == 16


def test_spec_errors_name_the_param_and_the_forms(spec_file):
    path = spec_file(SPEC)
    message, hint = error(engine.analyze, path, ["m=3"])
    assert message == "the spec has no param 'm'" and "its params: n, widths" in hint
    assert "+m=... adds a param" in hint
    assert "did you mean 'widths'?" in error(engine.analyze, path, ["width=[1]"])[1]
    message, hint = error(engine.analyze, path, ["+n=3"])
    assert message == "+n: 'n' already exists (it is 4)"
    assert hint == "drop the '+' to change it: --set n=...; ++n=... sets it whether or not it exists"
    message, hint = error(engine.analyze, path, ["graph.fc1.outt=3"])
    assert message == "override path 'graph.fc1.outt' does not exist"
    assert "did you mean 'out'?" in hint and "+graph.fc1.outt=..." in hint
    message, hint = error(engine.analyze, path, ["graph.fc9.out=3"])
    assert message == "override path 'graph.fc9' does not exist"
    assert hint == "did you mean 'fc2' or 'fc1'?; +graph.fc9.out=... adds it with the mappings above it"


def test_spec_add_force_and_delete(spec_file):
    path = spec_file(SPEC)
    net = model(path, ["+graph.fc2.bias=false", "++n=5", "+extra=1"])
    assert net.fc2.bias is None and net.fc1.out_features == 5
    assert not hasattr(model(path, ["~graph.act"]), "act")
    assert model(path, ["~graph.act=relu"]) is not None
    message, hint = error(engine.analyze, path, ["~graph.act=tanh"])
    assert "not deleted, 'graph.act' is relu" in message and "~graph.act" in hint
    message, _ = error(engine.analyze, path, ["~graph.ac"])
    assert "there is no 'graph.ac' to delete" in message
    # a dimension may be bound by name, as before
    assert engine.analyze(path, ["dims.B=3"]).spec is not None


def test_dict_overrides_from_the_api_take_the_same_prefixes(spec_file):
    path = spec_file(SPEC)
    assert model(path, {"n": 6}).fc1.out_features == 6
    assert not hasattr(model(path, {"~graph.act": None}), "act")
    message, _ = error(engine.analyze, path, {"+n": 1})
    assert "already exists" in message


# --- applied to a recipe: paths start at the top ------------------------------------------------

def recipe_doc() -> LocDict:
    """A merged recipe as the overrides see it (a LocDict of LocDicts)."""
    return parse_override(
        "doc={name: r, spec: small_cnn, data: {dataset: digits, batch_size: 32, args: {}}, "
        "procedure: {name: super_resolve}, loss: {name: cross_entropy, label_smoothing: 0.05}, "
        "optimizer: {name: adamw, lr: 0.003}, scheduler: {name: cosine, warmup_steps: 40}, "
        "epochs: 20}").value


def apply(doc: LocDict, *items: str) -> LocDict:
    apply_overrides(doc, parse_overrides(list(items)), recipe=True)
    return doc


def test_recipe_nested_keys_add_force_and_delete():
    doc = apply(recipe_doc(), "optimizer.lr=1e-3", "data.batch_size=16", "+optimizer.betas=[0.5, 0.9]",
                "++scheduler.warmup_steps=10", "++scheduler.min_factor=0.1", "~loss.label_smoothing",
                "~epochs", "steps=5")
    assert doc["optimizer"] == {"name": "adamw", "lr": 1e-3, "betas": [0.5, 0.9]}
    assert doc["data"]["batch_size"] == 16
    assert doc["scheduler"] == {"name": "cosine", "warmup_steps": 10, "min_factor": 0.1}
    assert doc["loss"] == {"name": "cross_entropy"} and "epochs" not in doc and doc["steps"] == 5
    assert str(doc["optimizer"].value_loc("lr")) == "--set optimizer.lr=1e-3"


def test_lr_is_short_for_the_optimizers_lr():
    assert apply(recipe_doc(), "lr=1e-3")["optimizer"]["lr"] == 1e-3
    doc = recipe_doc()
    del doc["optimizer"]
    doc["optimizers"] = LocDict({"g": LocDict({"name": "adam", "lr": 1}), "d": LocDict({"lr": 2})})
    message, hint = error(apply, doc, "lr=1e-3")
    assert "several optimizers" in message and "optimizers.g.lr, optimizers.d.lr" in hint


def test_recipe_keys_the_format_declares_and_argument_mappings_need_no_plus():
    doc = apply(recipe_doc(), "clip_grad=1.0", "data.eval_batch_size=8", "eval.split=test",
                "data.args.set=Set5", "procedure.scale=3", "amp=true")
    assert doc["clip_grad"] == 1.0 and doc["data"]["eval_batch_size"] == 8
    assert doc["eval"] == {"split": "test"} and doc["data"]["args"] == {"set": "Set5"}
    assert doc["procedure"]["scale"] == 3 and doc["amp"] is True


def test_recipe_missing_keys_are_located_with_did_you_mean_and_the_plus_hint():
    message, hint = error(apply, recipe_doc(), "optimizer.momentun=0.9")
    assert message == "override path 'optimizer.momentun' does not exist"
    assert hint == "it has: name, lr; to add it write +optimizer.momentun=..."
    message, hint = error(apply, recipe_doc(), "optimizer.lrr=0.1")
    assert hint == "did you mean 'lr'?; to add it write +optimizer.lrr=..."
    message, hint = error(apply, recipe_doc(), "epoch=3")
    assert "did you mean 'epochs'?" in hint and "+epoch=..." in hint
    message, hint = error(apply, recipe_doc(), "optimzer.lr=3")
    assert message == "override path 'optimzer' does not exist" and "did you mean 'optimizer'?" in hint
    message, hint = error(apply, recipe_doc(), "+scheduler.warmup_steps=10")
    assert message == "+scheduler.warmup_steps: 'scheduler.warmup_steps' already exists (it is 40)"
    assert "drop the '+'" in hint and "++scheduler.warmup_steps=" in hint
    message, hint = error(apply, recipe_doc(), "~loss.label_smothing")
    assert "no 'loss.label_smothing' to delete" in message and "did you mean 'label_smoothing'?" in hint
    message, hint = error(apply, recipe_doc(), "~loss.label_smoothing=0.1")
    assert message == "~loss.label_smoothing=0.1: not deleted, 'loss.label_smoothing' is 0.05"
    message, hint = error(apply, recipe_doc(), "spec.set.n=3")
    assert "'spec' is small_cnn, not a mapping" in message
    assert hint == "write spec={name: small_cnn, set: {n: ...}}"


def test_add_creates_the_mappings_above_it():
    doc = apply(recipe_doc(), "+ema.decay=0.99", "+optimizer.groups.head=1")
    assert doc["ema"] == {"decay": 0.99} and doc["optimizer"]["groups"] == {"head": 1}


def test_the_declared_recipe_keys_follow_the_recipe_schema():
    from engine.train.recipe import SCHEMA
    assert declared_keys(SCHEMA) == RECIPE_KEYS, \
        "a key was added to (or removed from) the recipe SCHEMA: copy declared_keys(SCHEMA) " \
        "into RECIPE_KEYS in engine/compiler/overrides.py"
    assert RECIPE_OPEN == ("data.args", "procedure", "spec.set")


# --- the acceptance command ---------------------------------------------------------------------

def test_the_issue_command_trains_digits_cnn(tmp_path, capsys):
    """`engine train digits_cnn --set lr=1e-3 --set +scheduler.warmup_steps=10 --set
    ~loss.label_smoothing` trains (shortened to one epoch), and the run's saved recipe holds all
    three changes. On that saved recipe, which now sets the key, `+` is refused (`+` only adds), as
    in Hydra, with a hint to drop the `+` or write `++`."""
    from engine.cli import main
    out = tmp_path / "runs"
    command = ["train", "digits_cnn", "--set", "lr=1e-3", "--set", "+scheduler.warmup_steps=10",
               "--set", "~loss.label_smoothing", "--set", "epochs=1", "--output", str(out),
               "--device", "cpu"]
    assert main(command) == 0
    [folder] = out.iterdir()
    saved = yaml.safe_load((folder / "recipe.yaml").read_text())
    assert saved["optimizer"]["lr"] == 1e-3 and saved["scheduler"]["warmup_steps"] == 10
    assert "label_smoothing" not in saved["loss"] and saved["epochs"] == 1
    capsys.readouterr()
    assert main(["validate", str(folder / "recipe.yaml"), "--set", "+scheduler.warmup_steps=20"]) == 1
    err = capsys.readouterr().err
    assert "'scheduler.warmup_steps' already exists (it is 10)" in err and "drop the '+'" in err
