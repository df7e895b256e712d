"""Recipes: load (extends, --set) -> validate (JSON Schema + registered names + the spec) -> Recipe.

A recipe is YAML too, and gets the same error quality as a spec: every error names the file,
line and key, with a did-you-mean for unknown procedures, datasets, optimizers and so on.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from engine.blocks.registry import suggest
from engine.compiler.ir import Diagnostic, Loc, LocDict, LocList, SpecError, dedupe
from engine.compiler.merge import RECIPES_DIR, find_spec, load_merged, parse_overrides
from engine.train import load_all
from engine.train.registry import DATASETS, LOSSES, METRICS, OPTIMIZERS, PROCEDURES, SCHEDULERS

# Judged on generated samples by `engine eval` (engine/train/judges.py), not per batch in training.
SAMPLE_METRICS = ("digit_fd", "label_accuracy", "code_agreement", "class_kept", "fcn_dice", "bleu",
                  "unigram_perplexity")
_NAMED = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
_OPTIMIZER = {"type": "object", "required": ["name", "lr"], "properties": {
    "name": {"type": "string"}, "lr": {"type": "number", "exclusiveMinimum": 0},
    "groups": {"type": "array", "items": {"type": "object", "required": ["params"],
                                          "properties": {"params": {"type": "string"}}}}}}
RUN_NAME = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "engine recipe", "type": "object", "additionalProperties": False,
    "required": ["name", "spec", "data", "procedure"],
    "properties": {
        # the run folder is <output>/<name>-<time>: a name is one plain folder-name word
        "name": {"type": "string", "pattern": RUN_NAME}, "description": {"type": "string"},
        "extends": {"type": "string"},
        "spec": {"anyOf": [{"type": "string"}, {
            "type": "object", "required": ["name"], "additionalProperties": False,
            "properties": {"name": {"type": "string"}, "set": {"type": "object"}}}]},
        "data": {"type": "object", "required": ["dataset"], "additionalProperties": False,
                 "properties": {
                     "dataset": {"type": "string"}, "root": {"type": ["string", "null"]},
                     "args": {"type": "object"},
                     "batch_size": {"type": "integer", "minimum": 1},
                     "eval_batch_size": {"type": "integer", "minimum": 1},
                     "workers": {"type": "integer", "minimum": 0},
                     "transforms": {"type": "object", "additionalProperties": False,
                                    "properties": {"train": {"type": "array"},
                                                   "eval": {"type": "array"}}}}},
        "procedure": {"anyOf": [{"type": "string"}, _NAMED]},
        "loss": _NAMED,
        "optimizer": _OPTIMIZER,
        "optimizers": {"type": "object", "additionalProperties": _OPTIMIZER},
        "scheduler": {"anyOf": [{"type": "null"}, _NAMED]},
        "epochs": {"type": ["integer", "null"], "minimum": 1},
        "steps": {"type": ["integer", "null"], "minimum": 1},
        "clip_grad": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "amp": {"type": "boolean"},
        "stop_on_nonfinite": {"type": "boolean"},
        "ema": {"anyOf": [{"type": "null"}, {
            "type": "object", "required": ["decay"], "additionalProperties": False,
            "properties": {"decay": {"type": "number", "exclusiveMinimum": 0, "maximum": 1}}}]},
        "seed": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
        "eval": {"type": "object", "additionalProperties": False, "properties": {
            "every_epochs": {"type": "integer", "minimum": 0},
            "metrics": {"type": "array", "items": {"type": "string"}},
            "sample_metrics": {"type": "array", "items": {"enum": list(SAMPLE_METRICS)}},
            "samples": {"type": "integer", "minimum": 2},
            "split": {"enum": ["train", "val", "test"]}}},
        "checkpoint": {"type": "object", "additionalProperties": False, "properties": {
            "every_steps": {"type": "integer", "minimum": 0},
            "every_epochs": {"type": "integer", "minimum": 0}}},
        "freeze": {"type": "array", "items": {"type": "string"}},
        "weights": {"type": ["string", "null"]},
        "output": {"type": "string"},
        "infer": {"type": "object", "properties": {"top_k": {"type": "integer", "minimum": 1}}},
    },
}
DEFAULTS = {"epochs": None, "steps": None, "clip_grad": None, "amp": False, "ema": None,
            "seed": 0, "scheduler": None, "freeze": [], "output": "runs", "loss": None,
            "weights": None, "stop_on_nonfinite": True}


@dataclass
class Recipe:
    """A validated recipe: the merged document plus the resolved values the runner needs."""

    name: str
    file: str
    doc: LocDict
    spec_path: Path
    spec_overrides: dict[str, Any]
    values: dict[str, Any] = field(default_factory=dict)
    shaped: Any = None  # the spec after shape inference, from validation (no weights)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        value = self.values.get(key)
        return default if value is None else value


def find_recipe(name: str) -> Path:
    path = Path(name)
    if path.exists() or path.suffix in (".yaml", ".yml") or "/" in name:
        return path
    bundled = RECIPES_DIR / f"{name}.yaml"
    return bundled if bundled.exists() else path


def load_recipe(recipe: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Load and validate a recipe (and the spec it names); raise SpecError with every error."""
    load_all()
    path = find_recipe(str(recipe))
    doc = load_merged(path, parse_overrides(list(overrides or [])), recipe=True)
    errors = list(check_schema(doc, path))
    # the rest assumes the structure the schema checks: no further rule runs on a broken one
    spec_path, spec_set = _spec_ref(doc, path, errors) if not errors else (None, {})
    if not errors:
        errors += [d for rule in RULES for d in rule(doc)]
    shaped = None
    if spec_path is not None and not errors:
        spec_set = {**_data_params(doc, spec_path, errors), **spec_set}
    if spec_path is not None and not errors:
        shaped, spec_errors = _analyze_spec(spec_path, spec_set)
        errors += spec_errors
    if shaped is not None:
        errors += check_weights(doc, shaped.spec.name) + check_fit(doc, shaped)
    if errors:
        raise SpecError(dedupe(errors))
    values = {**DEFAULTS, **{k: v for k, v in doc.items() if k != "extends"}}
    values["procedure"], values["options"] = procedure_options(doc["procedure"])
    return Recipe(str(doc["name"]), str(path), doc, spec_path, spec_set, values, shaped)


# ---- rules ----------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(SCHEMA)


def check_schema(doc: Any, path: Path) -> Iterator[Diagnostic]:
    if not isinstance(doc, LocDict):
        yield Diagnostic("a recipe must be a YAML mapping (name:, spec:, data:, ...)", Loc(str(path)))
        return
    from engine.compiler.validate import check_schema_with
    yield from check_schema_with(_validator(), doc)


def _named(doc: LocDict, key: str, registry, where: str = "name") -> Iterator[Diagnostic]:
    value = doc.get(key)
    if isinstance(value, LocDict) and where in value and value[where] not in registry:
        yield Diagnostic(f"unknown {registry.kind} '{value[where]}'", value.value_loc(where),
                         key, registry.hint(value[where]))


def procedure_options(value: Any) -> tuple[str, dict[str, Any]]:
    """`procedure: vae` or `procedure: {name: vae, kl_weight: 0.5}` -> (name, options with defaults)."""
    name, given = (value["name"], {k: v for k, v in value.items() if k != "name"}) \
        if isinstance(value, dict) else (value, {})
    return name, {**PROCEDURES.get(name).OPTIONS, **given}


def check_procedure(doc: LocDict) -> Iterator[Diagnostic]:
    value = doc["procedure"]
    name = value["name"] if isinstance(value, LocDict) else value
    where = value.value_loc("name") if isinstance(value, LocDict) else doc.value_loc("procedure")
    if name not in PROCEDURES:
        yield Diagnostic(f"unknown procedure '{name}'", where, "procedure", PROCEDURES.hint(name))
        return
    procedure = PROCEDURES.get(name)
    for key in value if isinstance(value, LocDict) else ():
        if key == "name":
            continue
        if key not in procedure.OPTIONS:
            hint = suggest(key, procedure.OPTIONS, n=1) or \
                f"procedure '{name}' takes: {', '.join(procedure.OPTIONS) or 'no options'}"
            yield Diagnostic(f"unknown option '{key}' of procedure '{name}'", value.key_loc(key),
                             f"procedure.{key}", hint)
        elif key in procedure.CHOICES and value[key] not in procedure.CHOICES[key]:
            yield Diagnostic(f"procedure '{name}' has no {key} '{value[key]}'",
                             value.value_loc(key), f"procedure.{key}",
                             f"write one of {', '.join(procedure.CHOICES[key])}")


def check_dataset(doc: LocDict) -> Iterator[Diagnostic]:
    data = doc["data"]
    if data["dataset"] not in DATASETS:
        yield Diagnostic(f"unknown dataset '{data['dataset']}'", data.value_loc("dataset"),
                         "data.dataset", DATASETS.hint(data["dataset"]))
        return
    from engine.train.data import build_dataset, data_root
    try:  # reads the files once (they are cached for the run): a missing root shows up here
        build_dataset(data["dataset"], data_root(data.get("root")), "test", doc.get("seed", 0),
                      None, dict(data.get("args") or {}))
    except SpecError as err:  # a missing root: point at the recipe line that chose it
        for d in err.diagnostics:
            at = data.value_loc("root") if "root" in data else data.value_loc("dataset")
            yield Diagnostic(d.message, at, "data.root", d.hint)


def check_optimizers(doc: LocDict) -> Iterator[Diagnostic]:
    yield from _named(doc, "optimizer", OPTIMIZERS)
    for name, opt in (doc.get("optimizers") or {}).items():
        if opt["name"] not in OPTIMIZERS:
            yield Diagnostic(f"unknown optimizer '{opt['name']}'", opt.value_loc("name"),
                             f"optimizers.{name}", OPTIMIZERS.hint(opt["name"]))
    if "optimizer" not in doc and "optimizers" not in doc:
        yield Diagnostic("the recipe names no optimizer", doc.loc, "",
                         "add optimizer: {name: adamw, lr: 0.001}")


def check_scheduler_loss_metrics(doc: LocDict) -> Iterator[Diagnostic]:
    yield from _named(doc, "scheduler", SCHEDULERS)
    yield from _named(doc, "loss", LOSSES)
    metrics = (doc.get("eval") or {}).get("metrics") or []
    for i, metric in enumerate(metrics):
        if metric not in METRICS:
            yield Diagnostic(f"unknown metric '{metric}'", metrics.item_loc(i), "eval.metrics",
                             METRICS.hint(metric))


def check_arguments(doc: LocDict) -> Iterator[Diagnostic]:
    """The optimizer's, scheduler's and loss's arguments against their signatures
    (engine/train/arguments.py); the names themselves are checked by the rules above."""
    from engine.train.arguments import argument_problems
    optimizers = {"optimizer": doc.get("optimizer"),
                  **{f"optimizers.{k}": v for k, v in (doc.get("optimizers") or {}).items()}}
    for where, cfg in optimizers.items():
        if isinstance(cfg, LocDict) and cfg.get("name") in OPTIMIZERS:
            yield from argument_problems(OPTIMIZERS.get(cfg["name"]), cfg, where,
                                         f"optimizer '{cfg['name']}'", ("params", "groups"))
    for key, registry, skip in (("scheduler", SCHEDULERS, ("optimizer", "total_steps")),
                                ("loss", LOSSES, ())):
        cfg = doc.get(key)
        if isinstance(cfg, LocDict) and cfg.get("name") in registry:
            yield from argument_problems(registry.get(cfg["name"]), cfg, key,
                                         f"{key} '{cfg['name']}'", skip)


def check_length(doc: LocDict) -> Iterator[Diagnostic]:
    if (doc.get("epochs") is not None) == (doc.get("steps") is not None):
        yield Diagnostic("give exactly one of `epochs:` and `steps:`", doc.loc, "",
                         "write epochs: 10 (or steps: 2000); --set epochs=null steps=5 switches")


def check_transforms(doc: LocDict) -> Iterator[Diagnostic]:
    from engine.train.data.transforms import build_transform
    for split, items in ((doc["data"].get("transforms") or {}).items()):
        try:
            build_transform(list(items), f"data.transforms.{split}")
        except SpecError as err:
            for d in err.diagnostics:
                yield Diagnostic(d.message, d.loc if d.loc and d.loc.line else items.loc,
                                 f"data.transforms.{split}", d.hint)


def check_weights(doc: LocDict, spec_name: str | None = None) -> list[Diagnostic]:
    """`weights:` names torchvision (for a spec that has its weights) or a checkpoint file; that
    the file exists is checked when a run starts (an earlier run may still be making it)."""
    from engine.train.weights import source_problem
    value = doc.get("weights")
    problem = source_problem(value, spec_name) if value is not None else None
    return [Diagnostic(problem[0], doc.value_loc("weights"), "weights", problem[1])] if problem else []


def check_finite(doc: Any, path: str = "") -> Iterator[Diagnostic]:
    """No recipe number may be infinite or NaN (`lr: .inf` passes `exclusiveMinimum: 0` and
    trains to NaN losses that exit 0)."""
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in items:
        where = f"{path}.{key}" if path else str(key)
        if isinstance(value, float) and not math.isfinite(value):
            loc = doc.value_loc(key) if isinstance(doc, LocDict) else getattr(doc, "loc", None)
            if isinstance(doc, LocList):
                loc = doc.item_loc(key)
            yield Diagnostic(f"{where} is {value}, not a finite number", loc, where,
                             "write a finite number")
        else:
            yield from check_finite(value, where)


RULES = (check_procedure, check_dataset, check_optimizers, check_scheduler_loss_metrics,
         check_arguments, check_length, check_transforms, check_weights, check_finite)


def check_fit(doc: LocDict, shaped) -> list[Diagnostic]:
    """The procedure can train this spec on this data: one network or several, as it needs,
    and what the procedure itself checks (a classifier's logits cover the data's classes)."""
    name = procedure_options(doc["procedure"])[0]
    procedure, spec = PROCEDURES.get(name), shaped.spec
    nets = list(spec.networks)
    at = doc.value_loc("spec")
    if procedure.networks == "one" and spec.multi:
        return [Diagnostic(f"procedure '{name}' trains one network; spec '{spec.name}' has "
                           f"{len(nets)} ({', '.join(nets)})", at, "spec",
                           "choose a single-network spec, or a procedure for several networks")]
    if procedure.networks == "several" and not spec.multi:
        return [Diagnostic(f"procedure '{name}' trains several networks; spec '{spec.name}' has one",
                           at, "spec", "choose a spec with `networks:` (see the procedure's "
                           "bundled recipes for the names it needs)")]
    if spec.multi:
        return []
    classes = _data_classes(doc)
    return [Diagnostic(message, at, "spec", hint)
            for message, hint in procedure.spec_problems(shaped, classes)]


def _data_classes(doc: LocDict) -> int:
    from engine.train.data import dataset_info
    data = doc["data"]
    try:
        return dataset_info(data["dataset"], data.get("root"), dict(data.get("args") or {})).num_classes
    except SpecError:  # reported by check_dataset
        return 0


def _spec_ref(doc: Any, path: Path, errors: list) -> tuple[Path | None, dict]:
    if not isinstance(doc, LocDict) or "spec" not in doc:
        return None, {}
    ref = doc["spec"]
    name, overrides = (ref["name"], dict(ref.get("set") or {})) if isinstance(ref, dict) \
        else (ref, {})
    if not isinstance(name, str):
        return None, {}
    local = path.parent / name
    try:
        return (local if local.exists() else find_spec(name)), overrides
    except SpecError as err:
        errors += [Diagnostic(d.message, doc.value_loc("spec"), "spec", d.hint)
                   for d in err.diagnostics]
        return None, {}


def _data_params(doc: LocDict, spec_path: Path, errors: list) -> dict:
    """Sizes only the data knows (a vocabulary's), for the spec params of the same names.

    A text dataset's `DatasetInfo.spec_params` (e.g. `{src_vocab: 7853, tgt_vocab: 5893, pad: 0}`)
    fills the params the spec declares under those names; the recipe's own `spec: {set: ...}`
    still wins. Image datasets give none, so their recipes are unaffected.
    """
    from engine.train.data import dataset_info
    data = doc.get("data") or {}
    try:
        info = dataset_info(data["dataset"], data.get("root"), dict(data.get("args") or {}))
    except SpecError as err:
        errors += [Diagnostic(d.message, doc.value_loc("data"), "data", d.hint) for d in err.diagnostics]
        return {}
    given = getattr(info, "spec_params", None) or {}
    if not given:
        return {}
    spec = load_merged(spec_path, {})  # a spec that is not a mapping is reported by analyze
    declared = (spec.get("params") if isinstance(spec, dict) else None) or {}
    return {k: v for k, v in given.items() if isinstance(declared, dict) and k in declared}


def _analyze_spec(spec_path: Path, overrides: dict):
    """The recipe's spec, shaped (the run builds from it), or its errors."""
    from engine.compiler import analyze
    try:
        return analyze(spec_path, overrides), []
    except SpecError as err:
        return None, err.diagnostics
