"""Datasets of (image, person mask) pairs: COCO through pycocotools, or image/mask folders."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import ConcatDataset, Dataset

from personcut.scoring import IGNORE
from personcut.train.data.coco import CocoPersonDataset, resolve_coco_source
from personcut.train.data.folders import FolderDataset

__all__ = ["IGNORE", "CocoPersonDataset", "FolderDataset", "build_dataset", "read_exclude"]


def _is_coco(spec: str) -> bool:
    path = Path(spec.split(".json:", 1)[0] + ".json") if ".json:" in spec else Path(spec)
    return path.suffix == ".json" or (path / "annotations").is_dir()


def _folder_and_source(spec: str) -> tuple[str, str | None] | None:
    """``FOLDER`` or ``FOLDER:SOURCE`` (only the pairs whose names start with ``SOURCE-``), or
    None when ``spec`` is neither."""
    if Path(spec).is_dir():
        return spec, None
    folder, _, source = spec.rpartition(":")
    if folder and source and Path(folder).is_dir():
        return folder, source
    return None


def build_dataset(
    sources: list[str],
    transform=None,
    crowd: str = "ignore",
    keep_empty: bool = True,
    min_person_area: float = 0.0,
    exclude: frozenset[str] = frozenset(),
) -> Dataset:
    """One dataset over several sources (folders and COCO files may be mixed), without the
    images whose file stems are in ``exclude``; a name in ``exclude`` that matches no image of
    any source is an error (a typo would otherwise leave a wrong label in silently)."""
    if not sources:
        raise ValueError("no data sources given (set data.train / data.val or pass --data)")
    parts: list[Dataset] = []
    for spec in sources:
        if _is_coco(spec):
            ann, images = resolve_coco_source(spec)
            parts.append(
                CocoPersonDataset(
                    ann, images, transform, crowd, keep_empty, min_person_area, exclude
                )
            )
        elif folder := _folder_and_source(spec):
            parts.append(FolderDataset(folder[0], transform, source=folder[1], exclude=exclude))
        else:
            raise FileNotFoundError(
                f"data source {spec} is neither a folder with images/ and masks/ (or "
                "FOLDER:SOURCE) nor a COCO json"
            )
    unmatched = exclude - {stem for part in parts for stem in part.excluded}
    if unmatched:
        raise ValueError(
            f"{len(unmatched)} names to exclude (data.exclude) match no image of "
            f"{', '.join(sources)}: "
            f"{', '.join(sorted(unmatched)[:5])}"
        )
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)


def read_exclude(path: str | Path) -> frozenset[str]:
    """The image names (file stems) listed in ``path``: one per line, ``#`` starts a comment
    (say there why the label is wrong)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"exclude list {path} does not exist")
    names = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return frozenset(n for n in names if n)


def skipped_files(dataset: Dataset) -> list[str]:
    dataset = getattr(dataset, "dataset", dataset)  # inside a SceneDataset
    parts = dataset.datasets if isinstance(dataset, ConcatDataset) else [dataset]
    # a folder listed twice (to weigh it) skips the same files twice: report each once
    return list(dict.fromkeys(s for p in parts for s in getattr(p, "skipped", [])))
