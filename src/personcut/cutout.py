"""The cut-out job in one place: options, decode, predict, refine, compose, encode.

``remove()``, the command line, the HTTP service and the benchmarks all go through here, so an
option means the same thing everywhere and its checks and messages are written once.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from personcut.imaging import (
    DEFAULT_MAX_PIXELS,
    ImageInput,
    array_image,
    compose_array,
    crop_box,
    encode_pixels,
    load_image,
    parse_color,
    to_rgb,
)

MAX_BLUR = 200.0
FORMATS = ("PNG", "WEBP", "JPEG")


class OptionError(ValueError):
    """An option that cannot be used; the message names it and how to fix it."""


@dataclass(frozen=True)
class CutoutOptions:
    """What to make of the people found in a photo. Checked when built."""

    mask: bool = False
    """The 8-bit mask instead of a cutout."""
    bg: str | None = None
    """Put the people over this colour (name or #hex); the result is opaque."""
    bg_image: ImageInput | None = None
    """Put the people over this picture, scaled to cover."""
    blur: float = 0.0
    """Blur the photo's own background by this radius (portrait style), 0 to MAX_BLUR."""
    crop: bool = False
    """Trim to the people plus a margin."""
    threshold: float | None = None
    """Make the mask hard at this probability (0 to 1)."""
    format: str = "PNG"
    """PNG, WEBP or JPEG (jpg accepted); JPEG needs an opaque result."""

    def __post_init__(self) -> None:
        fmt = str(self.format).upper().replace("JPG", "JPEG")
        object.__setattr__(self, "format", fmt)
        if fmt not in FORMATS:
            raise OptionError(f"format must be png, webp or jpeg, got {self.format!r}")
        blur = float(self.blur)
        if not (math.isfinite(blur) and 0 <= blur <= MAX_BLUR):
            raise OptionError(f"blur must be between 0 and {MAX_BLUR:g}, got {self.blur}")
        object.__setattr__(self, "blur", blur)
        if self.threshold is not None:
            t = float(self.threshold)
            if not (math.isfinite(t) and 0 <= t <= 1):
                raise OptionError(f"threshold must be between 0 and 1, got {self.threshold}")
            object.__setattr__(self, "threshold", t)
        if self.bg is not None:
            try:
                parse_color(self.bg)
            except ValueError as exc:
                raise OptionError(f"bg {self.bg!r} is not a colour name or #rrggbb") from exc
        if fmt == "JPEG" and not self.opaque:
            raise OptionError(
                "JPEG cannot hold transparency; add a background (bg, bg_image "
                "or blur), ask for the mask, or write PNG/WebP"
            )

    @property
    def opaque(self) -> bool:
        """Whether the result has no transparency."""
        return bool(self.mask or self.bg or self.bg_image is not None or self.blur)

    def with_format(self, fmt: str) -> CutoutOptions:
        return replace(self, format=fmt)


def compose_pixels(rgb: np.ndarray, alpha: np.ndarray, options: CutoutOptions) -> np.ndarray:
    """The output as a uint8 array (HxW mask, HxWx4 RGBA or HxWx3 RGB) for an HxWx3 photo and
    its alpha: threshold, crop, compose. Video frames use this directly (no PIL round trip)."""
    if options.threshold is not None:
        alpha = (alpha >= options.threshold).astype(np.float32)
    if options.crop:
        box = crop_box(alpha)
        if box is not None:
            left, top, right, bottom = box
            rgb, alpha = rgb[top:bottom, left:right], alpha[top:bottom, left:right]
    return compose_array(
        rgb,
        alpha,
        mask_only=options.mask,
        bg=options.bg,
        bg_image=options.bg_image,
        blur=options.blur,
    )


def compose_cutout(
    image: Image.Image, rgb: np.ndarray, alpha: np.ndarray, options: CutoutOptions
) -> Image.Image:
    """The output picture for a decoded upright photo (``image``, its HxWx3 ``rgb``) and its
    alpha. The photo's ICC profile is kept."""
    out = array_image(compose_pixels(rgb, alpha, options))
    if "icc_profile" in image.info and out.mode != "L":
        out.info["icc_profile"] = image.info["icc_profile"]
    return out


def cutout_image(
    segmenter,
    image: ImageInput,
    options: CutoutOptions | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Decode ``image`` (never modified), find the people, compose: a PIL image."""
    options = options or CutoutOptions()
    decoded = load_image(image, max_pixels)
    rgb = to_rgb(decoded)
    alpha = segmenter.predict_rgb([rgb])[0]
    return compose_cutout(decoded, rgb, alpha, options)


def encode_cutout(
    image: Image.Image, rgb: np.ndarray, alpha: np.ndarray, options: CutoutOptions
) -> bytes:
    """:func:`compose_cutout`, encoded in ``options.format``, from arrays to bytes without a PIL
    image in between (at 12 MP each full-size copy costs 15-40 ms)."""
    pixels = compose_pixels(rgb, alpha, options)
    return encode_pixels(pixels, options.format, image.info.get("icc_profile"))


def cutout(
    segmenter,
    image: ImageInput,
    options: CutoutOptions | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> bytes:
    """The whole job for one photo: its encoded output in ``options.format``."""
    options = options or CutoutOptions()
    decoded = load_image(image, max_pixels)
    rgb = to_rgb(decoded)
    return encode_cutout(decoded, rgb, segmenter.predict_rgb([rgb])[0], options)


def cutout_many(
    segmenter,
    images: Sequence[ImageInput],
    options: CutoutOptions | Sequence[CutoutOptions],
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    batch_size: int = 1,
    workers: int = 1,
) -> Iterator[tuple[int, bytes | Exception]]:
    """Cut out many photos; yields ``(index, encoded bytes or the error)`` in input order.

    ``workers`` batches of ``batch_size`` photos are worked on at once, each in its own thread
    from decoding to encoding (ONNX Runtime, Pillow, NumPy and fpng release the GIL), a bounded
    window ahead so memory stays flat over big folders. Whole photos side by side keep every core
    busy with no hand-over between stages; give the segmenter one thread per worker
    (``Segmenter(threads=1)``) so that the network's own threads do not fight the other worker.
    A photo that fails gives its exception and the others go on. ``options`` may differ per
    photo (e.g. the output format from each output's name).
    """
    per_image = [options] * len(images) if isinstance(options, CutoutOptions) else list(options)
    if len(per_image) != len(images):
        raise ValueError("give one CutoutOptions, or one per image")
    if batch_size < 1 or workers < 1:
        raise ValueError("batch_size and workers must be at least 1")

    def run(indices: range) -> list[tuple[int, bytes | Exception]]:
        done: list[tuple[int, bytes | Exception]] = []
        decoded = []
        for i in indices:
            try:
                image = load_image(images[i], max_pixels)
                decoded.append((i, image, to_rgb(image)))
            except Exception as exc:  # noqa: BLE001 - reported per photo, the rest go on
                done.append((i, exc))
        try:
            alphas = segmenter.predict_rgb([d[2] for d in decoded]) if decoded else []
        except Exception as exc:  # noqa: BLE001
            alphas = [RuntimeError(f"inference failed ({exc})")] * len(decoded)
        for (i, image, rgb), alpha in zip(decoded, alphas, strict=True):
            if isinstance(alpha, Exception):
                done.append((i, alpha))
                continue
            try:
                done.append((i, encode_cutout(image, rgb, alpha, per_image[i])))
            except Exception as exc:  # noqa: BLE001
                done.append((i, exc))
        return sorted(done, key=lambda d: d[0])

    batches = [
        range(i, min(i + batch_size, len(images))) for i in range(0, len(images), batch_size)
    ]
    if workers == 1:  # no threads to start or to hand over to
        for indices in batches:
            yield from run(indices)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cutout") as pool:
        pending: deque[Future] = deque()
        for indices in batches:
            pending.append(pool.submit(run, indices))
            if len(pending) > 2 * workers:  # a window ahead, not the whole folder in memory
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
