#!/usr/bin/env bash
# Reproduce the classic U-Net (the paper's encoder) shipped as `personcut remove --model classic`:
#   stage 1: configs/classic.yaml          28 epochs from scratch, persons-train   -> runs/classic
#   stage 2: configs/classic_stage2.yaml    8 epochs from stage 1's best            -> runs/classic_stage2
#   stage 3: configs/classic_stage3.yaml   the shipped model's data and scenes      -> runs/classic_stage3
# then ship stage 3's best epoch as weights/classic.*. Stage 3 reads data/pseudo, made by
# scripts/pseudo_label.py (scripts/train_default.sh runs it).
# Usage: bash scripts/train_classic.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d data/pseudo/masks ] || python scripts/pseudo_label.py
personcut train --config configs/classic.yaml
personcut train --config configs/classic_stage2.yaml
personcut train --config configs/classic_stage3.yaml
python scripts/ship_model.py runs/classic_stage3 --name classic --working-size 320 \
  --stages runs/classic runs/classic_stage2 runs/classic_stage3 --recipe "bash scripts/train_classic.sh"
