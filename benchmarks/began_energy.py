"""BEGAN's energies by digit class: the discriminator's L1 reconstruction error on real test digits.

    python benchmarks/began_energy.py runs/probes/began_w32/began_mnist-*  [--checkpoint last.pt]
    python benchmarks/began_energy.py RUN --write      # also into docs/gans.md's began_energy block

BEGAN's generator minimises the energy L(G(z)) = |G(z) - D(G(z))| of its samples, and the
equilibrium only fixes their mean (gamma times the real mean). Where some classes cost the
autoencoder less than others, a generator of those classes meets the equilibrium: this prints
each class's mean energy, its ratio to the mean over all digits, and its mean ink (the share of
the image's intensity), from the run's own spec and checkpoint, on the recipe's test split.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def class_energies(run: Path, checkpoint: str) -> list[dict]:
    """Per digit class: mean L1 energy, ratio to the mean over the split, mean ink, count."""
    from engine.compiler import analyze
    from engine.compiler.build import build
    from engine.train.checkpoint import load_checkpoint, trained_weights
    from engine.train.data.datasets import build_dataset
    from engine.train.loader import eval_batches
    from engine.train.losses.gan import l1_energy
    from engine.train.recipe import load_recipe

    recipe = load_recipe(str(run / "recipe.yaml"), [])  # as trained, its overrides merged in
    model = build(analyze(recipe.spec_path, recipe.spec_overrides))
    model.load_state_dict(trained_weights(load_checkpoint(run / "checkpoints" / checkpoint)["procedure"]))
    model.eval()
    data = recipe["data"]
    dataset = build_dataset(data["dataset"], None, "test", recipe.get("seed", 0), None, data.get("args"))
    signed = recipe["options"].get("pixels", "signed") == "signed"
    energies, inks, labels = [], [], []
    with torch.no_grad():
        for images, y in eval_batches(dataset, 500):
            real = images * 2 - 1 if signed else images  # as the gan procedure feeds D
            energies.append(l1_energy(model.discriminator(real)["recon"], real))
            inks.append(images.flatten(1).mean(1))
            labels.append(y)
    energy, ink, label = torch.cat(energies), torch.cat(inks), torch.cat(labels)
    mean = energy.mean().item()
    by_class = [energy[label == c].mean().item() for c in range(10)]
    return [{"class": c, "energy": by_class[c], "ratio": by_class[c] / mean,
             "ink": ink[label == c].mean().item(), "count": int((label == c).sum())} for c in range(10)]


def render(rows: list[dict], run: Path, checkpoint: str) -> str:
    lines = ["| digit | " + " | ".join(str(r["class"]) for r in rows) + " |",
             "| --- |" + " --- |" * len(rows),
             "| energy (L1) | " + " | ".join(f"{r['energy']:.3f}" for r in rows) + " |",
             "| / mean | " + " | ".join(f"{r['ratio']:.2f}" for r in rows) + " |",
             "| ink | " + " | ".join(f"{r['ink']:.3f}" for r in rows) + " |"]
    count = sum(r["count"] for r in rows)
    return "\n".join(lines) + f"\n\n`{run.name}/checkpoints/{checkpoint}`, {count} test digits."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a BEGAN run folder")
    parser.add_argument("--checkpoint", default="last.pt")
    parser.add_argument("--write", action="store_true", help="replace docs/gans.md's began_energy block")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    text = render(class_energies(args.run, args.checkpoint), args.run, args.checkpoint)
    print(text)
    if args.write:
        from benchmarks.docs_figures import block
        doc = ROOT / "docs" / "gans.md"
        pattern = block("began_energy")
        if not pattern.search(doc.read_text()):
            raise SystemExit(f"{doc}: no '<!-- table: began_energy -->' ... '<!-- /table -->' block")
        doc.write_text(pattern.sub(lambda m: m.group(1) + text + "\n" + m.group(3), doc.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
