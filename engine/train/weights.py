"""Starting weights: torchvision's pretrained weights or another run's checkpoint, loaded into a
freshly built model (`engine build --weights`, `engine.build(weights=...)`, a recipe's `weights:`).

Sources:
- `torchvision` (the model's DEFAULT weights) or `torchvision:IMAGENET1K_V2` (a named set), for
  the bundled specs in `TORCHVISION` and `TORCHVISION_ZOO` (`torchvision_model(spec)`): fetched
  through torchvision's weights API into torch.hub's cache (`$TORCH_HOME/hub/checkpoints/<file>`,
  so it works offline once cached) and translated by the spec's `rename:` map;
- a `.pt`/`.pth` file or a glob of them (the newest match): a run's `checkpoints/last.pt` or
  `best.pt` (the weights the run evaluated: its EMA copy where it kept one), or a plain
  state_dict in the reference's names (renamed like torchvision's).

An entry whose key and shape agree loads as is; one whose shape differs (a 10-class head from a
1000-class one), or that the source lacks, stays at the fresh initialisation; source entries the
model lacks are dropped. The report is `engine diff`'s weight-transfer comparison
(`compare_entries`), of the source's state_dict against the model's.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

from engine.blocks.registry import suggest
from engine.compiler.ir import Loc, Shaped, located_error
from engine.compiler.statedict import rename_state_dict
from engine.train.checkpoint import load_checkpoint, newest_match, trained_weights
from engine.views.diff import WeightTransfer, compare_entries

# spec name -> torchvision model name (its builder and weights enum: `get_model_weights(name)`),
# for the specs whose state_dict equals torchvision's. TORCHVISION: the classifiers that
# tests/compiler/test_torchvision_parity.py checks (its VARIANTS, the same table)
TORCHVISION = {
    "alexnet": "alexnet", "squeezenet1_0": "squeezenet1_0", "squeezenet1_1": "squeezenet1_1",
    **{f"vgg{n}{bn}": f"vgg{n}{bn}" for n in (11, 13, 16, 19) for bn in ("", "_bn")},
    **{f"resnet{n}": f"resnet{n}" for n in (18, 34, 50, 101, 152)},
    **{f"densenet{n}": f"densenet{n}" for n in (121, 161, 169, 201)},
    **{f"convnext_{s}": f"convnext_{s}" for s in ("tiny", "small", "base", "large")},
    **{f"vit_{s}{p}": f"vit_{s}_{p}" for s in ("b", "l") for p in (16, 32)},
    "googlenet": "googlenet", "inception_v3": "inception_v3",
}
# the rest of the zoo, each family checked by its tests/compiler/test_zoo_*.py; segmentation models
# are torchvision.models.segmentation's (COCO weights with the 21 VOC classes; FCN's and DeepLabV3's
# with the aux head, as the specs have it). An entry whose spec file is not bundled (yet) is
# skipped (`torchvision_specs`); tests/train/test_weights_zoo.py checks that every bundled spec
# named like a torchvision model with weights is here
TORCHVISION_ZOO = {
    **{s: s for s in ("resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
                      "wide_resnet50_2", "wide_resnet101_2")},
    "vit_h14": "vit_h_14",  # DEFAULT (SWAG E2E) is for 518 x 518 images: --set image_size=518
    **{s: s for s in ("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small")},
    **{f"mnasnet{w}": f"mnasnet{w}" for w in ("0_5", "0_75", "1_0", "1_3")},
    **{f"shufflenet_v2_{w}": f"shufflenet_v2_{w}" for w in ("x0_5", "x1_0", "x1_5", "x2_0")},
    **{f"efficientnet_{v}": f"efficientnet_{v}" for v in ("b0", "b1", "b2", "b3", "b4", "b5", "b6",
                                                          "b7", "v2_s", "v2_m", "v2_l")},
    **{f"regnet_x_{f}": f"regnet_x_{f}" for f in ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf",
                                                  "32gf")},
    **{f"regnet_y_{f}": f"regnet_y_{f}" for f in ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf",
                                                  "32gf", "128gf")},
    **{s: s for s in ("swin_t", "swin_s", "swin_b", "swin_v2_t", "swin_v2_s", "swin_v2_b", "maxvit_t")},
    **{s: s for s in ("fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101",
                      "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large")},
}
# torchvision runs these weights with transform_input=True; the specs have no input transform
TRANSFORM_INPUT = {"googlenet", "inception_v3"}
FILE_SUFFIXES = (".pt", ".pth")
_MAX_KEYS = 10


def torchvision_model(spec: str) -> str | None:
    """The torchvision model whose weights spec `spec` (a spec's `name:`) takes, or None."""
    return TORCHVISION.get(spec) or TORCHVISION_ZOO.get(spec)


def torchvision_specs() -> list[str]:
    """The bundled specs with torchvision weights: the tables' entries whose spec file exists."""
    from engine.compiler.merge import SPECS_DIR
    return [s for s in {**TORCHVISION, **TORCHVISION_ZOO} if (SPECS_DIR / f"{s}.yaml").is_file()]


@dataclass
class WeightsReport:
    """What loading did: the source, the spec, and the weight transfer (A: source, B: model)."""

    source: str
    spec: str
    transfer: WeightTransfer
    note: str = ""

    def text(self) -> str:
        w = self.transfer
        lines = [f"weights: {self.source} -> {self.spec}"]
        if not (w.changed or w.new or w.dropped):
            lines.append(f"  {len(w.unchanged)} entries loaded: every key and shape agree")
        else:
            lines.append(f"  {len(w.unchanged)} loaded unchanged, {len(w.changed)} changed shape "
                         f"(re-initialised), {len(w.new)} new (initialised fresh), {len(w.dropped)} "
                         "dropped (not in the model)")
        lines += _keys("changed shape, re-initialised", {k: f"{a} -> {b}" for k, (a, b) in
                                                         w.changed.items()})
        lines += _keys("new, initialised fresh", w.new)
        lines += _keys("dropped", w.dropped)
        return "\n".join(lines + ([f"  note: {self.note}"] if self.note else []))


def _keys(title: str, entries: dict) -> list[str]:
    if not entries:
        return []
    width = max(len(k) for k in list(entries)[:_MAX_KEYS])
    lines = [f"  {title}:"] + [f"    {k.ljust(width)}  {v}" for k, v in list(entries.items())[:_MAX_KEYS]]
    return lines + ([f"    ... and {len(entries) - _MAX_KEYS} more"] if len(entries) > _MAX_KEYS else [])


def source_problem(value: str, spec_name: str | None = None) -> tuple[str, str] | None:
    """(message, hint) when `value` names no source of weights (for `spec_name`, where given)."""
    if _is_torchvision(value):
        if spec_name is not None and torchvision_model(spec_name) is None:
            return (f"spec '{spec_name}' has no torchvision weights",
                    f"the specs that do: {', '.join(torchvision_specs())}; or give a checkpoint (.pt)")
        return None
    if not value.endswith(FILE_SUFFIXES):
        near = suggest(value, ["torchvision"], n=1)
        return (f"unknown weights '{value}'",
                near or "write torchvision, torchvision:<WEIGHTS NAME>, or a checkpoint file "
                "(runs/NAME-*/checkpoints/last.pt; a glob picks the newest)")
    return None


def _is_torchvision(value: str) -> bool:
    return value == "torchvision" or value.startswith("torchvision:")


def load_weights(model: nn.Module, shaped: Shaped, value: str, loc: Loc | None = None,
                 where: str = "weights") -> WeightsReport:
    """Load the weights `value` names into `model` (built from `shaped`) where keys and shapes
    agree; raise a located error (at `loc`, option `where`) when it names none or none fit."""
    spec = shaped.spec.name
    problem = source_problem(value, spec)
    if problem:
        raise located_error(problem[0], loc, where, problem[1])
    notes, weights = [], None
    if _is_torchvision(value):
        state, source, weights = _torchvision(spec, value.partition(":")[2], loc, where)
        state = rename_state_dict(state, shaped.spec.rename)
        if spec in TRANSFORM_INPUT:
            notes.append("torchvision runs these weights with transform_input=True: normalise "
                         "inputs with mean 0.5, std 0.5 per channel")
    else:
        state, source = _checkpoint(value, shaped.spec.rename, loc, where)
    own = model.state_dict()
    transfer = compare_entries({k: list(v.shape) for k, v in state.items()},
                               {k: list(v.shape) for k, v in own.items()})
    if not transfer.unchanged:
        raise located_error(f"no entry of {source} fits spec '{spec}' (keys or shapes differ)",
                            loc, where, "give weights of this spec, or of one that extends it")
    if weights is not None and transfer.changed:
        notes.append(image_size_note(weights, shaped.spec.params.get("image_size")))
    # strict=False only for the entries left fresh: every key given is one of the model's
    model.load_state_dict({k: state[k] for k in transfer.unchanged}, strict=False)
    return WeightsReport(source, spec, transfer, "; ".join(n for n in notes if n))


def _fixed_size(weights) -> int | None:
    """The image size torchvision's `weights` are made for where the model needs exactly that
    size (ViT's position embedding): their `min_size` is their crop size. None otherwise."""
    size = weights.meta.get("min_size")
    crop = getattr(weights.transforms, "keywords", {}).get("crop_size")
    return crop if isinstance(crop, int) and tuple(size or ()) == (crop, crop) else None


def image_size_note(weights, image_size) -> str:
    """Why entries changed shape, where `weights` are for another image size than the spec's
    `image_size` param (vit_h14's DEFAULT weights, SWAG E2E, are for 518 x 518), and the fix."""
    size = _fixed_size(weights)
    if size is None or not isinstance(image_size, int) or image_size == size:
        return ""
    fits = [w.name for w in type(weights) if _fixed_size(w) == image_size]
    return (f"torchvision's {weights.name} weights are for {size} x {size} images, the spec is built "
            f"for {image_size}: build with --set image_size={size} for the entries that depend on it"
            + (f" (or pick torchvision:{fits[0]}, for {image_size})" if fits else ""))


def _torchvision(spec: str, choice: str, loc: Loc | None, where: str):
    """torchvision's weights for `spec` (its DEFAULT, or the set named `choice`) through
    torchvision's weights API and torch.hub's cache."""
    import torchvision
    name = torchvision_model(spec)
    enum = torchvision.models.get_model_weights(name)
    if choice and choice not in enum.__members__:
        raise located_error(f"torchvision's {name} has no weights '{choice}'", loc, where,
                            f"it has: {', '.join(enum.__members__)} (plain `torchvision` is "
                            f"{enum.DEFAULT.name})")
    weights = enum[choice] if choice else enum.DEFAULT
    file = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name
    try:  # check_hash as torchvision's builders do (it applies to a download)
        state = weights.get_state_dict(progress=sys.stderr.isatty(), check_hash=True,
                                       weights_only=True)
    except Exception as err:  # offline and not cached, a failed download, a corrupt cache file
        raise located_error(f"cannot get torchvision's {name} weights {weights.name}: "
                            f"{str(err).splitlines()[0] if str(err) else type(err).__name__}",
                            loc, where, f"they are read from {file} (downloaded there from "
                            f"{weights.url} when missing): fetch that file where there is "
                            "internet and copy it there ($TORCH_HOME sets the folder)") from None
    return state, f"torchvision {name} {weights.name} ({file})", weights


def _checkpoint(pattern: str, rename: dict[str, str], loc: Loc | None,
                where: str) -> tuple[dict[str, Tensor], str]:
    """The newest match of `pattern`: a run's checkpoint (the weights it evaluated, in the
    engine's names) or a plain state_dict (in the reference's names: renamed by `rename`)."""
    path = newest_match(pattern, loc, where, "the starting weights are missing",
                        "train that run first, or give an existing checkpoint file "
                        "(runs/NAME-*/checkpoints/last.pt)")
    try:  # a plain state_dict first: load_checkpoint accepts only a run's checkpoint
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # load_checkpoint below says what is wrong with the file
        state = None
    if isinstance(state, dict) and state and all(isinstance(v, Tensor) for v in state.values()):
        return rename_state_dict(state, rename), str(path)
    state = load_checkpoint(path)  # a run's checkpoint, verified; any other file is its error
    return trained_weights(state["procedure"]), str(path)
