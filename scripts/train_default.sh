#!/usr/bin/env bash
# Reproduce the shipped model from the data in ../shared/data, then put it into the package:
#   stage 1: configs/default.yaml         28 epochs from scratch          -> runs/default
#   stage 2: configs/default_stage2.yaml   8 epochs from stage 1's best   -> runs/default_stage2
# then ship stage 2's best epoch and redraw the README pictures.
# On a CPU each stage can go in slices: add `--stop-after N`, later `--resume <out_dir>/last.pt`.
# Usage: bash scripts/train_default.sh   (from a dev install: bash scripts/test.sh sets one up)
set -euo pipefail
cd "$(dirname "$0")/.."
personcut train --config configs/default.yaml
personcut train --config configs/default_stage2.yaml
python scripts/ship_model.py runs/default_stage2 --stages runs/default runs/default_stage2 \
  --working-size 320
python scripts/make_examples.py
