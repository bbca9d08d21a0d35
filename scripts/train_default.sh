#!/usr/bin/env bash
# Reproduce the shipped model from the data in ../shared/data, then put it into the package:
# train (configs/default.yaml -> runs/default), ship its best epoch, redraw the README pictures.
# On a CPU the run can go in slices: `personcut train --config configs/default.yaml --stop-after N`,
# later the same with `--resume runs/default/last.pt`, then the last two lines here.
# Usage: bash scripts/train_default.sh   (from a dev install: bash scripts/test.sh sets one up)
set -euo pipefail
cd "$(dirname "$0")/.."
personcut train --config configs/default.yaml
python scripts/ship_model.py runs/default --working-size 320
python scripts/make_examples.py
