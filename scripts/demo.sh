#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the main job: validate every bundled spec, then build
# ResNet-50 and ViT-B/16 from their specs and print their node tables.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
engine=.venv/bin/engine
echo "== engine validate specs/*.yaml"
$engine validate specs/*.yaml
echo
echo "== engine build resnet50 --set num_classes=10 --depth 1"
$engine build resnet50 --set num_classes=10 --depth 1
echo
echo "== engine build specs/vit_b16.yaml --depth 1"
$engine build specs/vit_b16.yaml --depth 1
