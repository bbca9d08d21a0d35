"""Cut the people out of video clips, frame by frame, through PyAV (FFmpeg inside its wheel).

    personcut.remove_video("talk.mp4", "talk.webm")                # transparent VP9
    personcut.remove_video("talk.mp4", "talk.mp4", bg="#00b140")   # H.264 over a colour

The output's kind follows its name: ``.webm`` (VP9, with alpha when transparent), ``.mov``
(ProRes 4444 with alpha, or ProRes 422 HQ when opaque), ``.mp4``/``.m4v``/``.mkv`` (H.264, opaque
only), ``.gif`` (opaque only), or a folder (one PNG per frame, RGBA or opaque). Audio is copied
where the container takes its codec, otherwise re-encoded (Opus into WebM, AAC elsewhere); frame
timing (also variable frame rates), size and the rotation tag are kept. Frames stream through:
memory does not grow with the clip's length. Needs ``pip install "personcut[video]"``.
"""

from __future__ import annotations

import logging
import os
import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from personcut.cutout import CutoutOptions, MaskPredictor, OptionError, compose_pixels
from personcut.files import atomic_path, remove_leftovers, replaceable
from personcut.images import DEFAULT_MAX_PIXELS, encode_pixels

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".webm", ".mkv", ".m4v", ".avi")
"""Inputs treated as clips by ``personcut remove`` (a .gif input stays an image)."""


VIDEO_WORKING_SIZE = 256
"""The network's long side for clips when the caller does not choose one. The shipped model
scores the same on persons-val at 256 as at the photo default 320 (person IoU 0.926 and 0.925,
`personcut evaluate --size`), and 256 is what lets 720p run at 15 frames per second on two cores
(benchmarks/RESULTS.md)."""


class VideoError(ValueError):
    """A clip that cannot be read or written; the message names the file and the reason."""


@dataclass(frozen=True)
class _Target:
    container: str | None  # None: a folder of PNG frames
    codec: str
    pix_fmt: str
    audio_copy: tuple[str, ...]  # audio codecs the container takes as they are
    audio_codec: str | None  # what other audio becomes (None: dropped)
    encoder_options: dict[str, str]


def _target(dst: Path, transparent: bool) -> _Target:
    suffix = dst.suffix.lower()
    if suffix == "" or dst.is_dir():
        return _Target(None, "png", "rgba" if transparent else "rgb24", (), None, {})
    if suffix == ".webm":
        # realtime deadline and cpu-used 8: VP9's fast settings, for a CPU that must keep up
        opts = {
            "deadline": "realtime",
            "cpu-used": "8",
            "row-mt": "1",
            "crf": "32",
            "b": "0",
            "tile-columns": "2",
            "threads": str(min(8, os.cpu_count() or 1)),
        }
        return _Target(
            "webm",
            "libvpx-vp9",
            "yuva420p" if transparent else "yuv420p",
            ("opus", "vorbis"),
            "libopus",
            opts,
        )
    if suffix == ".mov":
        return _Target(
            "mov",
            "prores_ks",
            "yuva444p10le" if transparent else "yuv422p10le",
            ("aac", "mp3", "alac", "pcm_s16le", "pcm_s24le"),
            "aac",
            {"profile": "4" if transparent else "3"},
        )  # 4444 / 422 HQ
    if suffix in (".mp4", ".m4v", ".mkv"):
        if transparent:
            raise OptionError(
                f"{dst}: {suffix} (H.264) cannot hold transparency; write .webm or "
                ".mov, or give a background (bg, bg_image or blur) or mask"
            )
        copy = (
            ("aac", "mp3", "opus", "flac", "vorbis", "ac3") if suffix == ".mkv" else ("aac", "mp3")
        )
        return _Target(
            "matroska" if suffix == ".mkv" else "mp4",
            "libx264",
            "yuv420p",
            copy,
            "aac",
            {"preset": "veryfast", "crf": "20"},
        )
    if suffix == ".gif":
        if transparent:
            raise OptionError(
                f"{dst}: GIF output needs a background (bg, bg_image or blur) "
                "or mask; write .webm or .mov for transparency"
            )
        return _Target("gif", "gif", "rgb8", (), None, {})
    raise OptionError(
        f"{dst}: unknown video output; use .webm, .mov, .mp4, .mkv, .gif or a folder for PNG frames"
    )


class TemporalFilter:
    """Steadies the alpha of a still person without trailing ghosts behind a moving one.

    Each pixel is blended with the previous frame's by ``strength`` where it changed little,
    and follows the new frame where it changed by ``motion`` or more, linearly between: mask
    noise on a still scene is mostly small changes, a person moving is large ones.
    """

    def __init__(self, strength: float = 0.6, motion: float = 0.3) -> None:
        if not 0 <= strength < 1:
            raise OptionError(f"smoothing must be in [0, 1), got {strength}")
        self.strength, self.motion = strength, motion
        self.previous: np.ndarray | None = None

    def __call__(self, alpha: np.ndarray) -> np.ndarray:
        if self.previous is None or self.previous.shape != alpha.shape or not self.strength:
            self.previous = alpha
            return alpha
        change = np.abs(alpha - self.previous)
        weight = self.strength * np.clip(1.0 - change / self.motion, 0.0, 1.0)
        out = (weight * self.previous + (1.0 - weight) * alpha).astype(np.float32)
        self.previous = out
        return out


def flicker(alphas: list[np.ndarray]) -> float:
    """Mean absolute change of alpha between consecutive frames (0 for a perfectly steady
    matte); measured on a clip whose true mask does not change, it is all flicker."""
    if len(alphas) < 2:
        return 0.0
    return float(
        np.mean([np.abs(a - b).mean() for a, b in zip(alphas[1:], alphas[:-1], strict=True)])
    )


def _import_av():
    try:
        import av
    except ImportError as exc:
        raise ModuleNotFoundError('video needs PyAV: pip install "personcut[video]"') from exc
    return av


def remove_video(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    segmenter: MaskPredictor | None = None,
    mask: bool = False,
    bg: str | None = None,
    bg_image: Any = None,
    blur: float = 0.0,
    threshold: float | None = None,
    options: CutoutOptions | None = None,
    smoothing: float = 0.6,
    overwrite: bool = False,
    progress: bool = True,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> dict[str, Any]:
    """Cut the people out of the clip ``src`` into ``dst`` (see the module's docstring for the
    kinds of output). ``src`` is never modified; ``dst`` appears only when complete.

    The look is given either by the keywords of :func:`personcut.remove` (mask, bg, bg_image,
    blur, threshold) or as one ready :class:`~personcut.cutout.CutoutOptions` (``options``,
    which then wins; its format is ignored, and crop is refused: frames keep their size).

    Each frame is one pass of ``segmenter`` at its working size (default VIDEO_WORKING_SIZE), no
    mirror pass whatever its quality mode: clips keep their own setting, for their frame rate.

    Frames over ``max_pixels`` are refused before any is decoded (a small file can hold huge
    frames). A clip that ends early (truncated, or garbage inside) is written with the frames
    that could be decoded, and ``complete`` in the result is False (the CLI reports it).

    Returns frame count, size, frame rate, audio handling, completeness and the seconds spent.
    """
    import time

    from tqdm import tqdm

    av = _import_av()
    src, dst = Path(src), Path(dst)
    if options is None:
        options = CutoutOptions(mask=mask, bg=bg, bg_image=bg_image, blur=blur, threshold=threshold)
    if options.crop:
        raise OptionError("crop is for photos: a clip's frames must all keep the clip's size")
    target = _target(dst, transparent=not options.opaque)
    smoother = TemporalFilter(smoothing)
    _check_paths(src, dst, target, overwrite)
    try:
        source = av.open(str(src))
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoError(f"{src}: not a video FFmpeg can read ({exc})") from exc
    start = time.perf_counter()
    with source:
        vin = _video_stream(source, src, target, max_pixels)
        width, height = vin.codec_context.width, vin.codec_context.height
        ain = source.streams.audio[0] if source.streams.audio and target.container else None
        if segmenter is None:
            from personcut.segmenter import Segmenter

            segmenter = Segmenter(working_size=VIDEO_WORKING_SIZE)
        bar = tqdm(total=vin.frames or None, unit="frame", desc=src.name, disable=not progress)
        # Written beside dst under a temporary name, renamed over it only when complete; what
        # a killed earlier run left there is removed first.
        remove_leftovers([dst])
        with atomic_path(dst, folder=target.container is None) as work:
            stats = _transcode(
                av, source, vin, ain, work, target, segmenter, options, smoother, bar
            )
            if stats["frames"] == 0:
                raise VideoError(f"{src}: no frame could be decoded")
    if not stats["complete"]:
        log.warning("%s: %s", src, stats["problem"])
    stats.update(width=width, height=height, seconds=time.perf_counter() - start, output=str(dst))
    return stats


def _check_paths(src: Path, dst: Path, target: _Target, overwrite: bool) -> None:
    """Refuse before any work: a missing input, an output that would replace the input, or one
    that is not ours to replace."""
    if not src.is_file():
        raise VideoError(f"{src}: no such file")
    if dst.is_symlink():
        raise VideoError(f"{src}: output {dst} is a symbolic link; refusing to replace it")
    if target.container is None and dst.is_dir():
        # A frame folder is replaced only when it holds nothing but frames: --overwrite must
        # never delete a user's other files.
        others = [f.name for f in dst.iterdir() if not re.fullmatch(r"frame_\d+\.png", f.name)]
        if others:
            raise VideoError(
                f"{src}: output folder {dst} holds other files ({others[0]}, ...); "
                "give an empty or new folder"
            )
        if any(dst.iterdir()) and not overwrite:
            raise VideoError(f"{src}: output {dst} holds frames (use --overwrite to replace them)")
    elif replaceable(dst):
        raise VideoError(f"{src}: output {dst} {replaceable(dst)}; refusing to replace it")
    elif dst.exists() and not overwrite:
        raise VideoError(f"{src}: output {dst} exists (use --overwrite to replace it)")
    if src.resolve() == dst.resolve():
        raise VideoError(f"{src}: output is the input; refusing to overwrite it")


def _video_stream(source, src: Path, target: _Target, max_pixels: int | None):
    """The clip's first video stream, checked against the pixel limit and what the output can
    encode."""
    if not source.streams.video:
        raise VideoError(f"{src}: holds no video stream")
    vin = source.streams.video[0]
    vin.thread_type = "AUTO"
    width, height = vin.codec_context.width, vin.codec_context.height
    if max_pixels and width * height > max_pixels:
        raise VideoError(
            f"{src}: frames of {width}x{height} are {width * height / 1e6:.3g} megapixels, above "
            f"the limit of {max_pixels / 1e6:.3g}; raise it with --max-pixels if this is intended"
        )
    if target.pix_fmt.endswith("420p") and (width % 2 or height % 2):
        raise VideoError(
            f"{src}: {width}x{height} has an odd side, which {target.codec} "
            "cannot encode; write .mov (ProRes) or a folder of PNG frames"
        )
    return vin


def _transcode(
    av,
    source,
    vin,
    ain,
    work: Path,
    target: _Target,
    segmenter: MaskPredictor,
    options: CutoutOptions,
    smoother: TemporalFilter,
    bar,
) -> dict[str, Any]:
    rate = vin.average_rate or vin.guessed_rate or 25
    frames, last_time = 0, None
    output = vout = aout = resampler = audio_mode = None
    if target.container is not None:
        output, vout = _open_output(av, work, target, vin, rate)
        if ain is not None:
            aout, resampler, audio_mode = _audio_stream(av, output, ain, target)
    streams = [vin] + ([ain] if ain is not None and output is not None else [])
    # One frame's colour conversion and encoding run in a worker thread while the next frame is
    # segmented; packets are muxed here, in order, so the container is only touched by one thread.
    pool = ThreadPoolExecutor(max_workers=1)
    pending: Future | None = None

    def collect() -> None:
        nonlocal pending
        if pending is not None:
            for out_packet in pending.result():
                output.mux(out_packet)
            pending = None

    try:
        for packet in source.demux(*streams):
            if packet.stream is vin:
                for frame in _decode(packet, source):
                    if frames == 0 and output is not None and frame.rotation:
                        # The display rotation is a header field: set before the first packet.
                        output.streams.video[0].set_display_rotation(frame.rotation)
                    if frame.time is not None:
                        last_time = float(frame.time)
                    rgb = frame.to_ndarray(format="rgb24")
                    alpha = smoother(segmenter.predict_rgb([rgb], quality="frame")[0])  # one pass
                    if output is not None:
                        collect()
                    elif pending is not None:
                        pending.result()
                    pending = pool.submit(
                        _encode, av, rgb, alpha, options, frame, output, target, work, frames
                    )
                    frames += 1
                    bar.update()
            elif aout is not None:
                if resampler is None:
                    if packet.dts is None:
                        continue
                    packet.stream = aout
                    output.mux(packet)
                else:
                    for af in packet.decode():
                        for rf in resampler.resample(af):
                            output.mux(aout.encode(rf))
        if output is not None:
            collect()
            output.mux(vout.encode(None))
            if resampler is not None:  # the re-encoded audio's tail: what the resampler and
                for rf in resampler.resample(None):  # the encoder still hold
                    output.mux(aout.encode(rf))
                output.mux(aout.encode(None))
        elif pending is not None:
            pending.result()
    finally:
        pool.shutdown(wait=True)
        bar.close()
        if output is not None:
            output.close()
    stats = {"frames": frames, "fps": float(rate), "audio": audio_mode or "none"}
    return {**stats, **_completeness(source, vin, frames, last_time)}


def _completeness(source, vin, frames: int, last_time: float | None) -> dict[str, Any]:
    """Whether the frames decoded cover the clip: its declared frame count, else its declared
    duration (a clip cut short or with garbage inside decodes fewer without an error)."""
    declared = vin.frames or 0
    if declared and frames < declared:
        return {
            "complete": False,
            "problem": f"truncated or corrupt: {frames} of {declared} "
            "frames could be decoded; the output holds those",
        }
    duration = float(vin.duration * vin.time_base) if vin.duration else None
    if duration is None and source.duration:
        duration = source.duration / 1_000_000  # microseconds
    rate = float(vin.average_rate or vin.guessed_rate or 25)
    if duration and last_time is not None and last_time + 2 / rate < 0.95 * duration:
        return {
            "complete": False,
            "problem": f"truncated or corrupt: frames end at "
            f"{last_time:.2f} s of {duration:.2f} s; the output holds those",
        }
    return {"complete": True}


def _open_output(av, work: Path, target: _Target, vin, rate):
    """The output container and its video stream, frame size and timing as the source's."""
    output = av.open(str(work), "w", format=target.container)
    vout = output.add_stream(target.codec, rate=rate, options=target.encoder_options)
    vout.width, vout.height = vin.codec_context.width, vin.codec_context.height
    vout.pix_fmt = target.pix_fmt
    # The source's timestamps are kept, in its time base, also for the encoder (whose own
    # default, 1/rate, would round variable frame rates to the nominal rate's grid).
    vout.time_base = vout.codec_context.time_base = vin.time_base
    return output, vout


def _audio_stream(av, output, ain, target: _Target):
    """(output audio stream, resampler or None when copied, what was done) for the source's
    audio; (None, None, None) when the container takes no audio."""
    if ain.codec_context.name in target.audio_copy:
        return output.add_stream_from_template(ain), None, "copied"
    if not target.audio_codec:
        return None, None, None
    rate_out = 48000 if target.audio_codec == "libopus" else (ain.rate or 48000)
    aout = output.add_stream(target.audio_codec, rate=rate_out)
    resampler = av.AudioResampler(format=aout.format.name, layout="stereo", rate=rate_out)
    return aout, resampler, f"re-encoded to {target.audio_codec}"


def _decode(packet, source):
    try:
        return packet.decode()
    except Exception as exc:  # noqa: BLE001 - FFmpeg's decode errors have many classes
        raise VideoError(f"{source.name}: cannot be decoded, truncated or corrupt ({exc})") from exc


def _encode(
    av, rgb, alpha, options: CutoutOptions, frame, output, target: _Target, work: Path, index: int
):
    """Compose and encode one output picture; returns the packets to mux (none for PNG frames,
    which are written here)."""
    pixels = compose_pixels(rgb, alpha, options)
    if output is None:  # a folder of PNG frames, encoded as photos are
        (work / f"frame_{index:06d}.png").write_bytes(encode_pixels(pixels, "PNG"))
        return []
    fmt = "gray" if pixels.ndim == 2 else ("rgba" if pixels.shape[2] == 4 else "rgb24")
    out = av.VideoFrame.from_ndarray(pixels, format=fmt)
    out.pts, out.time_base = frame.pts, frame.time_base
    return output.streams.video[0].encode(out.reformat(format=target.pix_fmt))
