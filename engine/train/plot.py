"""The loss/metric plot of a run (metrics.csv -> metrics.png)."""

from __future__ import annotations

import csv
from pathlib import Path


def plot_metrics(csv_path: Path, png_path: Path) -> Path | None:
    if not csv_path.exists():
        return None
    import matplotlib
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt
    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    epochs = [int(r["epoch"]) for r in rows]
    groups = {"loss": [k for k in rows[0] if k.endswith("_loss")],
              "metric": [k for k in rows[0] if k.endswith(("accuracy", "top5", "psnr"))]}
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, (title, keys) in zip(axes, groups.items()):
        for key in keys:
            points = [(e, float(r[key])) for e, r in zip(epochs, rows) if r.get(key)]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, label=key)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return png_path
