#!/usr/bin/env bash
# Reproduce the shipped model from the data in ../shared/data, then put it into the package.
#   stage 1: configs/default.yaml         16 epochs from scratch           -> runs/default
#   stage 2: configs/default_stage2.yaml  18 epochs from stage 1's best    -> runs/default_stage2
# On a CPU each stage can be run in slices: add `--stop-after N`, later `--resume <out>/last.pt`.
# Usage: bash scripts/train_default.sh   (from a dev install: bash scripts/test.sh sets one up)
set -euo pipefail
cd "$(dirname "$0")/.."
personcut train --config configs/default.yaml
personcut train --config configs/default_stage2.yaml
python scripts/ship_model.py runs/default_stage2 --stages runs/default runs/default_stage2
python scripts/make_examples.py
