"""Average the weights of several fine-tuned U-Nets into one ("model soup") and write it as a
safetensors file that `personcut export`, `personcut evaluate` and `train.init` all read.

    python scripts/average_models.py runs/default_stage6/last.pt runs/default_stage9/last.pt \
        -o runs/soup.safetensors [--weights 2 1]

One model with --raw writes a checkpoint's raw weights where its run kept a moving average.

Only models fine-tuned from one starting point average well (they lie in one basin); averaging
unrelated runs gives a broken model, which `personcut evaluate` shows at once.
"""

from __future__ import annotations

import argparse
import json
import logging

from personcut.train.checkpoint import average_models, save_safetensors


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "models", nargs="+", help="checkpoints (.pt) or .safetensors of one architecture"
    )
    p.add_argument("-o", "--out", required=True, help="output .safetensors")
    p.add_argument("--weights", type=float, nargs="+", help="one weight per model (default equal)")
    p.add_argument(
        "--raw",
        action="store_true",
        help="from checkpoints of runs with train.ema_decay take the raw weights, not the average",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model, config = average_models(args.models, args.weights, raw=args.raw)
    sources = {"averaged_from": json.dumps([str(m) for m in args.models])}
    if args.raw:
        sources["raw_weights"] = "true"
    if args.weights:
        sources["averaging_weights"] = json.dumps(args.weights)
    save_safetensors(model, args.out, config, extra=sources)
    logging.info("averaged %d models into %s", len(args.models), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
