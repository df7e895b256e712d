#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the main job on the embedded default (scikit-learn's digits,
# no files needed): build a spec, render it, train a small recipe and evaluate it on held-out data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
engine=.venv/bin/engine
mkdir -p runs
echo "== engine build resnet50 --set num_classes=10 --depth 1"
$engine build resnet50 --set num_classes=10 --depth 1
echo
echo "== engine render resnet50 -o runs/resnet50.svg"
if command -v dot >/dev/null 2>&1; then
  $engine render resnet50 -o runs/resnet50.svg
else
  $engine render resnet50 -o runs/resnet50.dot --format dot
  echo "(Graphviz's dot is missing: wrote DOT text; install graphviz for SVG/PNG)"
fi
echo
echo "== engine train recipes/digits_cnn.yaml"
$engine train recipes/digits_cnn.yaml --output runs | tee runs/.demo-train.log
folder=$(sed -n 's/^run folder: //p' runs/.demo-train.log | tail -1)
echo
echo "== engine eval recipes/digits_cnn.yaml --checkpoint $folder/checkpoints/last.pt"
$engine eval recipes/digits_cnn.yaml --checkpoint "$folder/checkpoints/last.pt"
echo
echo "run folder: $folder (metrics.csv, metrics.png, checkpoints/, resolved recipe and spec)"
