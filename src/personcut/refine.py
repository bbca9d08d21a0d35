"""Bringing the network's mask to the photo's full size: a fast guided filter (He & Sun, 2015)
guided by the photo, so edges follow the image rather than a blurred upsample, then a levels step
(ALPHA_LEVELS) that makes faint doubts fully transparent and near-certain pixels opaque.
NumPy and Pillow only."""

from __future__ import annotations

import numpy as np
from PIL import Image

from personcut.images import STRIP_PIXELS

ALPHA_LEVELS = (0.1, 0.9)
"""Probabilities at or below the first become alpha 0, at or above the second alpha 1, linear
between. Without it the network's faint doubts (a few per cent over much of a typical
background) leave a ghost of the old background in every cutout, and near-certain people are
slightly see-through. Symmetric about 0.5, so a mask thresholded at 0.5 is unchanged."""


def box_mean(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over (2r+1)^2 windows of the last two axes, clipped at the borders, so a stack of
    maps is filtered in one pass. For the small radius used here, adding 2r+1 shifted slices of
    a zero-padded copy along each axis is faster than prefix sums (and exact in float32: a
    2-D prefix sum over a working-size map was off by ~5e-4)."""
    h, w = x.shape[-2:]
    padded = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(r, r), (r, r)])
    rows_summed = padded[..., 0:h, :].copy()
    for i in range(1, 2 * r + 1):
        rows_summed += padded[..., i : i + h, :]
    s = rows_summed[..., 0:w].copy()
    for i in range(1, 2 * r + 1):
        s += rows_summed[..., i : i + w]
    rows = np.minimum(np.arange(h) + r + 1, h) - np.maximum(np.arange(h) - r, 0)
    cols = np.minimum(np.arange(w) + r + 1, w) - np.maximum(np.arange(w) - r, 0)
    s /= (rows[:, None] * cols[None, :]).astype(s.dtype)
    return s


def guided_upsample(
    prob: np.ndarray,
    guide_low: np.ndarray,
    guide_full: np.ndarray,
    radius: int = 2,
    eps: float = 1e-3,
    stretch: tuple[float, float] | None = None,
) -> np.ndarray:
    """Fast guided filter: fit q = a*I + b on the low-resolution (prob, gray guide in [0, 1])
    pair, then apply the upsampled a and b to the full-resolution gray guide.

    ``guide_full`` may be gray uint8 (0-255) instead of floats in [0, 1], and ``stretch`` (low,
    high) applies :func:`levels` to the result; both are folded into a and b at low resolution,
    so the full-size work is two resizes and three passes (at 1 MP the full-size steps were
    about half of the Segmenter's time before this). Returns float32 in [0, 1].
    """
    guide_low, prob = guide_low.astype(np.float32), prob.astype(np.float32)
    # The four means in one pass over a stack, and the coefficients' means in another.
    mean_i, mean_p, mean_ip, mean_ii = box_mean(
        np.stack([guide_low, prob, guide_low * prob, guide_low * guide_low]), radius
    )
    a = (mean_ip - mean_i * mean_p) / (mean_ii - mean_i * mean_i + eps)
    b = mean_p - a * mean_i
    a, b = box_mean(np.stack([a, b]), radius)
    if stretch is not None:
        low, high = stretch
        check_levels(low, high)
        a, b = a / (high - low), (b - low) / (high - low)
    if guide_full.dtype == np.uint8:
        a = a / 255.0
    a_low = Image.fromarray(a.astype(np.float32), "F")
    b_low = Image.fromarray(b.astype(np.float32), "F")
    h, w = guide_full.shape
    scale = a_low.height / h
    out = np.empty((h, w), np.float32)
    # In strips (images.STRIP_PIXELS): each strip's upsampled a and b stay in the cache (3x
    # faster at 12 MP). Pillow samples a strip from the same source positions as the whole.
    rows = max(8, STRIP_PIXELS // w)
    for top in range(0, h, rows):
        bottom = min(h, top + rows)
        box = (0.0, top * scale, float(a_low.width), bottom * scale)
        strip = out[top:bottom]
        a_strip = np.asarray(a_low.resize((w, bottom - top), Image.BILINEAR, box=box))
        np.multiply(a_strip, guide_full[top:bottom], out=strip)
        strip += np.asarray(b_low.resize((w, bottom - top), Image.BILINEAR, box=box))
        np.clip(strip, 0.0, 1.0, out=strip)
    return out


def check_levels(low: float, high: float) -> None:
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"levels need 0 <= low < high <= 1, got ({low}, {high})")


def levels(prob: np.ndarray, low: float, high: float) -> np.ndarray:
    """Stretch ``prob`` so that ``low`` maps to 0 and ``high`` to 1, clipped (float32)."""
    check_levels(low, high)
    return np.clip((prob - low) / (high - low), 0.0, 1.0).astype(np.float32)


def gray(rgb: np.ndarray) -> np.ndarray:
    """Luma in [0, 1] as float32 (the guided filter's guide)."""
    return np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32) / 255.0


GUIDE = (2, 1e-3)
"""The guided filter's radius (pixels at the working size) and eps (regularisation: larger
follows the guide's edges less)."""


def to_full_size(
    prob: np.ndarray,
    small: np.ndarray,
    image: Image.Image,
    stretch: tuple[float, float] | None = ALPHA_LEVELS,
    guided: bool = True,
    guide: tuple[int, float] = GUIDE,
) -> np.ndarray:
    """The network's probabilities ``prob`` for ``small`` (the photo at the working size, HxWx3
    uint8) as alpha at the size of ``image`` (the full photo): guided upsampling, or bilinear
    with ``guided=False``; then levels ``stretch`` (None: none). float32 in [0, 1]."""
    if guided:
        # The levels step rides inside the filter's coefficients: same result, fewer passes
        # over the full-size image.
        full_gray = np.asarray(image.convert("L"))
        radius, eps = guide
        return guided_upsample(prob, gray(small), full_gray, radius, eps, stretch=stretch)
    alpha = np.asarray(Image.fromarray(prob, "F").resize(image.size, Image.BILINEAR))
    return alpha if stretch is None else levels(alpha, *stretch)
