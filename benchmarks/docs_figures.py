"""The results tables of docs/, printed from run folders: no figure in a table is typed by hand.

    python benchmarks/docs_figures.py                  # print every table from runs/
    python benchmarks/docs_figures.py classification   # one table
    python benchmarks/docs_figures.py --write          # also put them into docs/ and save records
    python benchmarks/docs_figures.py --check          # docs/ against the saved records (the suite)

A table is a list of recipes and its columns. Each row is the latest finished run folder of its
recipe under `--runs` (default runs/) that holds an `eval-test.json`, the record `engine eval
RECIPE --checkpoint ... --split test` writes (with `--baseline` for classifiers). From the folder
come the epochs (recipe.yaml), the training wall time (status and metrics.csv) and the figures
(the eval record, with the digit judge's identity: a figure made by another judge says so).
A run whose recipe.yaml differs from its recipe file today is not shown: its row names the run
and what changed (a figure of an older recipe is not the recipe's figure).

`--write` replaces the text between `<!-- table: NAME -->` and `<!-- /table -->` in the table's
doc and saves what it read as docs/results/NAME.json, so that `--check` can re-render each table
from its record and find a doc edited by hand, or a record changed without its doc.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.train.runs import find_runs, read_recipe, read_rows, run_status, wall_seconds  # noqa: E402
from engine.train.tracking import read_status  # noqa: E402

Cell = Callable[[dict], str]  # a record row -> the cell's text


@dataclass(frozen=True)
class Table:
    name: str
    doc: str  # path under docs/
    rows: tuple[tuple[str, str], ...]  # (label, recipe)
    columns: tuple[tuple[str, Cell], ...]


# ---- cells ---------------------------------------------------------------------------------------
def _eval(row: dict, key: str):
    return (row.get("eval") or {}).get(key)


def number(key: str, digits: int = 2, unit: str = "", bold: bool = False, scale: float = 1.0) -> Cell:
    """An eval figure (times `scale`) with `digits` decimals and `unit`; empty where it is absent."""
    def cell(row: dict) -> str:
        value = _eval(row, key)
        if value is None:
            return ""
        text = f"{scale * value:.{digits}f}{unit}"
        return f"**{text}**" if bold else text
    return cell


def percent(key: str, bold: bool = False) -> Cell:
    return number(key, unit="%", bold=bold, scale=100.0)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"


def trained(row: dict) -> str:
    """Epochs, wall time, and the process CPU time with the threads it ran on (wall time grows
    when other work shares the machine; CPU time much less)."""
    wall, cpu, threads = row.get("wall_s"), row.get("cpu_s"), row.get("threads")
    epochs = f"{row['epochs']} epoch{'s' * (row['epochs'] != 1)}"
    text = f"{epochs}, {duration(wall)}" if wall is not None else epochs
    if cpu is not None:
        text += f" ({duration(cpu)} CPU{f', {threads} thread' + 's' * (threads > 1) if threads else ''})"
    return text


def data(row: dict) -> str:
    size = row.get("image_size")
    at = f" at {size}x{size}" if size else ""
    return f"{row['dataset']}{at}, {_eval(row, 'samples')} test"


def code(key: str) -> Cell:
    return lambda row: f"`{row[key]}`"


def judge(row: dict, key: str = "digit_judge") -> str:
    """The digit judge's identity: the first 8 hex digits of its weights' sha256."""
    value = _eval(row, key)
    return f"`{value.split('@sha256:')[1][:8]}`" if value else ""


def both(a: str, b: str, digits: int = 3) -> Cell:
    """Two eval figures in one cell, `a / b` (the two directions of a translation)."""
    return lambda row: f"{number(a, digits)(row)} / {number(b, digits)(row)}"


def text(key: str) -> Cell:
    """An eval figure that is a sentence (e.g. the digits a translation loses); empty where absent."""
    return lambda row: _eval(row, key) or ""


def judges(*keys: str) -> Cell:
    return lambda row: " / ".join(judge(row, key) for key in keys)


def fd(row: dict) -> str:
    value = _eval(row, "digit_fd")
    return "" if value is None else f"**{value:.2f}** ({_eval(row, 'sample_count')})"


def gain(row: dict) -> str:
    """Super-resolution: dB over bicubic upscaling measured in the same pass."""
    ours, bicubic = _eval(row, "psnr_y"), _eval(row, "bicubic_psnr_y")
    return "" if ours is None or bicubic is None else f"**{ours - bicubic:+.2f}**"


def evaluated_on(row: dict) -> str:
    """The benchmark set an SR figure is on (the eval's `data.args.set=` override)."""
    sets = [o.split("=", 1)[1] for o in _eval(row, "overrides") or [] if o.startswith("data.args.set=")]
    return sets[-1] if sets else "val crops"


def versus_baseline(row: dict) -> str:
    value, baseline = _eval(row, "digit_fd"), _eval(row, "digit_fd_pca_gaussian")
    return "" if value is None or not baseline else f"{value / baseline:.2f}"


GENERATIVE_COLUMNS = (
    ("model", lambda r: r["label"]), ("recipe", code("recipe")), ("trained", trained),
    ("PSNR", number("psnr", unit=" dB")), ("digit-FD (n)", fd),
    ("real floor", number("digit_fd_real")), ("PCA-Gaussian", number("digit_fd_pca_gaussian")),
    ("label accuracy", percent("label_accuracy")), ("judge", judge))

def sr_columns(scale: int, *extra: tuple[str, Cell]) -> tuple[tuple[str, Cell], ...]:
    """A super-resolution table's columns at `scale`, with `extra` ones before the run's."""
    return (("model", lambda r: r["label"]), ("recipe", code("recipe")), ("trained", trained),
            ("on", evaluated_on), (f"PSNR (Y), x{scale}", number("psnr_y")),
            ("bicubic", number("bicubic_psnr_y")), ("gain (dB)", gain), ("SSIM (Y)", number("ssim_y", 4)),
            ("bicubic SSIM", number("bicubic_ssim_y", 4)), *extra, ("run", code("run")))


TABLES = (
    Table("classification", "classification.md",
          (("AlexNet", "alexnet_mnist"), ("VGG", "vgg11_bn_mnist"), ("ResNet", "resnet18_mnist"),
           ("GoogLeNet (aux heads)", "googlenet_aux_mnist"), ("Inception v3", "inception_v3_mnist"),
           ("DenseNet", "densenet121_mnist"), ("ConvNeXt", "convnext_tiny_mnist"),
           ("ViT (seed's tiny)", "vit_tiny_usps"), ("SqueezeNet", "squeezenet1_1_mnist")),
          (("family", lambda r: r["label"]), ("recipe", code("recipe")), ("data", data),
           ("trained", trained), ("test accuracy", percent("accuracy", bold=True)),
           ("pixel baseline", percent("pixel_baseline_accuracy")), ("run", code("run")))),
    Table("generative_digits", "generative.md",
          (("AE (conv)", "ae_digits"), ("VAE (linear)", "vae_digits"), ("CVAE (conv)", "cvae_digits"),
           ("CVAE (linear)", "cvae_linear_digits"),
           ("CVAE (linear), the seed's `conditioning: add`", "probes/cvae_linear_digits"),
           ("VQ-VAE", "vqvae_digits")),
          GENERATIVE_COLUMNS),
    Table("generative_mnist_cvae", "generative.md",
          (("CVAE (conv)", "cvae_mnist"), ("CVAE (linear)", "cvae_linear_mnist")),
          GENERATIVE_COLUMNS),
    Table("gans_stylegan", "gans.md",
          (("StyleGAN", "stylegan_mnist"),
           ("probe: half width, lr 0.002, no R1, no average, 3 epochs", "probes/sg_probe")),
          (("model", lambda r: r["label"]), ("recipe", code("recipe")), ("trained", trained),
           ("digit-FD (n)", fd), ("FD / PCA-Gaussian", versus_baseline),
           ("PCA-Gaussian", number("digit_fd_pca_gaussian")), ("real floor", number("digit_fd_real")),
           ("confidence", number("confidence")), ("judge", judge), ("run", code("run")))),
    Table("sr_recursive_x3", "dense.md",
          (("DRRN B1U9, 32 features", "drrn_x3"), ("DRCN, 16 recursions, 32 features", "drcn_x3"),
           ("DRRN B1U9, 32 features, 30 epochs (probe)", "probes/drrn_x3")),
          sr_columns(3)),
    Table("sr_srresnet_x4", "dense.md",
          (("SRResNet, 32 features, 48 px patches", "srresnet_x4_w32"),
           ("SRGAN (pixel content loss), phase 2 from it: 60 steps at 1e-5", "srgan_x4_w32"),
           ("probe: SRGAN, 180 steps at 1e-5", "probes/srgan_180/srgan_x4_w32"),
           ("probe: SRGAN, 60 steps at 1e-4, from an epoch-50 SRResNet (+0.54)",
            "probes/srgan_lr1e-4/srgan_x4_w32")),
          sr_columns(4, ("checkerboard (real = 1)", number("checkerboard")))),
    Table("segmentation_transunet_r50", "dense.md",
          (("TransUNet, R50-ViT hybrid encoder", "transunet_r50_membrane"),
           ("probe: the same, 10 epochs (1,000 steps)", "probes/transunet_r50_1000/transunet_r50_membrane")),
          (("model", lambda r: r["label"]), ("recipe", code("recipe")), ("trained", trained),
           ("membrane Dice", number("dice", 3, bold=True)), ("IoU", number("iou", 3)),
           ("pixel accuracy", number("pixel_accuracy", 3)),
           ("one class everywhere: accuracy", number("baseline_accuracy", 3)),
           ("one class everywhere: Dice", number("baseline_dice", 3)),
           ("run", code("run")))),
    Table("translation_pix2pix", "gans.md",
          (("Pix2Pix (cGAN + 100 x L1)", "pix2pix_membrane"), ("L1 only", "pix2pix_l1_membrane")),
          (("generator", lambda r: r["label"]), ("recipe", code("recipe")), ("trained", trained),
           ("FCN-score: membrane Dice", number("fcn_dice", 3, bold=True)),
           ("pixel accuracy", number("fcn_pixel_accuracy", 3)),
           ("texture (real = 1)", number("texture_ratio", 2)),
           ("real images: Dice (ceiling)", number("fcn_dice_real", 3)),
           ("untrained generator: Dice (floor)", number("fcn_dice_untrained", 3)),
           ("run", code("run")))),
    Table("translation_cyclegan", "gans.md",
          (("CycleGAN (ngf 16, 4 residual blocks), identity loss 0.5", "cyclegan_mnist_usps"),
           ("probe: no identity loss, 4 epochs", "probes/cyc_id0/cyclegan_mnist_usps"),
           ("probe: no identity loss, 6 epochs", "probes/cyc_id0_6ep/cyclegan_mnist_usps"),
           ("probe: identity loss 2.0, 2 epochs", "probes/cyc_id2/cyclegan_mnist_usps"),
           ("probe: 16x16 patches (d_layers 1), 8 epochs", "probes/cyc_d1/cyclegan_mnist_usps")),
          (("model", lambda r: r["label"]), ("recipe", code("recipe")), ("trained", trained),
           ("MNIST -> USPS: class kept", percent("class_kept_ab", bold=True)),
           ("floor: untranslated", percent("class_kept_ab_floor")),
           ("ceiling: real USPS", percent("class_kept_ab_ceiling")),
           ("MNIST -> USPS: digits lost most", text("class_kept_ab_lost")),
           ("USPS -> MNIST: class kept", percent("class_kept_ba", bold=True)),
           ("floor: untranslated", percent("class_kept_ba_floor")),
           ("ceiling: real MNIST", percent("class_kept_ba_ceiling")),
           ("USPS -> MNIST: digits lost most", text("class_kept_ba_lost")),
           ("cycle L1 (A->B->A / B->A->B)", both("cycle_aba", "cycle_bab")),
           ("judges (USPS / MNIST)", judges("judge_ab", "judge_ba")), ("run", code("run")))),
    Table("translation_lstm", "sequence.md",
          (("Seq2Seq, no attention (LSTM 512 x 2, bidirectional encoder)", "seq2seq_lstm_bi_multi30k"),),
          (("model", lambda r: r["label"]), ("recipe", code("recipe")), ("trained", trained),
           ("test BLEU, greedy", number("bleu", bold=True)), ("test perplexity", number("perplexity", 1)),
           ("sentences", number("sentences", 0)))),
)


# ---- reading run folders -------------------------------------------------------------------------
def latest_run(runs: Path, recipe: str) -> Path | None:
    """The newest finished run folder of `recipe` with a test-split eval record."""
    found = [f for f in find_runs(runs) if f.name.rsplit("-", 2)[0] == recipe
             and (f / "eval-test.json").is_file()
             and run_status(f, read_recipe(f), read_rows(f)) == "finished"]
    return max(found, key=lambda f: f.name) if found else None


def record_row(label: str, recipe: str, folder: Path) -> dict:
    """What a table reads from a run folder (the eval record whole, with its overrides)."""
    saved, status = read_recipe(folder), read_status(folder)
    spec_set = ((saved.get("spec") or {}).get("set") or {}) if isinstance(saved.get("spec"), dict) else {}
    return {"label": label, "recipe": recipe, "run": folder.name, "epochs": saved.get("epochs"),
            "dataset": {"mnist": "MNIST", "usps": "USPS", "digits": "digits 8x8"}.get(
                saved["data"]["dataset"], saved["data"]["dataset"]),
            "image_size": spec_set.get("image_size"),
            "wall_s": wall_seconds(folder), "cpu_s": status.get("cpu_s"),
            "threads": status.get("threads"),
            "eval": json.loads((folder / "eval-test.json").read_text())}


def read_table(table: Table, runs: Path) -> list[dict]:
    rows = []
    for label, recipe in table.rows:
        # "probes/NAME": a run of NAME's recipe with other settings, kept under runs/probes
        sub, _, name = recipe.rpartition("/")
        folder = latest_run(runs / sub if sub else runs, name)
        if folder is None:
            rows.append({"label": label, "recipe": recipe, "missing": True})
            continue
        row = record_row(label, recipe, folder)
        changed = [] if sub else recipe_changes(folder, ROOT / "recipes" / f"{name}.yaml")
        rows.append({**row, "stale": changed} if changed else row)
    return rows


def recipe_changes(folder: Path, recipe: Path) -> list[str]:
    """How the recipe file now differs from the one the run trained with (its folder's
    recipe.yaml: the file with its `extends:` merged, as the runner saves it), as `key: then ->
    now`: a figure from a run of an older recipe is not that recipe's figure. Only merged, not
    validated: that would analyse the spec and open the dataset, which a table needs neither of."""
    from engine.compiler.merge import load_merged

    now = json.loads(json.dumps(load_merged(recipe, None, recipe=True)))
    return [f"{key}: {then!r} -> {later!r}" for key, then, later in _differences(read_recipe(folder), now)]


def _differences(a, b, path: str = "") -> list[tuple[str, object, object]]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str)
                for d in _differences(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))]
    return [] if a == b else [(path, a, b)]


# ---- rendering -----------------------------------------------------------------------------------
def render(table: Table, rows: list[dict]) -> str:
    lines = ["| " + " | ".join(title for title, _ in table.columns) + " |",
             "| " + " | ".join("---" for _ in table.columns) + " |"]
    for row in rows:
        # a row without a figure: why not, in the third cell, the rest left empty
        reason = "not run yet" if row.get("missing") else row.get("stale") and (
            f"recipe changed since run `{row['run']}` ({'; '.join(row['stale'])}): re-run it")
        if reason:
            cells = [row["label"], f"`{row['recipe']}`", reason] + [""] * (len(table.columns) - 3)
        else:
            cells = [cell(row) for _, cell in table.columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def block(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- table: {re.escape(name)} -->\n)(.*?)(<!-- /table -->)", re.S)


def write(table: Table, rows: list[dict], docs: Path) -> None:
    doc = docs / table.doc
    text = doc.read_text()
    pattern = block(table.name)
    if not pattern.search(text):
        raise SystemExit(f"{doc}: no '<!-- table: {table.name} -->' ... '<!-- /table -->' block; "
                         "add one where the table goes")
    text = pattern.sub(lambda m: m.group(1) + render(table, rows) + "\n" + m.group(3), text)
    doc.write_text(text)
    (docs / "results").mkdir(exist_ok=True)
    (docs / "results" / f"{table.name}.json").write_text(json.dumps(rows, indent=1) + "\n")


def check(table: Table, docs: Path) -> list[str]:
    """What differs between the doc's table and the one rendered from its record."""
    record = docs / "results" / f"{table.name}.json"
    if not record.is_file():
        return [f"{record}: missing (run benchmarks/docs_figures.py --write {table.name})"]
    found = block(table.name).search((docs / table.doc).read_text())
    if not found:
        return [f"docs/{table.doc}: no '<!-- table: {table.name} -->' block"]
    expected = render(table, json.loads(record.read_text()))
    if found.group(2).strip() != expected.strip():
        return [f"docs/{table.doc}: table '{table.name}' differs from the one rendered from "
                f"{record.name}; re-run benchmarks/docs_figures.py --write {table.name}"]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tables", nargs="*", help=f"any of: {', '.join(t.name for t in TABLES)}")
    parser.add_argument("--runs", default=str(ROOT / "runs"), help="the folder of run folders")
    parser.add_argument("--docs", default=str(ROOT / "docs"))
    parser.add_argument("--write", action="store_true", help="update docs/ and docs/results/")
    parser.add_argument("--check", action="store_true", help="check docs/ against docs/results/")
    args = parser.parse_args(argv)
    unknown = set(args.tables) - {t.name for t in TABLES}
    if unknown:
        parser.error(f"unknown table(s) {', '.join(sorted(unknown))}")
    chosen = [t for t in TABLES if not args.tables or t.name in args.tables]
    docs = Path(args.docs)
    if args.check:
        problems = [p for t in chosen for p in check(t, docs)]
        print("\n".join(problems) or f"{len(chosen)} tables match their records")
        return 1 if problems else 0
    for table in chosen:
        rows = read_table(table, Path(args.runs))
        print(f"## {table.name} (docs/{table.doc})\n\n{render(table, rows)}\n")
        if args.write:
            write(table, rows, docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
