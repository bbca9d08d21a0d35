"""Would a small learned refiner at the photo's full size beat the guided filter? (issue 22)

    python benchmarks/try_edge_refiner.py                  # 800 persons-train photos, 1,500 steps
    python benchmarks/try_edge_refiner.py --limit 100 --steps 50 --val-limit 20   # a smoke run

The shipped network runs once per photo (the default mode: the photo and its mirror image). A
tiny CNN then sees, at the photo's own size, the colour photo, the network's probabilities
enlarged bilinearly and the guided filter's output (no levels), and adds a correction to the
guided output's logit. It is trained on persons-train (never persons-val) with binary
cross-entropy on patches centred near the person's edge, then scored on persons-val beside the
shipped step (guided filter, then levels) with personcut.scoring: person IoU, boundary F, alpha
MAE. An experiment, not the package: the refiner is not shipped unless it measures better and
fits the time budget (see benchmarks/RESULTS.md, "A learned edge refiner").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"


def network_views(seg, pairs, desc: str):
    """(rgb, bilinear prob, guided prob, mask 0/1/IGNORE, source, stem) per photo; one network
    run each (photo + mirror image)."""
    from personcut.refine import to_full_size

    out = []
    for pair in tqdm(pairs, desc=desc):
        rgb, mask = pair.load()
        small, _ = seg.prepare(rgb)
        prob = seg._probabilities([small], True)[0]  # the default mode: photo + mirror image
        photo = Image.fromarray(rgb)
        bilinear = to_full_size(prob, small, photo, None, guided=False)
        guided = to_full_size(prob, small, photo, None, guided=True, guide=seg.guide)
        out.append((rgb, bilinear, guided, mask, pair.source, pair.image.stem))
    return out


def inputs(rgb: np.ndarray, bilinear: np.ndarray, guided: np.ndarray) -> np.ndarray:
    """(5, H, W) float32: colour in [0, 1], both probabilities."""
    return np.concatenate(
        [rgb.transpose(2, 0, 1).astype(np.float32) / 255.0, bilinear[None], guided[None]]
    )


def make_refiner(width: int):
    import torch
    from torch import nn

    class Refiner(nn.Module):
        """Dilated 3x3 convolutions (receptive field 15 px) -> a correction to the guided logit."""

        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(5, width, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, padding=2, dilation=2),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, padding=4, dilation=4),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, 1, 1),
            )
            nn.init.zeros_(self.body[-1].weight)  # starts as the guided filter itself
            nn.init.zeros_(self.body[-1].bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            guided = x[:, 4:5].clamp(1e-4, 1 - 1e-4)
            return torch.logit(guided) + self.body(x)

    return Refiner()


def edge_pixels(view) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of a view's pixels near the true or the predicted edge."""
    _, _, guided, mask, _, _ = view
    edge = np.abs(guided - 0.5) < 0.45
    person = mask == 1
    edge |= person != np.roll(person, 1, axis=0)
    edge |= person != np.roll(person, 1, axis=1)
    return np.nonzero(edge)


def patches(views, edges, size: int, count: int, rng: np.random.Generator):
    """``count`` (input, target) patches centred on pixels near the true or predicted edge;
    ``edges``: :func:`edge_pixels` of each view, found once."""
    xs, ys = [], []
    for _ in range(count):
        k = rng.integers(len(views))
        rgb, bilinear, guided, mask, _, _ = views[k]
        h, w = mask.shape
        ys_, xs_ = edges[k]
        if len(ys_) == 0 or h < size or w < size:
            cy, cx = h // 2, w // 2
        else:
            j = rng.integers(len(ys_))
            cy, cx = ys_[j], xs_[j]
        top = int(np.clip(cy - size // 2, 0, max(0, h - size)))
        left = int(np.clip(cx - size // 2, 0, max(0, w - size)))
        sl = (slice(top, top + size), slice(left, left + size))
        x = inputs(rgb[sl], bilinear[sl], guided[sl])
        y = (mask[sl] == 1).astype(np.float32)
        if x.shape[1:] != (size, size):  # a photo smaller than the patch: pad
            ph, pw = size - x.shape[1], size - x.shape[2]
            x = np.pad(x, ((0, 0), (0, ph), (0, pw)), mode="edge")
            y = np.pad(y, ((0, ph), (0, pw)), mode="edge")
        if rng.random() < 0.5:
            x, y = x[:, :, ::-1], y[:, ::-1]
        xs.append(np.ascontiguousarray(x))
        ys.append(np.ascontiguousarray(y))
    return np.stack(xs), np.stack(ys)[:, None]


def train_refiner(train, edges, args: argparse.Namespace, rng: np.random.Generator):
    """The refiner fitted on edge patches; returns it and the per-step losses."""
    import torch

    model = make_refiner(args.width)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.steps)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    losses = []
    with tqdm(range(args.steps), desc="refiner") as bar:
        for step in bar:
            x, y = patches(train, edges, args.patch, args.batch, rng)
            loss = loss_fn(model(torch.from_numpy(x)), torch.from_numpy(y))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            if step % 50 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
    return model, losses


def score(model, val) -> dict:
    """persons-val scored three ways: the shipped step, the refiner with and without levels."""
    import torch

    from personcut.refine import ALPHA_LEVELS, levels
    from personcut.scoring import Scores

    rows = {
        "shipped: guided filter, levels": Scores(edges=True),
        "refiner, levels": Scores(edges=True),
        "refiner, no levels": Scores(edges=True),
    }
    model.eval()
    with torch.inference_mode():
        for rgb, bilinear, guided, mask, source, stem in tqdm(val, desc="score persons-val"):
            x = torch.from_numpy(inputs(rgb, bilinear, guided)[None])
            refined = torch.sigmoid(model(x))[0, 0].numpy()
            rows["shipped: guided filter, levels"].add(
                levels(guided, *ALPHA_LEVELS), mask, source, stem
            )
            rows["refiner, levels"].add(levels(refined, *ALPHA_LEVELS), mask, source, stem)
            rows["refiner, no levels"].add(refined, mask, source, stem)
    return rows


def summary(scores) -> dict:
    r = scores.result()
    per_source = {
        s: {k: round(v, 4) for k, v in r["by_source"][s].items() if isinstance(v, float)}
        for s in r.get("by_source", {})
    }
    return {
        "person_iou": round(r["person_iou"], 4),
        "boundary_f": round(r["boundary_f"], 4),
        "alpha_mae": round(r["mae"], 4),
        "sources": per_source,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--limit", type=int, default=800, help="persons-train photos to train on")
    p.add_argument("--val-limit", type=int, default=0, help="persons-val photos (0: all)")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch", type=int, default=96)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--threads", type=int, default=1, help="torch threads (share the machine)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "edge_refiner.json")
    args = p.parse_args()

    import torch

    from personcut import Segmenter
    from personcut.scoring import MaskFolder

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    seg = Segmenter(device="cpu", threads=args.threads)
    train_pairs = MaskFolder.read(DATA / "persons-train").pairs
    train_pairs = train_pairs[:: max(1, len(train_pairs) // args.limit)][: args.limit]
    val_pairs = MaskFolder.read(DATA / "persons-val").pairs
    if args.val_limit:
        val_pairs = val_pairs[:: max(1, len(val_pairs) // args.val_limit)][: args.val_limit]
    train = network_views(seg, train_pairs, "network, persons-train")
    edges = [edge_pixels(view) for view in train]
    start = time.perf_counter()
    model, losses = train_refiner(train, edges, args, rng)
    train_s = time.perf_counter() - start
    del train, edges

    rows = score(model, network_views(seg, val_pairs, "network, persons-val"))
    result = {
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "train_photos": len(train_pairs),
        "val_photos": len(val_pairs),
        "train_seconds": round(train_s, 1),
        "final_loss": round(float(np.mean(losses[-100:])), 4),
        "parameters": sum(q.numel() for q in model.parameters()),
        "rows": {},
    }
    for name, scores in rows.items():
        result["rows"][name] = summary(scores)
        print(name, json.dumps(result["rows"][name]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
