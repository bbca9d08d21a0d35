"""The ``personcut`` command: remove, train, evaluate, export, serve.

Torch is imported only inside the subcommands that need it, so the base install (ONNX Runtime)
can run ``personcut remove`` without it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from personcut import __version__

MAX_WORKERS = 8
"""Most photos `remove` works on at once by default: more cores than this rarely pay for the
memory of more full-size photos in flight."""

if TYPE_CHECKING:  # imported where used, so `personcut remove` starts fast
    from personcut.cutout import CutoutOptions

log = logging.getLogger("personcut")


def _train(args: argparse.Namespace) -> int:
    from personcut.train.config import load_config
    from personcut.train.loop import fit

    overrides = list(args.set or [])
    if args.out:
        overrides.append(f"train.out_dir={args.out}")
    if args.init:
        overrides.append(f"train.init={args.init}")
    config = load_config(args.config, overrides)
    history = fit(config, resume=args.resume, stop_after=args.stop_after)
    print(json.dumps(history[-1] if history else {}, indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from personcut.train.data import build_dataset, skipped_files

    if not args.model.exists() and args.model.suffix == "":
        from personcut.weights import resolve_model

        args.model = resolve_model(str(args.model))  # a shipped model's name: its .onnx
    if args.edges and args.model.suffix != ".onnx":
        print(
            f"personcut evaluate: --edges scores the alpha `remove` writes, which needs an .onnx "
            f"model; export {args.model} first (personcut export)",
            file=sys.stderr,
        )
        return 2
    if args.model.suffix == ".onnx":
        # The path users get: the Segmenter's resize, network and guided upsampling. The levels
        # step is left out: it does not move the 0.5 threshold (IoU is the same) but would make
        # the BCE meaningless.
        from personcut.segmenter import Segmenter
        from personcut.train.evaluation import evaluate_segmenter

        # With --edges the alpha is the one `remove` writes (levels included), as compare.py
        # scores it; its cross-entropy would then be meaningless, so it is left out.
        levels = {} if args.edges else {"alpha_levels": None}
        seg = Segmenter(
            args.model, device=args.device, working_size=args.size, quality=args.quality, **levels
        )
        dataset = build_dataset(args.data, None, crowd="ignore")
        result = evaluate_segmenter(seg, dataset, edges=args.edges)
        if args.edges:
            for scores in [result, *result.get("by_source", {}).values()]:
                scores.pop("bce", None)
        result["working_size"] = seg.info.working_size
        result["quality"] = args.quality
        result["scored_through"] = "Segmenter (ONNX Runtime, guided upsampling)"
        result["skipped"] = skipped_files(dataset)
    else:
        result = _evaluate_checkpoint(args)
    print(json.dumps(result, indent=2))
    return 0


def _evaluate_checkpoint(args: argparse.Namespace) -> dict:
    """A .pt/.safetensors checkpoint through torch, as training validation scores it."""
    from personcut.train.checkpoint import load_model
    from personcut.train.data import build_dataset, skipped_files
    from personcut.train.data.transforms import EvalTransform
    from personcut.train.evaluation import evaluate, make_eval_loader
    from personcut.train.plots import prediction_sheet
    from personcut.train.runtime import setup_runtime

    runtime = setup_runtime(args.device)
    model, config = load_model(args.model, runtime.device)
    size = args.size or config.data.eval_size
    transform = EvalTransform(size, 2**config.model.depth)  # sized as `remove` sizes it
    dataset = build_dataset(args.data, transform, crowd=config.data.crowd)
    loader = make_eval_loader(dataset, args.batch_size, args.num_workers, runtime)
    result = evaluate(
        model.to(runtime.device),
        loader,
        runtime.device,
        groups=loader.groups,
        keep=args.sheet_images if args.sheet else 0,
    )
    examples = result.pop("examples", [])
    if args.sheet and examples:
        prediction_sheet(examples, args.sheet)
    result["working_size"] = size
    result["scored_through"] = "torch network, bilinear upsampling"
    result["skipped"] = skipped_files(dataset)
    return result


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train the U-Net",
        description="Train the U-Net on COCO "
        "and/or image/mask folders. Also runs under torchrun for several GPUs.",
    )
    p.add_argument("--config", type=Path, help="YAML config (defaults when omitted)")
    p.add_argument(
        "--set",
        action="append",
        metavar="SECTION.KEY=VALUE",
        help="override a config value, e.g. --set model.width=32 (repeatable)",
    )
    p.add_argument("--out", help="output folder (same as --set train.out_dir=...)")
    p.add_argument(
        "--init",
        help='start from weights: a .pt/.safetensors file, "shipped" (the default model) or '
        '"classic" (the shipped classic U-Net)',
    )
    p.add_argument("--resume", type=Path, help="continue a run from its last.pt")
    p.add_argument(
        "--stop-after",
        type=int,
        metavar="N",
        help="stop after N epochs this time (continue later with --resume)",
    )
    p.set_defaults(func=_train)


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="measure person IoU / 2-class mIoU on labelled data")
    p.add_argument(
        "--model",
        required=True,
        type=Path,
        help="checkpoint .pt or .safetensors (torch), .onnx or a shipped model's name "
        "(personcut, classic; scored through the Segmenter, as remove runs it)",
    )
    p.add_argument(
        "--data",
        required=True,
        nargs="+",
        help="image/mask folders or COCO json (JSON or JSON:IMAGES_DIR)",
    )
    p.add_argument("--size", type=int, help="working size (long side); default: the model's")
    p.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="images per batch; above 1, images are padded to the largest of their "
        "batch, which the network sees but `remove` does not",
    )
    p.add_argument(
        "--quality",
        default="balanced",
        choices=["fast", "balanced", "best"],
        help="the quality mode, for .onnx models (scored as `remove` runs them)",
    )
    p.add_argument(
        "--edges",
        action="store_true",
        help="also score boundary F and alpha MAE on the alpha `remove` writes (.onnx models)",
    )
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--sheet", type=Path, help="write an overlay sheet PNG here")
    p.add_argument("--sheet-images", type=int, default=8)
    p.set_defaults(func=_evaluate)


# ----------------------------------------------------------------------------------- remove


@dataclass
class Job:
    """One input and where its result goes (``None`` output: stdout)."""

    source: Path | None  # None: stdin
    output: Path | None

    @property
    def name(self) -> str:
        return str(self.source) if self.source else "<stdin>"


def _output_format(path: Path | None, fmt: str | None) -> str:
    from personcut.images import FORMATS

    if fmt:
        return fmt.upper().replace("JPG", "JPEG")
    if path is not None and path.suffix.lower() in FORMATS:
        return FORMATS[path.suffix.lower()]
    return "PNG"


def _plan(args: argparse.Namespace) -> tuple[list[Job], list[str]]:
    """Expand inputs into jobs with their output paths; problems found up front are returned
    as messages (the other files still run)."""
    from personcut.images import FORMATS, INPUT_EXTENSIONS

    ext = {"PNG": ".png", "WEBP": ".webp", "JPEG": ".jpg"}[_output_format(None, args.format)]
    if args.output and Path(args.output).suffix.lower() in FORMATS:
        ext = Path(args.output).suffix.lower()
    sources: list[tuple[Path | None, Path | None]] = []  # (file, folder it was found in)
    errors: list[str] = []
    for item in args.inputs:
        if item == "-":
            sources.append((None, None))
            continue
        path = Path(item)
        if path.is_dir():
            pattern = "**/*" if args.recursive else "*"
            found = sorted(
                p
                for p in path.glob(pattern)
                if p.is_file() and p.suffix.lower() in INPUT_EXTENSIONS and ".cutout." not in p.name
            )
            if not found:
                errors.append(
                    f"{path}: folder holds no images"
                    + ("" if args.recursive else " (use -r to look in subfolders)")
                )
            sources.extend((p, path) for p in found)
        elif path.exists():
            sources.append((path, None))
        else:
            errors.append(f"{path}: no such file or folder")
    single = len(args.inputs) == 1 and len(sources) == 1 and sources[0][1] is None
    out = Path(args.output) if args.output else None
    # "-o cutouts/" names a folder even before it exists.
    out_is_folder = bool(args.output) and args.output.endswith(("/", os.sep))
    if out is not None and not sources:
        return [], errors  # nothing to do: create no folder
    if out is not None and (not single or out_is_folder):
        if out.exists() and not out.is_dir():
            errors.append(f"{out}: -o must name a folder when there are several inputs")
            return [], errors
        if not out_is_folder and out.suffix.lower() in FORMATS and not out.exists():
            errors.append(f"{out}: -o names a file, but there are several inputs; give a folder")
            return [], errors
        out.mkdir(parents=True, exist_ok=True)
    jobs = []
    for src, folder in sources:
        if src is None:
            # stdout when alone; in a batch with -o FOLDER, a file in that folder
            target = out / f"stdin{ext}" if out is not None and out.is_dir() else out
        elif out is None:
            target = src.with_name(src.stem + ".cutout" + ext)
        elif single:
            target = out / (src.stem + ext) if out.is_dir() else out
        else:
            rel = src.relative_to(folder) if folder is not None else Path(src.name)
            target = out / rel.with_suffix(ext)
        jobs.append(Job(src, target))
    return jobs, errors


def _check_target(job: Job, inputs: set[Path], taken: set[Path], overwrite: bool) -> None:
    if job.output is None:
        return
    resolved = job.output.resolve()
    if resolved in inputs:
        raise ValueError(f"{job.name}: output {job.output} is an input; refusing to overwrite it")
    if resolved in taken:
        raise ValueError(f"{job.name}: output {job.output} is also another input's output")
    from personcut.files import replaceable

    refusal = replaceable(job.output)
    if refusal:
        raise ValueError(f"{job.name}: output {job.output} {refusal}; refusing to replace it")
    if job.output.exists() and not overwrite:
        raise ValueError(f"{job.name}: output {job.output} exists (use --overwrite to replace it)")
    taken.add(resolved)


def _remove(args: argparse.Namespace) -> int:
    from personcut.cutout import OptionError
    from personcut.video import VIDEO_EXTENSIONS

    if args.workers is not None and args.workers < 1:
        print("personcut remove: --workers must be at least 1", file=sys.stderr)
        return 2
    to_stdout = args.output == "-"
    if to_stdout:
        args.output = None
    try:  # a bad option fails before any work, with the message every entry point gives
        options = _options(args)
    except (OptionError, ValueError) as exc:
        print(f"personcut remove: {exc}", file=sys.stderr)
        return 2
    videos = [
        i
        for i in args.inputs
        if i != "-" and Path(i).suffix.lower() in VIDEO_EXTENSIONS and Path(i).is_file()
    ]
    if videos:
        return _remove_videos(args, videos, options)
    jobs, failures = _plan(args)
    if to_stdout and len(jobs) == 1:
        jobs[0].output = None  # -o -: the one result on standard output
    elif to_stdout and jobs:
        print("personcut remove: -o - takes one input", file=sys.stderr)
        return 2
    if not jobs:
        for f in failures:
            print(f"personcut remove: {f}", file=sys.stderr)
        return 1
    jobs, job_options = _checked_jobs(jobs, options, args, failures)
    sources: list = [j.source for j in jobs]
    if any(j.source is None for j in jobs):
        if sys.stdin is None or getattr(sys.stdin, "buffer", None) is None:
            print("personcut remove: <stdin>: standard input is closed", file=sys.stderr)
            return 1
        stdin_data = sys.stdin.buffer.read()
        sources = [stdin_data if s is None else s for s in sources]
    ok = _run_photos(args, jobs, sources, job_options, failures)
    return _report(ok, failures)


def _options(args: argparse.Namespace) -> CutoutOptions:
    from personcut.cutout import CutoutOptions

    return CutoutOptions(
        mask=args.mask,
        bg=args.bg,
        bg_image=args.bg_image,  # decoded here, once, for all the photos
        blur=args.blur,
        crop=args.crop,
        threshold=args.threshold,
        quality=args.quality,
        decontaminate=not args.no_decontaminate,
    )


def _checked_jobs(
    jobs: list[Job], options: CutoutOptions, args: argparse.Namespace, failures: list[str]
) -> tuple[list[Job], list[CutoutOptions]]:
    """The jobs whose outputs may be written, each with its options (the format from the
    output's name); output checks up front, in order, before any work."""
    inputs = {j.source.resolve() for j in jobs if j.source is not None}
    taken: set[Path] = set()
    runnable, job_options = [], []
    for job in jobs:
        if args.skip_existing and job.output is not None and job.output.is_file():
            continue  # written whole by an earlier run (outputs only ever appear complete)
        try:
            _check_target(job, inputs, taken, args.overwrite)
            job_options.append(options.with_format(_output_format(job.output, args.format)))
            runnable.append(job)
        except ValueError as exc:
            failures.append(str(exc) if job.name in str(exc) else f"{job.name}: {exc}")
    return runnable, job_options


def _run_photos(
    args: argparse.Namespace,
    jobs: list[Job],
    sources: list,
    job_options: list[CutoutOptions],
    failures: list[str],
) -> int:
    """Cut out and write every job; failures are added to ``failures``; returns the count done."""
    from tqdm import tqdm

    from personcut.cutout import cutout_many
    from personcut.files import remove_leftovers, write_atomic
    from personcut.segmenter import Segmenter, threads_per_worker

    workers = args.workers or max(1, min(os.cpu_count() or 1, MAX_WORKERS, len(jobs)))
    # Side by side, each photo's network gets its share of the cores; alone, it gets them all.
    threads = threads_per_worker(workers)
    segmenter = Segmenter(args.model, device=args.device, working_size=args.size, threads=threads)
    # What killed earlier runs left beside these outputs, one listing per folder.
    remove_leftovers([j.output for j in jobs if j.output is not None])
    ok = 0
    bar = tqdm(total=len(jobs), desc="remove", unit="img", disable=len(jobs) < 2 or args.quiet)
    results = cutout_many(
        segmenter,
        sources,
        job_options,
        max_pixels=args.max_pixels,
        batch_size=args.batch_size,
        workers=workers,
    )
    for i, result in results:
        job = jobs[i]
        bar.update()
        if isinstance(result, Exception):
            text = str(result)
            failures.append(text if job.name in text else f"{job.name}: {text}")
            continue
        try:
            if job.output is None:
                _write_stdout(result)
            else:
                job.output.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(job.output, result, clean=False)  # cleaned once, above
            ok += 1
        except OSError as exc:
            where = job.output or "standard output"
            failures.append(f"{job.name}: cannot write {where} ({exc.strerror or exc})")
    bar.close()
    return ok


def _write_stdout(data: bytes) -> None:
    """The output on standard output; a closed one or a reader gone (a broken pipe) is an
    OSError for the caller to report, not a traceback."""
    out = getattr(sys.stdout, "buffer", None)
    if out is None or out.closed:
        raise OSError(0, "standard output is closed")
    try:
        out.write(data)
        out.flush()
    except BrokenPipeError as exc:
        # Python would report the broken pipe again when it flushes at exit: point stdout at
        # /dev/null so that only our line is printed.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise OSError(exc.errno, "the reader closed the pipe early") from exc


def _report(ok: int, failures: list[str]) -> int:
    """One line per failed input, a count, and the exit code."""
    for f in failures:
        print(f"personcut remove: {f}", file=sys.stderr)
    if failures:
        print(f"personcut remove: {ok} done, {len(failures)} failed", file=sys.stderr)
        return 1
    return 0


def _remove_videos(args: argparse.Namespace, videos: list[str], options: CutoutOptions) -> int:
    """Clips go one by one through personcut.video; -o names the output (one clip) or a folder
    (several). Without -o: NAME.cutout.webm beside the clip (.mp4 when the result is opaque)."""
    from personcut.segmenter import Segmenter
    from personcut.video import VIDEO_WORKING_SIZE, remove_video

    if len(videos) != len(args.inputs):
        print("personcut remove: give clips and photos in separate runs", file=sys.stderr)
        return 2
    ext = ".mp4" if options.opaque else ".webm"
    out = Path(args.output) if args.output else None
    segmenter = Segmenter(
        args.model, device=args.device, working_size=args.size or VIDEO_WORKING_SIZE
    )
    failures, ok = [], 0
    for video in videos:
        src = Path(video)
        if out is None:
            dst = src.with_name(src.stem + ".cutout" + ext)
        elif len(videos) > 1:
            dst = out / (src.stem + ext)
        else:  # one clip: -o names its output; a folder ("frames" or "frames/") of PNG frames
            dst = out
        try:
            stats = remove_video(
                src,
                dst,
                segmenter=segmenter,
                options=options,
                smoothing=args.smoothing,
                overwrite=args.overwrite,
                progress=not args.quiet,
                max_pixels=args.max_pixels,
            )
            log.info("%s -> %s: %d frames, audio %s", src, dst, stats["frames"], stats["audio"])
            if not stats["complete"]:
                failures.append(f"{src}: {stats['problem']} ({dst})")
                continue
            ok += 1
        except (ValueError, OSError, ModuleNotFoundError) as exc:
            text = str(exc)
            failures.append(text if str(src) in text else f"{src}: {text}")
    return _report(ok, failures)


def _add_remove(sub) -> None:
    p = sub.add_parser(
        "remove",
        help="remove the background behind people",
        description="Cut the people out of photos. One input: -o names the output file; several "
        "(or a folder): -o names a folder. Without -o, writes NAME.cutout.png beside each input.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, or - (stdin)")
    p.add_argument("-o", "--output", help="output file (one input) or folder (several)")
    p.add_argument("-r", "--recursive", action="store_true", help="look into subfolders")
    p.add_argument(
        "--format",
        choices=["png", "webp", "jpeg", "jpg"],
        help="output format (default: from -o's extension, else png)",
    )
    p.add_argument("--mask", action="store_true", help="write the 8-bit mask instead")
    p.add_argument("--bg", metavar="COLOR", help="opaque background colour (name or #hex)")
    p.add_argument("--bg-image", metavar="PATH", help="background picture (scaled to cover)")
    p.add_argument(
        "--blur",
        type=float,
        default=0.0,
        metavar="RADIUS",
        help="blur the photo's own background (portrait style)",
    )
    p.add_argument("--crop", action="store_true", help="trim to the people plus a margin")
    p.add_argument(
        "--no-decontaminate",
        action="store_true",
        help="keep the photo's colours at the edges (default: the person's own colour)",
    )
    p.add_argument(
        "--quality",
        choices=["fast", "balanced", "best"],
        help="fast: one small pass; balanced (default): one pass and its mirror image; best: "
        "three sizes, each with its mirror image, averaged (about 3x the time)",
    )
    p.add_argument("--threshold", type=float, metavar="T", help="hard mask at probability T")
    p.add_argument(
        "--smoothing",
        type=float,
        default=0.6,
        metavar="S",
        help="clips: steady the matte of still people, 0 (off) to <1 (default 0.6)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument(
        "--skip-existing",
        action="store_true",
        help="leave photos whose output exists alone (rerun after an interrupted batch)",
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        default=100_000_000,
        help="refuse larger images (default 100 megapixels)",
    )
    p.add_argument(
        "--model",
        help="model file (.onnx, .pt, .safetensors) or a shipped "
        "model's name (classic: the paper's U-Net); default: the shipped model",
    )
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--size", type=int, help="working size (long side); default: the model's")
    p.add_argument("--batch-size", type=int, default=1, help="images per inference call")
    p.add_argument(
        "--workers",
        type=int,
        help="photos worked on at once, each on one core; default: one per core (at most "
        f"{MAX_WORKERS}) for several photos, and one photo on all cores alone",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_remove)


def _export(args: argparse.Namespace) -> int:
    from personcut.train.export import export_checkpoint

    try:
        info = export_checkpoint(args.checkpoint, args.output, fp16=args.fp16)
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"personcut export: {exc}", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {
                "output": str(args.output),
                "parity_max_abs_diff": info["onnx_parity_max_abs_diff"],
                "parameters": info["parameters"],
            }
        )
    )
    return 0


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX (with a parity check)")
    p.add_argument("checkpoint", type=Path, help="checkpoint .pt or .safetensors")
    p.add_argument("-o", "--output", type=Path, required=True, help="the .onnx file to write")
    p.add_argument("--fp16", action="store_true", help="store weights in float16")
    p.set_defaults(func=_export)


def _serve(args: argparse.Namespace) -> int:
    from personcut.segmenter import Segmenter, threads_per_worker
    from personcut.server import Settings, create_app, serve

    settings = Settings(
        max_upload_bytes=args.max_upload_mb * 1024 * 1024,
        max_pixels=args.max_pixels,
        queue_size=args.queue,
        timeout_s=args.timeout,
        read_timeout_s=args.read_timeout,
        idle_timeout_s=args.idle_timeout,
        min_body_rate=args.min_body_rate,
        max_connections=args.max_connections,
        api_key=args.api_key,
        max_inflight_bytes=args.max_inflight_mb * 1024 * 1024,
    )
    if args.workers:
        settings.workers = args.workers
    threads = threads_per_worker(settings.workers)  # each worker's network its own cores
    app = create_app(Segmenter(args.model, device=args.device, threads=threads), settings)
    serve(app, args.host, args.port, settings)
    return 0


def _batch(args: argparse.Namespace) -> int:
    from personcut.batch import run
    from personcut.cutout import OptionError

    options = {"mask": args.mask, "bg": args.bg, "blur": args.blur, "format": args.format or "png"}
    if args.quality:
        options["quality"] = args.quality
    try:
        counts = run(
            args.input,
            args.output,
            address=args.address,
            model=args.model,
            options=options,
            actors=args.actors,
            batch_size=args.batch_size,
            max_pixels=args.max_pixels,
            progress=not args.quiet,
        )
    except ModuleNotFoundError as exc:
        print(f'personcut batch: {exc}; pip install "personcut[ray]"', file=sys.stderr)
        return 2
    except (OptionError, ValueError, OSError) as exc:
        print(f"personcut batch: {exc}", file=sys.stderr)
        return 2
    print(
        f"personcut batch: {counts['done']} done, {counts['failed']} failed, "
        f"{counts['skipped']} skipped (output exists); manifest {args.output}/manifest.parquet",
        file=sys.stderr,
    )
    return 1 if counts["failed"] else 0


def _add_batch(sub) -> None:
    p = sub.add_parser(
        "batch",
        help="cut out many photos on Ray Data (needs the [ray] extra)",
        description="Cut out every photo of INPUT (a folder, a glob, or a .txt/.parquet list of "
        "paths) into OUTPUT with the same relative names, on a local Ray or a cluster; skips "
        "photos whose output exists; writes OUTPUT/manifest.parquet.",
    )
    p.add_argument("input", help="folder, glob, or .txt / .parquet list of paths")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else local)")
    p.add_argument("--actors", type=int, help="model copies (default: one per CPU)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--model", help="model file or shipped name; default: the shipped model")
    p.add_argument("--mask", action="store_true", help="write the 8-bit mask instead")
    p.add_argument("--bg", metavar="COLOR", help="opaque background colour")
    p.add_argument("--blur", type=float, default=0.0, help="blur the background by this radius")
    p.add_argument("--format", choices=["png", "webp", "jpeg"], help="output format (png)")
    p.add_argument("--quality", choices=["fast", "balanced", "best"])
    p.add_argument("--max-pixels", type=int, default=100_000_000)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_batch)


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="HTTP API and web page (needs the [serve] extra)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--model", help="model file or shipped name (classic); default: shipped")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--workers", type=int, help="cut-outs at once (default: 2, or 1 on 1 core)")
    p.add_argument("--queue", type=int, default=64, help="requests that may wait (then 503)")
    p.add_argument("--timeout", type=float, default=60.0, help="per-request limit in seconds")
    p.add_argument(
        "--read-timeout",
        type=float,
        default=15.0,
        help="seconds for a request's whole head, and the longest stall in a body (then dropped)",
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=5.0,
        help="seconds a kept-alive connection may wait for its next request (then closed)",
    )
    p.add_argument(
        "--min-body-rate",
        type=float,
        default=240.0,
        help="bytes a second an upload must average after a 5 s grace (then 408)",
    )
    p.add_argument("--max-connections", type=int, default=128, help="open at once (then 503)")
    p.add_argument(
        "--max-inflight-mb",
        type=int,
        default=256,
        help="upload megabytes held by all requests together (then 503)",
    )
    p.add_argument("--max-upload-mb", type=int, default=20)
    p.add_argument("--max-pixels", type=int, default=40_000_000)
    p.add_argument(
        "--api-key", default=None, help="require this key on /api/remove (or set PERSONCUT_API_KEY)"
    )
    p.set_defaults(func=_serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="personcut", description="Remove the background behind people in photos."
    )
    parser.add_argument("--version", action="version", version=f"personcut {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="say more (e.g. which runtime and device run the model)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


_SUBCOMMANDS = [_add_remove, _add_batch, _add_train, _add_evaluate, _add_export, _add_serve]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        # remove stays quiet unless asked; training reports its progress.
        level=logging.DEBUG
        if args.verbose
        else (logging.WARNING if args.command == "remove" else logging.INFO),
        format="%(levelname)s: %(message)s",
    )
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError, OSError) as exc:
        # Config typos, missing files, malformed data: one clear line, non-zero exit.
        print(f"personcut {args.command}: error: {exc}", file=sys.stderr)
        return 2
