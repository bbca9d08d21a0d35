"""COCO person masks through pycocotools.

Each image's mask is the union of its person instances, polygons and RLE alike, rasterised when
the item is read (never all up front: full COCO has 118k images). Crowd regions are either left
out of the loss and metrics (value 255, as torchvision's segmentation reference does) or counted
as person, by ``crowd``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from personcut.scoring import IGNORE
from personcut.train.data.common import load_or_substitute

log = logging.getLogger(__name__)


def resolve_coco_source(spec: str) -> tuple[Path, Path]:
    """``ANN.json`` or ``ANN.json:IMAGES_DIR`` or a folder with ``annotations/*.json`` and
    ``images/`` -> (annotation file, images folder)."""
    if ".json:" in spec:
        ann, images = spec.split(".json:", 1)
        return Path(ann + ".json"), Path(images)
    path = Path(spec)
    if path.is_dir():
        jsons = sorted((path / "annotations").glob("*.json"))
        if len(jsons) != 1:
            raise ValueError(f"{path}: expected exactly one annotations/*.json, found {len(jsons)}")
        return jsons[0], path / "images"
    # COCO's own layout: annotations/instances_train2017.json beside train2017/
    split = path.stem.rsplit("_", 1)[-1]
    for candidate in (path.parent.parent / split, path.parent.parent / "images"):
        if candidate.is_dir():
            return path, candidate
    raise FileNotFoundError(
        f"{path}: cannot find its images folder ({path.parent.parent / split} or "
        f"{path.parent.parent / 'images'}); give it as {path}:IMAGES_DIR"
    )


class CocoPersonDataset:
    """Binary person masks for the images of a COCO annotation file."""

    def __init__(
        self,
        annotations: str | Path,
        images: str | Path,
        transform=None,
        crowd: str = "ignore",
        keep_empty: bool = True,
        min_person_area: float = 0.0,
        exclude: frozenset[str] = frozenset(),
    ) -> None:
        from pycocotools.coco import COCO

        self.annotations, self.images = Path(annotations), Path(images)
        if not self.annotations.is_file():
            raise FileNotFoundError(f"COCO annotation file {self.annotations} does not exist")
        if not self.images.is_dir():
            raise FileNotFoundError(f"COCO images folder {self.images} does not exist")
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints timings
                self.coco = COCO(str(self.annotations))
        except (json.JSONDecodeError, KeyError, TypeError, AssertionError) as exc:
            raise ValueError(
                f"{self.annotations} is not a valid COCO annotation file ({exc!r})"
            ) from exc
        self.person_ids = self.coco.getCatIds(catNms=["person"])
        if not self.person_ids:
            raise ValueError(f"{self.annotations} has no 'person' category")
        self.transform, self.crowd, self.min_person_area = transform, crowd, min_person_area
        self.skipped: list[str] = []
        ids = sorted(self.coco.getImgIds())
        if not keep_empty:
            with_people = set(self.coco.getImgIds(catIds=self.person_ids))
            ids = [i for i in ids if i in with_people]
        # images whose file stem is in ``exclude`` are left out (labels found wrong)
        stem = {i: Path(self.coco.imgs[i]["file_name"]).stem for i in ids}
        self.excluded = [stem[i] for i in ids if stem[i] in exclude]
        self.ids = ids = [i for i in ids if stem[i] not in exclude]
        self.items = [(self.images / self.coco.imgs[i]["file_name"],) for i in ids]
        if not self.ids:
            raise ValueError(f"{self.annotations}: no images to use")

    def __len__(self) -> int:
        return len(self.ids)

    def mask(self, image_id: int) -> np.ndarray:
        """uint8 HxW: 1 person, 0 background, 255 crowd when crowd="ignore"."""
        info = self.coco.imgs[image_id]
        out = np.zeros((info["height"], info["width"]), np.uint8)
        ann_ids = self.coco.getAnnIds(imgIds=image_id, catIds=self.person_ids, iscrowd=None)
        crowd = np.zeros_like(out, dtype=bool)
        for ann in self.coco.loadAnns(ann_ids):
            if ann.get("area", 0) < self.min_person_area and not ann.get("iscrowd"):
                continue
            m = self.coco.annToMask(ann).astype(bool)
            if ann.get("iscrowd") and self.crowd == "ignore":
                crowd |= m
            else:
                out[m] = 1
        out[crowd & (out == 0)] = IGNORE  # a labelled person inside a crowd box stays person
        return out

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        image_id = self.ids[index]
        path = self.items[index][0]
        with Image.open(path) as im:
            image = np.asarray(im.convert("RGB"))
        mask = self.mask(image_id)
        if image.shape[:2] != mask.shape:
            raise ValueError(
                f"{path} is {image.shape[1]}x{image.shape[0]} but the json says "
                f"{mask.shape[1]}x{mask.shape[0]}"
            )
        return image, mask, "coco"

    def __getitem__(self, index: int):
        image, mask, group = load_or_substitute(self, index)
        if self.transform is None:
            return image, mask, group
        return (*self.transform(image, mask), group)
