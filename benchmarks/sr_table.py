"""The super-resolution table: trained SR runs on Set5 and Set14 at each of their scales, next to
bicubic interpolation measured in the same pass (Y-channel PSNR / SSIM, border = the scale).

    python benchmarks/sr_table.py runs/espcn_x3-* runs/vdsr_x234-* [--sets Set5 Set14]
        [--scales 2 3 4] [--checkpoint best.pt] [--device cpu] [-o docs/sr_table.md]

Each RUN folder is evaluated with its own recipe copy (RUN/recipe.yaml) and RUN/checkpoints/best.pt
(`--checkpoint last.pt` for runs without one, e.g. SRGAN's phase 2), on `sr_benchmark` whole images
one at a time: the overrides `engine eval` documents in every SR recipe. A run trained at one
scale is evaluated at that scale; a multi-scale run (`scale: [2, 3, 4]`) at each of `--scales`.
The training time is the run folder's start (its name) to its last metrics row (metrics.csv's
modification time): wall-clock, on whatever else the machine was doing.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HEADER = ("| recipe | trained | set | scale | PSNR (dB) | SSIM | bicubic PSNR | bicubic SSIM | gain (dB) |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- |")


def train_minutes(run: Path) -> float | None:
    """Minutes from the run folder's timestamp (NAME-YYYYmmdd-HHMMSS) to its last metrics row."""
    try:
        start = datetime.strptime("-".join(run.name.split("-")[-2:]), "%Y%m%d-%H%M%S")
        end = datetime.fromtimestamp((run / "metrics.csv").stat().st_mtime)
    except (ValueError, OSError):
        return None
    return (end - start).total_seconds() / 60


def epochs_done(run: Path) -> int:
    lines = (run / "metrics.csv").read_text().splitlines() if (run / "metrics.csv").exists() else []
    return max(0, len(lines) - 1)


def scales_of(recipe, wanted: list[int]) -> list[int]:
    scale = (recipe["data"].get("args") or {}).get("scale")
    if isinstance(scale, list):
        return [s for s in wanted if s in scale]
    if scale is None:  # an SR recipe whose procedure fixes the scale
        return [int(recipe["procedure"]["scale"])]
    return [int(scale)] if scale in wanted else []


def evaluate(run_dir: Path, checkpoint: str, set_name: str, scale: int, device: str) -> dict:
    from engine.train.runner import open_checkpoint
    overrides = ["data.dataset=sr_benchmark", f"data.args.set={set_name}",
                 f"data.args.scale={scale}", "data.eval_batch_size=1"]
    run = open_checkpoint(str(run_dir / "recipe.yaml"), overrides,
                          str(run_dir / "checkpoints" / checkpoint), device)
    return run.evaluate("test")


def rows_for(run_dir: Path, args) -> list[str]:
    from engine.train.recipe import load_recipe
    recipe = load_recipe(str(run_dir / "recipe.yaml"))
    minutes = train_minutes(run_dir)
    trained = f"{epochs_done(run_dir)} epochs" + (f", {minutes:.0f} min" if minutes else "")
    rows = []
    for set_name in args.sets:
        for scale in scales_of(recipe, args.scales):
            m = evaluate(run_dir, args.checkpoint, set_name, scale, args.device)
            gain = m["psnr_y"] - m["bicubic_psnr_y"]
            rows.append(f"| `{recipe.name}` | {trained} | {set_name} | x{scale} | {m['psnr_y']:.2f} | "
                        f"{m['ssim_y']:.4f} | {m['bicubic_psnr_y']:.2f} | {m['bicubic_ssim_y']:.4f} | "
                        f"{gain:+.2f} |")
            print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of SR recipes")
    parser.add_argument("--sets", nargs="+", default=["Set5", "Set14"])
    parser.add_argument("--scales", nargs="+", type=int, default=[2, 3, 4])
    parser.add_argument("--checkpoint", default="best.pt", help="file in RUN/checkpoints")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("-o", "--output", type=Path, help="also write the table (markdown) here")
    args = parser.parse_args(argv)
    missing = [r for r in args.runs if not (r / "checkpoints" / args.checkpoint).is_file()]
    if missing:
        print(f"sr_table: no checkpoints/{args.checkpoint} in {', '.join(map(str, missing))}",
              file=sys.stderr)
        return 2
    print(HEADER, flush=True)
    rows = [row for run in args.runs for row in rows_for(run, args)]
    if args.output:
        args.output.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
