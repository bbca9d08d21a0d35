"""Batch cut-outs on Ray Data: the same job as ``personcut remove``, from a laptop to a cluster.

In your own Ray pipeline (``pip install "personcut[ray]"``)::

    import ray
    from personcut.batch import CutoutPredictor

    ds = ray.data.read_binary_files("s3://bucket/photos/", include_paths=True)
    ds.map_batches(CutoutPredictor, concurrency=4, batch_size=16).write_parquet("s3://bucket/out/")

Each actor loads the model once; its ONNX Runtime threads are set explicitly (Ray sets
``OMP_NUM_THREADS=1`` in workers). A batch of rows ``{"bytes", "path"}`` becomes rows of the
encoded cut-out (``output``) and a per-photo status: a bad photo gets its error, the others go on.
``personcut batch`` (:func:`run`) wraps this with file listing, resumable writing and a Parquet
manifest. Ray is imported only here: the base install stays free of it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from personcut.cutout import Cut, CutoutOptions, cut_photos
from personcut.files import remove_leftovers
from personcut.images import DEFAULT_MAX_PIXELS

MANIFEST_COLUMNS = ("path", "output", "status", "error", "width", "height", "person_fraction", "ms")


class CutoutPredictor:
    """A callable class for ``ray.data.Dataset.map_batches``: model loaded once per actor.

    Args:
        model: a model file or shipped name (None: the default model).
        options: keyword arguments of :class:`~personcut.cutout.CutoutOptions` (mask, bg, ...).
        threads: ONNX Runtime threads per actor (give the CPUs each actor is granted).
        max_pixels: photos over this are refused (their error in the row).
        output_dir, root: when given, each cut-out is written (atomically) to
            ``output_dir / path.relative_to(root)`` with the format's suffix, and ``output`` holds
            that file's path instead of the bytes.
    """

    def __init__(
        self,
        model: str | None = None,
        options: dict[str, Any] | None = None,
        threads: int = 1,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        output_dir: str | None = None,
        root: str | None = None,
    ) -> None:
        from personcut.segmenter import Segmenter

        self.segmenter = Segmenter(model, device="cpu", threads=max(1, threads))
        self.options = CutoutOptions(**(options or {}))
        self.max_pixels = max_pixels
        self.output_dir, self.root = output_dir, root

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        paths = [str(p) for p in batch["path"]]
        # Rows from read_binary_files carry their bytes; rows of paths alone are read here, so
        # no separate read stage competes with the actors for the CPUs.
        sources = list(batch["bytes"]) if "bytes" in batch else paths
        rows: dict[str, list] = {k: [] for k in MANIFEST_COLUMNS}
        for path, source in zip(paths, sources, strict=True):
            start = time.perf_counter()
            try:
                # One photo a network call, as `personcut remove` does: the same bytes out (a
                # padded batch of mixed sizes moves edge values by a step).
                (result,) = cut_photos(self.segmenter, [_read(source)], self.max_pixels)
            except OSError as exc:  # a URI that cannot be read
                result = exc
            row = self._row(path, result)
            row["ms"] = round((time.perf_counter() - start) * 1000, 1)
            for key in MANIFEST_COLUMNS:
                rows[key].append(row[key])
        return {k: np.array(v, dtype=object) for k, v in rows.items()}

    def _row(self, path: str, result: Cut | Exception) -> dict[str, Any]:
        row: dict[str, Any] = {"path": path, "output": None, "error": None}
        row.update(status="error", width=0, height=0, person_fraction=0.0)
        if isinstance(result, Exception):
            row["error"] = str(result).replace("<bytes>: ", "")
            return row
        try:
            data = result.encoded(self.options)
            row["output"] = self._write(path, data) if self.output_dir else data
        except Exception as exc:  # noqa: BLE001 - reported per photo, the rest go on
            row["error"] = str(exc)
            return row
        h, w = result.alpha.shape
        row.update(status="ok", width=w, height=h)
        row["person_fraction"] = round(float((result.alpha > 0.5).mean()), 5)
        return row

    def _write(self, path: str, data: bytes) -> str:
        from personcut.files import write_atomic

        target = output_path(path, self.root, self.output_dir, self.options.format)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Leftovers of killed runs were removed once for the whole job (run): listing the
        # folder here, for every photo, would be quadratic in the folder's size.
        write_atomic(target, data, clean=False)
        return str(target)


SUFFIX = {"PNG": ".png", "WEBP": ".webp", "JPEG": ".jpg"}


def _read(path: Any) -> Any:
    """A photo's bytes from a URI pyarrow's filesystems read (s3://, gs://); bytes and local
    paths are returned as they are (decoded from the file, errors naming it)."""
    if not isinstance(path, str) or "://" not in path:
        return path
    from pyarrow import fs

    filesystem, inner = fs.FileSystem.from_uri(path)
    with filesystem.open_input_stream(inner) as f:
        return f.read()


def output_path(path: str, root: str | None, output_dir: str, fmt: str) -> Path:
    """Where the cut-out of ``path`` goes: its name relative to ``root``, under ``output_dir``."""
    rel = Path(os.path.relpath(path, root)) if root else Path(Path(path).name)
    return Path(output_dir) / rel.with_suffix(SUFFIX[fmt])


def list_inputs(source: str) -> tuple[list[str], str]:
    """(photo paths, their common root) from a folder (searched in subfolders), a glob, or a
    .txt (one path per line) or .parquet (a ``path`` column) list."""
    import glob

    from personcut.images import INPUT_EXTENSIONS

    p = Path(source)
    if p.is_dir():
        paths = sorted(
            str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in INPUT_EXTENSIONS
        )
        return paths, str(p)
    if p.suffix.lower() == ".txt" and p.is_file():
        paths = [line.strip() for line in p.read_text().splitlines() if line.strip()]
    elif p.suffix.lower() == ".parquet" and p.is_file():
        import pyarrow.parquet as pq

        paths = [str(x) for x in pq.read_table(p, columns=["path"]).column("path").to_pylist()]
    else:
        paths = sorted(glob.glob(source, recursive=True))
    local = [x for x in paths if "://" not in x]
    root = os.path.commonpath([str(Path(x).parent) for x in local]) if local else ""
    return paths, root


def run(
    source: str,
    output_dir: str | Path,
    *,
    address: str | None = None,
    model: str | None = None,
    options: dict[str, Any] | None = None,
    actors: int | None = None,
    batch_size: int = 8,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    progress: bool = True,
) -> dict[str, int]:
    """Cut out every photo of ``source`` (see :func:`list_inputs`) into ``output_dir`` with the
    same relative names, on a Ray started for the job or the cluster at ``address`` (or
    ``RAY_ADDRESS``). Photos whose output exists are skipped (outputs appear only complete, so
    a killed job loses nothing already written). Writes ``output_dir/manifest.parquet`` (one row
    a photo of this run: path, output, status, error, width, height, person fraction, ms).
    Returns the counts: done, failed, skipped."""
    options = options or {}
    fmt = CutoutOptions(**options).format  # options checked before Ray starts
    paths, root = list_inputs(source)
    paths = [os.path.abspath(p) if "://" not in p else p for p in paths]
    root = os.path.abspath(root) if root else root
    output_dir = Path(output_dir).resolve()
    # The photos whose output is not there yet, and those outputs (each path made once).
    pending = [
        (p, out) for p in paths if not (out := output_path(p, root, str(output_dir), fmt)).is_file()
    ]
    todo, outputs = [p for p, _ in pending], [out for _, out in pending]
    rows: dict[str, list] = {k: [] for k in MANIFEST_COLUMNS}
    if todo:
        # What killed earlier runs left beside these outputs, one listing per folder.
        remove_leftovers(outputs)
        predictor = {
            "model": model,
            "options": options,
            "max_pixels": max_pixels,
            "output_dir": str(output_dir),
            "root": root,
        }
        # "local": a Ray of the job's own unless one is named. Ray's default would join the
        # latest `ray start` cluster on this machine, whose workers may not see these files
        # (and a stale record of a dead one makes ray.init wait for ever).
        try:
            with _ray_session(address or os.environ.get("RAY_ADDRESS") or "local"):
                _stream(todo, predictor, actors, batch_size, progress, rows)
        finally:
            # A worker killed mid-write leaves its temporary file; Ray retries the photo on
            # another worker, so the job, not the dead worker, removes it.
            remove_leftovers(outputs)
    _write_manifest(rows, output_dir / "manifest.parquet")
    failed = sum(s != "ok" for s in rows["status"])
    return {
        "done": len(rows["status"]) - failed,
        "failed": failed,
        "skipped": len(paths) - len(todo),
    }


@contextlib.contextmanager
def _ray_session(address: str) -> Iterator[None]:
    """Ray for the job: the cluster at ``address``, or with "local" one started (and stopped)
    here; an already initialised Ray is used as it is."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours counts photos
    context.print_on_execution_start = False
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def _stream(
    todo: list[str],
    predictor: dict[str, Any],
    actors: int | None,
    batch_size: int,
    progress: bool,
    rows: dict[str, list],
) -> None:
    """Run the photos through a pool of CutoutPredictor actors (one per CPU unless ``actors``),
    adding their manifest rows to ``rows`` as they stream back."""
    import ray
    from tqdm import tqdm

    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    pool = actors or cpus
    share = max(1, cpus // pool)  # each actor's CPUs, and its ONNX Runtime threads
    # Paths, not bytes: the actors read the files, so no read stage competes for the CPUs (a
    # read_binary_files stage with actors on every CPU got none and hung).
    ds = ray.data.from_items([{"path": p} for p in todo]).map_batches(
        CutoutPredictor,
        fn_constructor_kwargs={**predictor, "threads": share},
        concurrency=pool,
        batch_size=batch_size,
        num_cpus=share,
    )
    with tqdm(total=len(todo), unit="img", desc="batch", disable=not progress) as bar:
        for batch in ds.iter_batches(batch_size=batch_size, batch_format="numpy"):
            for key in MANIFEST_COLUMNS:
                rows[key].extend(batch[key].tolist())
            bar.update(len(batch["path"]))


def _write_manifest(rows: dict[str, list], path: Path) -> None:
    """The rows as a Parquet file, written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from personcut.files import write_atomic

    text, whole, real = pa.string(), pa.int64(), pa.float64()
    types = dict(
        zip(MANIFEST_COLUMNS, (text, text, text, text, whole, whole, real, real), strict=True)
    )
    # Ray may hand an all-None column back as NaN floats: text columns keep strings only.
    columns = {
        k: pa.array([x if isinstance(x, str) else None for x in rows[k]], type=t)
        if t == text
        else pa.array(rows[k], type=t)
        for k, t in types.items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: pq.write_table(pa.table(columns), tmp))
