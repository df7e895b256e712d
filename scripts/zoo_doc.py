"""docs/zoo.md: every torchvision classification and segmentation model against its bundled spec.

    python scripts/zoo_doc.py [--no-images] [-o docs/zoo.md]

For each model of `torchvision.models.list_models` (classification and segmentation) it prints
the bundled spec that says it, the parameter count of each (torchvision's built on the meta
device, the engine's from shape inference: no weights allocated), the engine's MACs at the
spec's default input size, and the spec file's lines. Per family (torchvision's module), the
family base spec (the one the others `extends:`) is set against the lines of torchvision's
source module it replaces, and its diagram is rendered into docs/images/zoo/ (`engine render`,
blocks collapsed). A model without a spec yet is listed as such: nothing is typed by hand.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import torch
import torchvision

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SPECS = REPO / "specs"
IMAGES = REPO / "docs" / "images" / "zoo"


def spec_name(model: str) -> str:
    """torchvision's name -> the bundled spec's: `vit_b_16` -> `vit_b16`, the rest unchanged."""
    if model.startswith("vit_"):
        size, patch = model[4:].split("_")
        return f"vit_{size}{patch}"
    return model


def torchvision_models() -> list[tuple[str, object]]:
    out = [(m, torchvision.models) for m in torchvision.models.list_models(module=torchvision.models)]
    seg = torchvision.models.segmentation
    return out + [(m, seg) for m in torchvision.models.list_models(module=seg)]


def torchvision_params(model: str, where) -> int:
    builder = torchvision.models.get_model_builder(model)
    segmentation = where is torchvision.models.segmentation  # no backbone download
    kwargs = {"weights_backbone": None} if segmentation else {}
    if segmentation and not model.startswith("lraspp"):  # the layout of the pretrained weights
        kwargs["aux_loss"] = True
    if model in ("googlenet", "inception_v3"):
        kwargs = {"aux_logits": False, "init_weights": False}
    try:
        with torch.device("meta"):
            net = builder(**kwargs)
    except (NotImplementedError, RuntimeError):  # RegNet computes its widths with tensors
        net = builder(**kwargs)
    return sum(p.numel() for p in net.parameters())


def family(model: str) -> str:
    return torchvision.models.get_model_builder(model).__module__.rsplit(".", 1)[-1]


def base_of(spec: str) -> str:
    """The spec at the root of `spec`'s `extends:` chain (the family base)."""
    return chain(spec)[-1]


def chain(spec: str) -> list[str]:
    """`spec`, the spec it extends, and so on to the root."""
    import yaml

    class TagBlind(yaml.SafeLoader):  # `!delete` / `!replace`: only `extends:` matters here
        pass
    TagBlind.add_multi_constructor("!", lambda loader, suffix, node: None)
    out = [spec]
    while True:
        doc = yaml.load((SPECS / f"{out[-1]}.yaml").read_text(encoding="utf-8"), Loader=TagBlind)
        parent = (doc or {}).get("extends")
        if not parent or not (SPECS / parent).exists():
            return out
        out.append(Path(parent).stem)


def code_lines(path: Path) -> int:
    """Lines that are neither blank nor comments. Of a torchvision module, only its model code:
    the weights' tables (the `*_Weights` enums and their shared `_COMMON_META` dicts) and the
    import lines are left out, and so are docstrings."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    keep = set(range(len(lines)))
    if path.suffix == ".py":
        import ast
        for node in ast.walk(ast.parse(text)):
            drop = isinstance(node, (ast.Import, ast.ImportFrom)) or (
                isinstance(node, ast.ClassDef) and node.name.endswith("_Weights")) or (
                isinstance(node, ast.Assign) and any(getattr(t, "id", "").endswith("_META")
                                                     for t in node.targets))
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and \
                    isinstance(getattr(body[0], "value", None), ast.Constant) and \
                    isinstance(body[0].value.value, str):  # a docstring
                keep -= set(range(body[0].lineno - 1, body[0].end_lineno))
            if drop:
                keep -= set(range(node.lineno - 1, node.end_lineno))
    return sum(1 for i in keep if lines[i].strip() and not lines[i].lstrip().startswith("#"))


def rows(images: bool) -> tuple[list[str], list[str]]:
    import engine
    from engine.views.render import render_to_file
    from engine.views.summary import human, summarize
    models, families = [], defaultdict(list)
    for model, where in torchvision_models():
        spec = spec_name(model)
        fam = family(model)
        tv = torchvision_params(model, where)
        if not (SPECS / f"{spec}.yaml").exists():
            models.append(f"| `{model}` | – | {tv:,} | – | – | – | not yet a spec |")
            families[fam].append((model, None))
            continue
        shaped = engine.analyze(spec)
        summary = summarize(shaped)
        same = "yes" if summary.params == tv else f"**no** ({summary.params:,})"
        models.append(f"| `{model}` | `{spec}` | {tv:,} | {same} | {human(summary.macs)} | "
                      f"{code_lines(SPECS / f'{spec}.yaml')} | extends `{base_of(spec)}` |"
                      if base_of(spec) != spec else
                      f"| `{model}` | `{spec}` | {tv:,} | {same} | {human(summary.macs)} | "
                      f"{code_lines(SPECS / f'{spec}.yaml')} | family base |")
        families[fam].append((model, spec))
    fam_rows = []
    family_of = {s: f for f, members in families.items() for _, s in members if s}
    for fam, members in sorted(families.items()):
        source = Path(sys.modules[torchvision.models.get_model_builder(members[0][0]).__module__].__file__)
        # a family's base is the root of its specs' `extends:`, unless that root belongs to
        # another family (DeepLabV3 on MobileNetV3): then the family's own spec is
        bases = sorted({[c for c in chain(s) if family_of.get(c, fam) == fam][-1]
                        for _, s in members if s})
        done = sum(1 for _, s in members if s)
        base_lines = sum(code_lines(SPECS / f"{b}.yaml") for b in bases)
        ratio = f"{base_lines / code_lines(source):.2f}" if bases else "–"
        pictures = []
        for base in bases:
            if images:
                IMAGES.mkdir(parents=True, exist_ok=True)
                render_to_file(engine.analyze(base), IMAGES / f"{base}.png")
            pictures.append(f"[{base}](images/zoo/{base}.png)")
        total = len(source.read_text(encoding="utf-8").splitlines())
        fam_rows.append(f"| {fam} | {done} of {len(members)} | {source.name} ({total} / "
                        f"{code_lines(source)}) | {', '.join(f'`{b}`' for b in bases) or '–'} "
                        f"({base_lines}) | {ratio} | {', '.join(pictures) or '–'} |")
    return models, fam_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", default=str(REPO / "docs" / "zoo.md"))
    parser.add_argument("--no-images", action="store_true", help="do not render the diagrams")
    args = parser.parse_args()
    models, families = rows(not args.no_images)
    have = sum(1 for r in models if "not yet" not in r)
    text = "\n".join([
        "# torchvision's zoo as specs",
        "",
        f"Generated by `python scripts/zoo_doc.py` with torchvision {torchvision.__version__}: "
        f"{have} of {len(models)} models of `torchvision.models.list_models` (classification and "
        "segmentation) are bundled specs. Each loads torchvision's weights with `strict=True` "
        "(`engine build SPEC --weights torchvision`); tests/compiler/test_zoo*.py and "
        "test_torchvision_parity.py check parameter counts, state_dict keys and shapes for all of "
        "them, and outputs for one member of each family.",
        "",
        "Lines: a spec's code lines are its non-blank, non-comment lines; a torchvision module's "
        "model code leaves out its weights tables, imports, docstrings and comments as well, and "
        "does not count the shared code it imports (torchvision.ops.misc's Conv2dNormActivation, "
        "SqueezeExcitation, `_make_divisible`, which the specs write themselves).",
        "",
        "## Families",
        "",
        "| family | specs | torchvision module (all lines / model code) | family base spec (code) "
        "| spec / model code | diagram |",
        "| --- | --- | --- | --- | --- | --- |",
        *families,
        "",
        "## Models",
        "",
        "| torchvision | spec | params | engine = torchvision | MACs | spec lines | |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *models,
        "",
    ])
    Path(args.output).write_text(text, encoding="utf-8")
    print(f"wrote {args.output}: {have} of {len(models)} models have a spec")


if __name__ == "__main__":
    main()
