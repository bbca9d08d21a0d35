"""The cut-out job in one place: options, decode, predict, compose, encode.

``remove()``, the command line, the HTTP service, video and the benchmarks all go through here, so
an option means the same thing everywhere and its checks and messages are written once. One
step, :func:`cut_photos`, decodes and predicts; :func:`cutout_image` (a PIL image),
:func:`cutout` (encoded bytes), :func:`cutout_many` (a folder, in threads) and
:mod:`personcut.batch` (Ray Data) are shapes over it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

import numpy as np
from PIL import Image

from personcut.compose import (
    RGB,
    Background,
    compose_array,
    crop_box,
    decontaminate,
    parse_color,
)
from personcut.images import (
    DEFAULT_MAX_PIXELS,
    ImageError,
    ImageInput,
    array_image,
    encode_pixels,
    load_image,
    to_rgb,
)
from personcut.segmenter import QUALITIES

if TYPE_CHECKING:
    from personcut.segmenter import Segmenter

MAX_BLUR = 200.0
FORMATS = ("PNG", "WEBP", "JPEG")


class MaskPredictor(Protocol):
    """What the cut-out job needs of a model (:class:`~personcut.segmenter.Segmenter` is one).
    ``quality`` is passed only when an option asks for one."""

    def predict_rgb(self, rgbs: list[np.ndarray], **kwargs) -> list[np.ndarray]:
        """Person alpha (HxW float32 in [0, 1]) for each HxWx3 uint8 photo, at its size."""
        ...


class OptionError(ValueError):
    """An option that cannot be used; the message names it and how to fix it."""


@dataclass(frozen=True)
class CutoutOptions:
    """What to make of the people found in a photo. Checked when built, the one place options
    are checked for the CLI, the Python API, the HTTP service and video; the background colour
    is parsed and the background picture decoded here, once."""

    mask: bool = False
    """The 8-bit mask instead of a cutout."""
    bg: str | None = None
    """Put the people over this colour (name or #hex); the result is opaque."""
    bg_image: Background | ImageInput | None = None
    """Put the people over this picture, scaled to cover (decoded when the options are built)."""
    blur: float = 0.0
    """Blur the photo's own background by this radius (portrait style), 0 to MAX_BLUR."""
    crop: bool = False
    """Trim to the people plus a margin."""
    threshold: float | None = None
    """Make the mask hard at this probability (0 to 1)."""
    format: str = "PNG"
    """PNG, WEBP or JPEG (jpg accepted); JPEG needs an opaque result."""
    quality: str | None = None
    """fast, balanced or best (see segmenter.QUALITIES); None: the segmenter's own."""
    decontaminate: bool = True
    """Give partly transparent pixels the person's own colour, not the photo's mix with the
    old background (compose.decontaminate); False keeps the photo's colours."""
    color: RGB | None = field(init=False, default=None, repr=False, compare=False)
    """``bg`` parsed."""

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
                object.__setattr__(self, "color", parse_color(self.bg))
            except ValueError as exc:
                raise OptionError(f"bg {self.bg!r} is not a colour name or #rrggbb") from exc
        if self.bg_image is not None and not isinstance(self.bg_image, Background):
            try:
                object.__setattr__(self, "bg_image", Background(self.bg_image))
            except ImageError as exc:
                raise OptionError(str(exc)) from exc
        if self.quality is not None and self.quality not in QUALITIES:
            raise OptionError(
                f"quality must be one of {', '.join(QUALITIES)}, got {self.quality!r}"
            )
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
    its alpha: threshold, the person's own colour at soft edges, crop, compose. Video frames use
    this directly (no PIL round trip)."""
    if options.threshold is not None:
        alpha = (alpha >= options.threshold).astype(np.float32)
    # On the whole photo, before any crop, so that a crop shows the very pixels of the whole.
    fore = decontaminate(rgb, alpha) if options.decontaminate and not options.mask else rgb
    if options.crop:
        box = crop_box(alpha)
        if box is not None:
            left, top, right, bottom = box
            window = (slice(top, bottom), slice(left, right))
            rgb, fore, alpha = rgb[window], fore[window], alpha[window]
    return compose_array(
        fore,
        alpha,
        mask_only=options.mask,
        bg=options.color,
        bg_image=options.bg_image,
        blur=options.blur,
        photo=rgb,
    )


@dataclass
class Cut:
    """A decoded upright photo (its PIL image, for the ICC profile, and its RGB pixels) and the
    alpha found for it."""

    image: Image.Image
    rgb: np.ndarray
    alpha: np.ndarray

    def picture(self, options: CutoutOptions) -> Image.Image:
        """The output as a PIL image; the photo's ICC profile is kept."""
        out = array_image(compose_pixels(self.rgb, self.alpha, options))
        if "icc_profile" in self.image.info and out.mode != "L":
            out.info["icc_profile"] = self.image.info["icc_profile"]
        return out

    def encoded(self, options: CutoutOptions) -> bytes:
        """The output encoded in ``options.format``, from arrays to bytes without a PIL image in
        between (at 12 MP each full-size copy costs 15-40 ms)."""
        pixels = compose_pixels(self.rgb, self.alpha, options)
        return encode_pixels(pixels, options.format, self.image.info.get("icc_profile"))


def cut_photos(
    segmenter: MaskPredictor,
    images: Sequence[ImageInput],
    max_pixels: int | None,
    quality: str | None = None,
) -> list[Cut | Exception]:
    """Decode each image and find its people in one batch: the one decode -> predict step of
    every entry point. A photo that cannot be decoded gives its error; the others go on."""
    decoded: list[tuple[int, Image.Image, np.ndarray]] = []
    out: list[Cut | Exception] = [RuntimeError("not run")] * len(images)
    for i, source in enumerate(images):
        try:
            image = load_image(source, max_pixels)
            decoded.append((i, image, to_rgb(image)))
        except Exception as exc:  # noqa: BLE001 - reported per photo, the rest go on
            out[i] = exc
    if not decoded:
        return out
    try:
        extra = {} if quality is None else {"quality": quality}
        alphas = segmenter.predict_rgb([rgb for _, _, rgb in decoded], **extra)
    except Exception as exc:  # noqa: BLE001
        for i, _, _ in decoded:
            out[i] = RuntimeError(f"inference failed ({exc})")
        return out
    for (i, image, rgb), alpha in zip(decoded, alphas, strict=True):
        out[i] = Cut(image, rgb, alpha)
    return out


def _one(
    segmenter: MaskPredictor, image: ImageInput, max_pixels: int | None, quality: str | None
) -> Cut:
    (result,) = cut_photos(segmenter, [image], max_pixels, quality)
    if isinstance(result, Exception):
        raise result
    return result


def cutout_image(
    segmenter: MaskPredictor,
    image: ImageInput,
    options: CutoutOptions | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Decode ``image`` (never modified), find the people, compose: a PIL image."""
    options = options or CutoutOptions()
    return _one(segmenter, image, max_pixels, options.quality).picture(options)


def cutout(
    segmenter: MaskPredictor,
    image: ImageInput,
    options: CutoutOptions | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> bytes:
    """The whole job for one photo: its encoded output in ``options.format``."""
    options = options or CutoutOptions()
    return _one(segmenter, image, max_pixels, options.quality).encoded(options)


def cutout_many(
    segmenter: MaskPredictor,
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
        quality = per_image[indices[0]].quality  # one mode a batch (the CLI gives one for all)
        results = cut_photos(segmenter, [images[i] for i in indices], max_pixels, quality)
        for i, result in zip(indices, results, strict=True):
            if isinstance(result, Cut):
                try:
                    result = result.encoded(per_image[i])
                except Exception as exc:  # noqa: BLE001
                    result = exc
            done.append((i, result))
        return done

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


_DEFAULT: Segmenter | None = None


def default_segmenter() -> Segmenter:
    """The shipped model, loaded at the first call and kept."""
    global _DEFAULT
    if _DEFAULT is None:
        from personcut.segmenter import Segmenter

        _DEFAULT = Segmenter()
    return _DEFAULT


def remove(
    image: ImageInput,
    *,
    mask: bool = False,
    bg: str | None = None,
    bg_image: ImageInput | None = None,
    blur: float = 0.0,
    crop: bool = False,
    threshold: float | None = None,
    quality: str | None = None,
    decontaminate: bool = True,
    segmenter: MaskPredictor | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Remove the background behind the people in ``image``.

    Args:
        image: a path, bytes, PIL image or NumPy array (HxW, HxWx3 or HxWx4); never modified.
        mask: return the 8-bit mask ("L") instead of a cutout.
        bg: put the people over this colour (name or #hex); the result is opaque RGB.
        bg_image: put the people over this picture, scaled to cover.
        blur: blur the photo's own background by this radius (portrait style).
        crop: trim to the people plus a margin.
        threshold: make the mask hard at this probability.
        quality: "fast", "balanced" (the default) or "best" (several passes averaged).
        decontaminate: the person's own colour in partly transparent pixels (False: the
            photo's colours, mixed with the old background).
        segmenter: the model to use; the shipped model by default.
        max_pixels: refuse larger images (decompression bombs); None for no limit.

    Returns:
        An RGBA cutout by default; "L" with ``mask``; RGB with a background. Same size and
        orientation as a viewer shows the input.
    """
    options = CutoutOptions(
        mask=mask,
        bg=bg,
        bg_image=bg_image,
        blur=blur,
        crop=crop,
        threshold=threshold,
        quality=quality,
        decontaminate=decontaminate,
    )
    return cutout_image(segmenter or default_segmenter(), image, options, max_pixels)
