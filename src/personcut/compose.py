"""Composing the result from a photo and its alpha: the RGBA cutout, the mask, or the people over
a colour, a picture or the photo's own background blurred. NumPy and Pillow only.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageColor, ImageFilter, ImageOps

from personcut.images import STRIP_PIXELS, ImageInput, load_image
from personcut.refine import box_mean

RGB = tuple[int, int, int]


def parse_color(text: str) -> RGB:
    """A colour name or #hex as RGB."""
    try:
        return ImageColor.getrgb(text)[:3]
    except ValueError as exc:
        raise ValueError(f"bg {text!r} is not a colour name or #rrggbb") from exc


class Background:
    """A background picture, decoded once and fitted (scaled to cover, centred) once per output
    size: a folder of same-sized photos, or a clip's frames, share one fitted copy."""

    KEEP = 4
    """Fitted sizes kept at once (a folder of mixed sizes would otherwise keep one per size)."""

    def __init__(self, source: ImageInput) -> None:
        self.image = load_image(source).convert("RGB")
        self._fitted: dict[tuple[int, int], np.ndarray] = {}
        self._lock = threading.Lock()  # photos are composed in several threads at once

    def fitted(self, width: int, height: int) -> np.ndarray:
        """HxWx3 uint8 covering ``width`` x ``height``."""
        key = (width, height)
        with self._lock:
            if key in self._fitted:
                return self._fitted[key]
        back = np.asarray(ImageOps.fit(self.image, key, Image.LANCZOS))
        with self._lock:
            if len(self._fitted) >= self.KEEP:
                self._fitted.pop(next(iter(self._fitted)))
            self._fitted[key] = back
        return back


BAND = (0.03, 0.97)
"""Alpha range whose colours are estimated."""
DECONTAMINATE_SIDE = 128
"""Long side of the grid the smooth foreground/background colour means are made on."""
READ_FACTOR = 4
"""The means' grid is enlarged this many times before each mixed pixel reads its nearest cell."""


def decontaminate(rgb: np.ndarray, alpha: np.ndarray, threads: int = 2) -> np.ndarray:
    """The people's own colour where they are partly transparent, instead of the photo's mix
    of person and old background (the fringe a cut-out shows on a new background).

    Blur-fusion foreground estimation (Forte and Pitie, "Approximate fast foreground colour
    estimation", ICIP 2021): local means of foreground and background colour, weighted by
    alpha, from two passes of box blurs (a wide one, then a narrow one on the first's
    estimates); then, per pixel, F = mean_F + alpha * (I - alpha * mean_F - (1 - alpha) *
    mean_B). The means are smooth, so they are made on a grid of at most DECONTAMINATE_SIDE,
    enlarged READ_FACTOR times (bilinear) and read at the partly transparent pixels (BAND) only,
    each from its nearest cell: one read instead of bilinear's four, within a level or two of
    them. The rest are unchanged.

    With ``threads`` 2 (the default) a helper thread makes the means while this one finds and
    reads the mixed pixels; then each thread enlarges one grid and estimates half the pixels
    (NumPy and Pillow release the GIL). The output is the same with one thread. The helper is
    shared: a photo that finds it busy with another (folders are cut in several threads) does
    without it rather than queue for it, so no core waits.
    Returns a new HxWx3 uint8 array (``rgb`` itself when nothing is partly transparent).
    """
    # The mixed pixels; below 3 % or above 97 % alpha the correction is too small to see.
    # Found before any work starts: a thresholded alpha has none, and then nothing is done.
    where = np.flatnonzero((alpha > BAND[0]) & (alpha < BAND[1]))  # flat: 10x np.nonzero's speed
    if len(where) == 0:
        return rgb
    helped = threads > 1 and _HELPER_FREE.acquire(blocking=False)
    try:
        return _decontaminate(rgb, alpha, where, _HELPER if helped else None)
    finally:
        if helped:
            _HELPER_FREE.release()


def _decontaminate(
    rgb: np.ndarray, alpha: np.ndarray, where: np.ndarray, pool: ThreadPoolExecutor | None
) -> np.ndarray:
    means = pool.submit(_colour_means, rgb, alpha) if pool else None
    out = rgb.copy()
    # Pixels as single 3-byte items: gathering and scattering them is 3-4x faster than rows.
    pixels = out.reshape(-1, 3).view(_PIXEL).reshape(-1)
    h, w = alpha.shape
    _, sh, sw, k = _grid(h, w)
    gh, gw = sh * k, sw * k
    # What does not need the means: where each pixel reads them, and the per-pixel terms of
    # F = mean_F * (1 - a^2) + I * a - mean_B * a * (1 - a).
    ys, xs = np.divmod(where, w)
    cell = (ys * gh // h) * gw + xs * gw // w
    a = np.take(alpha.reshape(-1), where)[:, None].astype(np.float32)
    own = np.take(pixels, where).view(np.uint8).reshape(-1, 3).astype(np.float32)
    own *= a
    own += 0.5  # rounds at the end
    weight_f, weight_b = 1 - a * a, a * (1 - a)
    small = means.result() if means is not None else _colour_means(rgb, alpha)

    def estimate(part: slice, fine_f: np.ndarray, fine_b: np.ndarray) -> None:
        fore = np.take(fine_f, cell[part], axis=0).astype(np.float32)
        fore *= weight_f[part]
        fore += own[part]
        back = np.take(fine_b, cell[part], axis=0).astype(np.float32)
        back *= weight_b[part]
        fore -= back
        np.clip(fore, 0, 255, out=fore)
        pixels[where[part]] = fore.astype(np.uint8).view(_PIXEL).reshape(-1)

    if pool is None:
        estimate(slice(None), _enlarge(small[..., :3], k), _enlarge(small[..., 3:], k))
        return out
    enlarging = pool.submit(_enlarge, small[..., :3], k)
    fine_b = _enlarge(small[..., 3:], k)
    fine_f = enlarging.result()
    half = len(where) // 2
    first = pool.submit(estimate, slice(0, half), fine_f, fine_b)
    estimate(slice(half, None), fine_f, fine_b)
    first.result()
    return out


_PIXEL = np.dtype("V3")
# The one helper thread (an executor starts its thread on the first task, not at import).
_HELPER = ThreadPoolExecutor(1, thread_name_prefix="personcut-decontaminate")
_HELPER_FREE = threading.Semaphore(1)


def _grid(h: int, w: int) -> tuple[float, int, int, int]:
    """The means' grid for an h x w photo: its scale, rows and columns, and how many times it
    is enlarged before the mixed pixels read it (no finer than half the photo's size)."""
    scale = min(1.0, DECONTAMINATE_SIDE / max(h, w))
    k = max(1, min(READ_FACTOR, round(0.5 / scale)))
    return scale, max(1, round(h * scale)), max(1, round(w * scale)), k


def _colour_means(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The smooth foreground and background colour means on the small grid: HxWx6 (F, B)."""
    h, w = alpha.shape
    scale, sh, sw, _ = _grid(h, w)
    # reducing_gap=1: a box reduction first, the fast way down for maps that are blurred anyway
    small = Image.fromarray(rgb).resize((sw, sh), Image.BILINEAR, reducing_gap=1.0)
    image = np.asarray(small, np.float32) / 255.0
    a = Image.fromarray(alpha.astype(np.float32, copy=False), "F")
    a = np.clip(np.asarray(a.resize((sw, sh), Image.BILINEAR, reducing_gap=1.0)), 0, 1)[..., None]
    wide = max(1, round(0.08 * max(sh, sw)))  # the paper's 90 px on photos of ~1100 px
    narrow = max(1, round(6 * scale))
    means = _blur_means(image, image, a, wide)
    f, b = means[..., :3], means[..., 3:]
    fore = np.clip(f + a * (image - a * f - (1 - a) * b), 0, 1)
    return _blur_means(fore, b, a, narrow)


def _enlarge(means: np.ndarray, k: int) -> np.ndarray:
    """An HxWx3 mean in [0, 1] as 8-bit colours (half a level of rounding) enlarged k times
    (bilinear), flattened to (H * k * W * k) x 3 for reading by cell."""
    h, w = means.shape[:2]
    picture = Image.fromarray(np.clip(means * 255 + 0.5, 0, 255).astype(np.uint8))
    return np.asarray(picture.resize((w * k, h * k), Image.BILINEAR)).reshape(-1, 3)


def _blur_means(fg: np.ndarray, bg: np.ndarray, a: np.ndarray, r: int) -> np.ndarray:
    """Alpha-weighted local means of the foreground and background colours: HxWx6 (F, B)."""
    stack = np.concatenate([fg * a, bg * (1 - a), a], axis=-1).transpose(2, 0, 1)
    sums = box_mean(np.ascontiguousarray(stack), r).transpose(1, 2, 0)  # the guided filter's box
    blurred_a = sums[..., 6:]
    return np.concatenate(
        [sums[..., :3] / (blurred_a + 1e-5), sums[..., 3:6] / ((1 - blurred_a) + 1e-5)], axis=-1
    )


def compose_array(
    rgb: np.ndarray,
    alpha: np.ndarray,
    *,
    mask_only: bool = False,
    bg: str | RGB | None = None,
    bg_image: Background | ImageInput | None = None,
    blur: float = 0.0,
    photo: np.ndarray | None = None,
) -> np.ndarray:
    """The output from the people's colours (HxWx3 uint8) and alpha (HxW float in [0, 1]) as a
    uint8 array: by default an HxWx4 RGBA cutout; with ``mask_only`` the HxW 8-bit mask; with
    ``bg``, ``bg_image`` or ``blur`` the people over a colour, a picture scaled to cover, or the
    photo blurred (``photo``, when ``rgb`` holds decontaminated colours), HxWx3 opaque RGB."""
    # One full-size temporary, changed in place: at 12 MP each new array costs more than the
    # arithmetic. +0.5 then truncation rounds.
    scaled = np.multiply(alpha, 255.0, dtype=np.float32)
    scaled += 0.5
    np.clip(scaled, 0.0, 255.0, out=scaled)
    a8 = scaled.astype(np.uint8)
    if mask_only:
        return a8
    h, w = a8.shape
    if bg is None and bg_image is None and not blur:
        return _rgba(rgb, a8)
    if bg_image is not None:
        if not isinstance(bg_image, Background):
            bg_image = Background(bg_image)
        back = bg_image.fitted(w, h)
    elif blur:
        source = rgb if photo is None else photo
        back = np.asarray(Image.fromarray(source).filter(ImageFilter.GaussianBlur(blur)))
    else:
        color = parse_color(bg) if isinstance(bg, str) else tuple(bg)
        back = np.broadcast_to(np.array(color, np.uint8), rgb.shape)
    # (rgb * a + back * (255 - a) + 127) // 255 in 16-bit integers: exact rounding, and about
    # half the time of the same blend in float32.
    a16 = a8.astype(np.uint16)[..., None]
    out = rgb * a16
    out += back * (255 - a16)
    out += 127
    out //= 255
    return out.astype(np.uint8)


def _rgba(rgb: np.ndarray, a8: np.ndarray) -> np.ndarray:
    """Pillow interleaves the bands in C (about a fifth of NumPy's strided copy), a strip at a
    time so its temporaries stay in the cache (12 MP: 27 ms, not 130). Fully transparent pixels
    then get RGB 0 through a 32-bit view, whole pixels in one pass: invisible anyway, and the
    PNG is ~2x smaller and faster to encode."""
    h, w = a8.shape
    rgba = np.empty((h, w, 4), np.uint8)
    rows = max(1, STRIP_PIXELS // w)
    for top in range(0, h, rows):
        band = slice(top, top + rows)
        strip = Image.fromarray(np.ascontiguousarray(rgb[band]))
        strip.putalpha(Image.fromarray(a8[band]))
        rgba[band] = np.asarray(strip)
        rgba[band].view(np.uint32)[..., 0] *= a8[band] > 0
    return rgba


def crop_box(
    alpha: np.ndarray, margin: float = 0.05, level: float = 0.5
) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) around the people plus ``margin`` of the box's size; None
    when no person was found."""
    ys, xs = np.nonzero(alpha >= level)
    if len(xs) == 0:
        return None
    h, w = alpha.shape
    left, right, top, bottom = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    mx, my = round((right - left) * margin), round((bottom - top) * margin)
    return max(0, left - mx), max(0, top - my), min(w, right + mx), min(h, bottom + my)
