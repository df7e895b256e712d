"""`engine runs`: the run folders under a folder, and `engine runs compare A B`.

A run folder is one with a recipe.yaml (engine/train/runner.py writes it). Its status comes from
the `status` file (engine/train/tracking.py): `finished`, `failed` or `interrupted` (an error or
Ctrl-C ended it), `running` while its process lives on this host, `killed` when it is gone;
folders without one are judged by their metrics rows against the recipe's epochs. Nothing here
imports the runner or the recipe loader: only the files are read.
"""

from __future__ import annotations

import csv
import os
import socket
import time
from pathlib import Path

import yaml

from engine.train.tracking import read_status


def find_runs(folder: Path) -> list[Path]:
    folder = Path(folder)
    if (folder / "recipe.yaml").is_file():
        return [folder]
    return sorted(p.parent for p in folder.glob("*/recipe.yaml"))


def read_rows(folder: Path) -> list[dict]:
    path = Path(folder) / "metrics.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def read_recipe(folder: Path) -> dict:
    try:
        value = yaml.safe_load((Path(folder) / "recipe.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return value if isinstance(value, dict) else {}


def spec_hash(folder: Path) -> str:
    try:
        return (Path(folder) / "spec.sha256").read_text().strip()
    except OSError:
        return ""


def run_status(folder: Path, recipe: dict, rows: list[dict]) -> str:
    status = read_status(folder)
    state = status.get("state")
    if state in ("finished", "failed", "interrupted"):
        return state
    if state == "running":
        if status.get("host") != socket.gethostname():
            return "running?"  # another machine's process: cannot be checked from here
        return "running" if _alive(int(status.get("pid", 0))) else "killed"
    last = rows[-1] if rows else {}  # an older folder: judge by the rows
    epochs, steps = recipe.get("epochs"), recipe.get("steps")
    if epochs and _int(last.get("epoch")) >= epochs or steps and _int(last.get("step")) >= steps:
        return "finished"
    return "stopped"


def best_metric(rows: list[dict]) -> tuple[str, float, int] | None:
    """(column, value, epoch) of the best validation figure: the highest accuracy or PSNR, else
    the lowest loss (validation or test columns first, then train)."""
    if not rows:
        return None
    columns = list(rows[0])
    for prefixes in (("val_", "test_"), ("train_",)):
        for suffixes, higher in ((("accuracy", "psnr", "psnr_y"), True), (("loss",), False)):
            for key in columns:
                if key.startswith(prefixes) and key.endswith(suffixes):
                    points = [(_float(r.get(key)), _int(r.get("epoch"))) for r in rows if r.get(key)]
                    if points:
                        value, epoch = (max if higher else min)(points)
                        return key, value, epoch
    return None


def wall_seconds(folder: Path) -> float | None:
    """From the run's first start (status file, else spec.sha256) to its last metrics row."""
    folder = Path(folder)
    metrics = folder / "metrics.csv"
    if not metrics.is_file():
        return None
    start = read_status(folder).get("started")
    if start is None:
        try:
            start = (folder / "spec.sha256").stat().st_mtime
        except OSError:
            return None
    return max(0.0, metrics.stat().st_mtime - float(start))


def runs_table(folder: Path) -> str:
    runs = find_runs(folder)
    if not runs:
        return f"no runs under {folder} (a run folder holds recipe.yaml)"
    header = ("run", "recipe", "spec", "status", "epochs", "best", "wall", "cpu")
    lines = [header]
    for run in runs:
        recipe, rows = read_recipe(run), read_rows(run)
        best = best_metric(rows)
        total = recipe.get("epochs")
        done = rows[-1].get("epoch", "0") if rows else "0"
        wall, cpu = wall_seconds(run), read_status(run).get("cpu_s")
        lines.append((run.name, str(recipe.get("name", "?")), spec_hash(run)[:12] or "-",
                      run_status(run, recipe, rows), f"{done}/{total}" if total else done,
                      f"{best[0]} {best[1]:.4f} (epoch {best[2]})" if best else "-",
                      _duration(wall) if wall is not None else "-",
                      _duration(float(cpu)) if isinstance(cpu, (int, float)) else "-"))
    return _table(lines)


# ---- compare ---------------------------------------------------------------------------------
def flatten(value, prefix: str = "") -> dict[str, object]:
    """A nested mapping as dotted paths (lists stay whole values)."""
    if isinstance(value, dict) and value:
        out: dict[str, object] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def recipe_diff(a: dict, b: dict) -> list[str]:
    fa, fb = flatten(a), flatten(b)
    lines = []
    for key in sorted(set(fa) | set(fb)):
        if key not in fb:
            lines.append(f"- {key}: {_show(fa[key])}")
        elif key not in fa:
            lines.append(f"+ {key}: {_show(fb[key])}")
        elif fa[key] != fb[key]:
            lines.append(f"~ {key}: {_show(fa[key])} -> {_show(fb[key])}")
    return lines


def metrics_side_by_side(a: Path, b: Path) -> str:
    rows_a, rows_b = read_rows(a), read_rows(b)
    left, right = _rows_table(rows_a), _rows_table(rows_b)
    width = max([len(a.name), *map(len, left)], default=0)
    lines = [f"{a.name:<{width}}  |  {b.name}"]
    for i in range(max(len(left), len(right))):
        la = left[i] if i < len(left) else ""
        lb = right[i] if i < len(right) else ""
        lines.append(f"{la:<{width}}  |  {lb}".rstrip())
    return "\n".join(lines)


def spec_diff(a: Path, b: Path) -> str:
    """The structural diff of the two runs' networks (engine diff), or why there is none."""
    ha, hb = spec_hash(a), spec_hash(b)
    if ha and ha == hb:
        return f"same spec (sha256 {ha[:12]})"
    from engine.compiler.ir import SpecError
    from engine.views.diff import diff_specs, format_diff
    try:
        shaped = [_shaped(run) for run in (a, b)]
    except SpecError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "spec error"
        return f"specs differ ({ha[:12]} vs {hb[:12]}); no structural diff: {first}"
    return format_diff(diff_specs(*shaped))


def _shaped(run: Path):
    """A run's network, shape-inferred: the spec its recipe.yaml names with the recipe's
    `spec.set` (the resolved spec.yaml is a dump, not a spec that `analyze` reads back)."""
    from engine.compiler import analyze
    recipe = read_recipe(run)
    spec = recipe.get("spec")
    name, overrides = (spec.get("name"), spec.get("set") or {}) if isinstance(spec, dict) else (spec, {})
    return analyze(str(name), [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip()}"
                               for k, v in flatten(overrides).items()])


def compare(a: Path, b: Path, png: Path) -> str:
    a, b = Path(a), Path(b)
    out = ["metrics", metrics_side_by_side(a, b), "", "recipe (a -> b)"]
    out += recipe_diff(read_recipe(a), read_recipe(b)) or ["  no differences"]
    out += ["", "spec", spec_diff(a, b)]
    written = plot_compare({a.name: read_rows(a), b.name: read_rows(b)}, png)
    out += ["", f"wrote {written}" if written else "no metrics to plot"]
    return "\n".join(out)


def plot_compare(runs: dict[str, list[dict]], png_path: Path) -> Path | None:
    """Both runs' loss and metric curves on one figure (the style of engine/train/plot.py):
    one colour per run, solid train and dashed validation lines."""
    if not any(runs.values()):
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for colour, (label, rows) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 9,
                                     runs.items()):
        if not rows:
            continue
        epochs = [_int(r.get("epoch")) for r in rows]
        groups = {"loss": [k for k in rows[0] if k.endswith("_loss")],
                  "metric": [k for k in rows[0] if k.endswith(("accuracy", "top5", "psnr"))]}
        for ax, (_title, keys) in zip(axes, groups.items()):
            for key in keys:
                points = [(e, _float(r[key])) for e, r in zip(epochs, rows) if r.get(key)]
                if points:
                    ax.plot(*zip(*points), marker="o", markersize=3, color=colour,
                            linestyle="-" if key.startswith("train_") else "--",
                            label=f"{label}: {key}")
    for ax, title in zip(axes, ("loss", "metric")):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    png_path = Path(png_path)
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return png_path


# ---- helpers ---------------------------------------------------------------------------------
def _rows_table(rows: list[dict]) -> list[str]:
    if not rows:
        return ["(no metrics)"]
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return _table([tuple(keys)] + [tuple(r.get(k) or "" for k in keys) for r in rows]).splitlines()


def _table(lines: list[tuple]) -> str:
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(f"{str(c):<{w}}" for c, w in zip(line, widths)).rstrip()
                     for line in lines)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _duration(seconds: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(seconds)) if seconds < 86400 \
        else f"{seconds / 86400:.1f} d"


def _show(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()


def _int(value) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
