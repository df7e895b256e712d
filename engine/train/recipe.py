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
from engine.compiler.overrides import declare_recipe_keys
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
        # classify: {auxiliary output: weight of its loss}, added to the main output's loss
        "aux_weights": {"type": ["object", "null"], "additionalProperties": {"type": "number", "minimum": 0}},
        "optimizer": _OPTIMIZER,
        "optimizers": {"type": "object", "additionalProperties": _OPTIMIZER},
        "scheduler": {"anyOf": [{"type": "null"}, _NAMED]},
        "epochs": {"type": ["integer", "null"], "minimum": 1},
        "steps": {"type": ["integer", "null"], "minimum": 1},
        "clip_grad": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "amp": {"type": "boolean"},
        "device": {"type": "string", "pattern": "^(auto|cpu|mps|cuda(:[0-9]+)?)$"},
        "precision": {"enum": ["fp32", "bf16", "fp16", None]},
        "compile": {"type": "boolean"},
        "channels_last": {"type": "boolean"},
        "accumulate": {"type": "integer", "minimum": 1},
        "early_stop": {  # null: off (the object keywords only bind a mapping)
            "type": ["object", "null"], "required": ["metric"], "additionalProperties": False,
            "properties": {"metric": {"type": "string", "pattern": "^(train|val|test)_"},
                           "patience": {"type": "integer", "minimum": 1},
                           "mode": {"enum": ["min", "max"]},
                           "min_delta": {"type": "number", "minimum": 0}}},
        "stop_on_nonfinite": {"type": "boolean"},
        "log_every_steps": {"type": "integer", "minimum": 0},  # TensorBoard step scalars
        "ema": {  # null or a mapping: one schema, so a bad decay is reported at `decay:`
            "type": ["object", "null"], "required": ["decay"], "additionalProperties": False,
            "properties": {"decay": {"type": "number", "exclusiveMinimum": 0, "maximum": 1}}},
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
        "infer": {"type": "object", "properties": {"top_k": {"type": "integer", "minimum": 1},
                                                   "optimize": {"type": "boolean"}}},
    },
}
# The `description` of each SCHEMA property in `engine schema --recipe` (for editors): {dotted
# path: text}; a property missing here is described by its name and type.
DESCRIPTIONS = {
    "name": "the run's name: its folder is <output>/<name>-<time> (letters, digits, _ . -)",
    "description": "what the recipe trains, in a sentence",
    "extends": "a recipe this one changes: its keys merge into the base's",
    "spec": "the spec to train: a bundled name, a file, or {name, set: {param: value}}",
    "spec.name": "a bundled spec name or a spec file", "spec.set": "spec params to override",
    "data": "the dataset and how it is batched",
    "data.dataset": "a registered dataset (`engine list --recipes` shows them in use)",
    "data.root": "the folder of the data files (null: the default data folder)",
    "data.args": "the dataset's own options (each dataset declares which it takes)",
    "data.batch_size": "examples per training batch", "data.eval_batch_size": "examples per eval batch",
    "data.workers": "DataLoader worker processes (0: load in the main process)",
    "data.transforms": "augmentations per split: {train: [...], eval: [...]}",
    "data.transforms.train": "transforms of the training split, in order",
    "data.transforms.eval": "transforms of the evaluated split, in order",
    "procedure": "how to train: a procedure name or {name, option: value}",
    "procedure.name": "a registered procedure (classify, vae, gan, ...)",
    "loss": "the loss: {name, argument: value} (default: the procedure's)",
    "loss.name": "a registered loss",
    "aux_weights": "classify: the weight of each auxiliary output's loss, {aux1: 0.3, aux2: 0.3} "
                   "(the main output, `logits` or the first, weighs 1)",
    "optimizer": "the optimizer of a one-network spec: {name, lr, argument: value}",
    "optimizer.name": "a registered optimizer (adamw, sgd, ...)", "optimizer.lr": "the learning rate",
    "optimizer.groups": "per-parameter groups: [{params: glob, lr: ...}]",
    "optimizers": "one optimizer per network of a several-network spec: {network: {name, lr}}",
    "scheduler": "the learning-rate schedule: {name, argument: value} or null",
    "scheduler.name": "a registered scheduler",
    "epochs": "passes over the training data (give this or `steps`)",
    "steps": "optimizer steps to train (give this or `epochs`)",
    "clip_grad": "clip the gradient norm to this value (null: no clipping)",
    "amp": "automatic mixed precision on CUDA",
    "device": "where to train: auto, cpu, mps, cuda or cuda:N",
    "precision": "the training precision: fp32, bf16 or fp16 (null: the default)",
    "compile": "torch.compile the model", "channels_last": "channels-last memory format for images",
    "accumulate": "batches whose gradients add up before each optimizer step",
    "early_stop": "stop when a metric stops improving: {metric, patience, mode, min_delta}",
    "early_stop.metric": "the metric watched, e.g. val_loss",
    "early_stop.patience": "evaluations without improvement before stopping",
    "early_stop.mode": "min: lower is better; max: higher is better",
    "early_stop.min_delta": "the smallest change that counts as an improvement",
    "stop_on_nonfinite": "stop the run when the loss becomes infinite or NaN",
    "log_every_steps": "TensorBoard scalars every N steps (0: per epoch only)",
    "ema": "keep an exponential moving average of the weights: {decay}",
    "ema.decay": "the EMA decay, in (0, 1]",
    "seed": "the random seed (0 to 2**63 - 1)",
    "eval": "what to evaluate and when", "eval.every_epochs": "evaluate every N epochs (0: never)",
    "eval.metrics": "per-batch metrics (registered names)",
    "eval.sample_metrics": "metrics of generated samples, judged by `engine eval`",
    "eval.samples": "how many samples the sample metrics judge",
    "eval.split": "the split evaluated: train, val or test",
    "checkpoint": "when to save checkpoints", "checkpoint.every_steps": "save every N steps (0: never)",
    "checkpoint.every_epochs": "save every N epochs (0: never)",
    "freeze": "parameter name patterns (globs) that are not trained",
    "weights": "initial weights: torchvision, or a checkpoint file",
    "output": "the folder of run folders", "infer": "options of `engine infer`",
    "infer.top_k": "how many classes `engine infer` prints",
    "infer.optimize": "`engine infer` runs the inference build: batch norms folded, activations "
                      "fused, convs packed channels-last (as `engine infer --optimize`)",
}
declare_recipe_keys(SCHEMA)  # --set knows a recipe's keys from this schema, never a copy
DEFAULTS = {"epochs": None, "steps": None, "clip_grad": None, "amp": False, "ema": None,
            "seed": 0, "scheduler": None, "freeze": [], "output": "runs", "loss": None, "aux_weights": None,
            "weights": None, "stop_on_nonfinite": True, "device": "auto", "precision": None,
            "compile": False, "channels_last": False, "accumulate": 1, "early_stop": None}


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
    shaped, info = None, None
    if spec_path is not None and not errors:
        info = _data_info(doc, errors)  # read once: the spec's data sizes and the class count
        spec_set = {**_data_params(info, spec_path), **spec_set}
    if spec_path is not None and not errors:
        shaped, spec_errors = _analyze_spec(spec_path, spec_set)
        errors += spec_errors
    if shaped is not None:
        errors += check_weights(doc, shaped.spec.name) + check_fit(doc, shaped, info)
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
    for d in check_schema_with(_validator(), doc):
        yield Diagnostic(d.message, d.loc, d.path, d.hint or _schema_hint(d)) if not d.hint else d


_TYPES = {"integer": "a whole number (e.g. 10)", "number": "a number (e.g. 0.5)", "string": "a string",
          "array": "a list ([a, b])", "object": "a mapping ({key: value})", "boolean": "true or false",
          "null": "null"}


def _schema_hint(d: Diagnostic) -> str:
    """What to write instead, for a JSON Schema error of a recipe (the schema gives none)."""
    import re
    m = d.message
    bounds = (("less than or equal to the minimum", "above"), ("less than the minimum", "at least"),
              ("greater than or equal to the maximum", "below"), ("greater than the maximum", "at most"))
    for words, how in bounds:
        if (found := re.search(rf"is {words} of (\S+)$", m)):
            return f"write a number {how} {found.group(1)}"
    if (found := re.search(r"is not of type (.*)$", m)):
        kinds = [_TYPES.get(k.strip(" '"), k.strip(" '")) for k in found.group(1).split(",")]
        return "write " + " or ".join(kinds)
    if (found := re.search(r"is not one of \[(.*)\]$", m)):
        return "write one of " + ", ".join(c.strip(" '") for c in found.group(1).split(","))
    if "does not match" in m and d.path == "name":
        return "one folder-name word: letters, digits, _ . - (no slash or space), up to 100 characters"
    if (found := re.search(r"'(\w+)' is a required property$", m)):
        return f"add `{found.group(1)}:`"
    return ""


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
    args, name = data.get("args"), data["dataset"]
    accepted = getattr(DATASETS.get(name), "ARGS", None)  # what each dataset declares it reads
    unknown = [k for k in args if k not in accepted] if isinstance(args, LocDict) and \
        accepted is not None else []
    for key in unknown:
        yield Diagnostic(f"dataset '{name}' takes no argument '{key}' under data.args",
                         args.key_loc(key), f"data.args.{key}", suggest(key, accepted, n=1) or
                         f"'{name}' takes: {', '.join(accepted) or 'no arguments'}")
    if unknown:
        return
    from engine.train.data import build_dataset, data_root
    try:  # reads the files once (they are cached for the run): a missing root shows up here
        build_dataset(data["dataset"], data_root(data.get("root")), "test", doc.get("seed", 0),
                      None, dict(data.get("args") or {}))
    except SpecError as err:  # a missing root: point at the recipe line that chose it
        for d in err.diagnostics:
            key = d.path.removeprefix("data.").removeprefix("args.")
            if isinstance(args, LocDict) and key in args:  # a bad argument: point at it
                yield Diagnostic(d.message, args.value_loc(key), f"data.args.{key}", d.hint)
                continue
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
        both = doc.get("steps") is not None  # both: point at the second of them
        at = doc.key_loc("steps" if doc.key_loc("steps").line > doc.key_loc("epochs").line
                         else "epochs") if both else doc.loc
        yield Diagnostic("give exactly one of `epochs:` and `steps:`", at, "",
                         "write epochs: 10 (or steps: 2000); --set epochs=null --set steps=5 switches")


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


def check_fit(doc: LocDict, shaped, info=None) -> list[Diagnostic]:
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
        return procedure.recipe_problems(doc, shaped)
    classes = info.num_classes if info is not None else 0
    return [Diagnostic(message, at, "spec", hint)
            for message, hint in procedure.spec_problems(shaped, classes)] + \
        procedure.recipe_problems(doc, shaped)


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


def _data_info(doc: LocDict, errors: list):
    """The dataset's DatasetInfo (sizes, classes), or None with its errors added."""
    from engine.train.data import dataset_info
    data = doc.get("data") or {}
    try:
        return dataset_info(data["dataset"], data.get("root"), dict(data.get("args") or {}))
    except SpecError as err:
        errors += [Diagnostic(d.message, doc.value_loc("data"), "data", d.hint) for d in err.diagnostics]
        return None


def _data_params(info, spec_path: Path) -> dict:
    """Sizes only the data knows (a vocabulary's), for the spec params of the same names.

    A text dataset's `DatasetInfo.spec_params` (e.g. `{src_vocab: 7853, tgt_vocab: 5893, pad: 0}`)
    fills the params the spec declares under those names; the recipe's own `spec: {set: ...}`
    still wins. Image datasets give none, so their recipes are unaffected.
    """
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
