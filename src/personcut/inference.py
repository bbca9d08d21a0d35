"""Segmenter: one model, one predict path, on ONNX Runtime (default) or torch.

The network runs at a working size (long side, e.g. 320, padded to a multiple of 16). Its soft
mask is brought back to the photo's full size by a fast guided filter (He & Sun, 2015) guided by
the photo: the filter's linear coefficients are fitted at the working size, upsampled, and applied
to the full-resolution photo, so edges follow the image rather than a blurred upsample. Last, a
levels step (ALPHA_LEVELS) makes faint doubts fully transparent and near-certain pixels opaque.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from personcut.imaging import DEFAULT_MAX_PIXELS, STRIP_PIXELS, ImageInput, load_image, to_rgb

log = logging.getLogger(__name__)

WEIGHTS = Path(__file__).parent / "weights"
DEFAULT_MODEL = WEIGHTS / "personcut.onnx"

ALPHA_LEVELS = (0.1, 0.9)
"""Probabilities at or below the first become alpha 0, at or above the second alpha 1, linear
between. Without it the network's faint doubts (a few per cent over much of a typical
background) leave a ghost of the old background in every cutout, and near-certain people are
slightly see-through. Symmetric about 0.5, so a mask thresholded at 0.5 is unchanged."""


@dataclass
class ModelInfo:
    """What a model says about itself: the ONNX file's metadata (written at export, so a copied
    .onnx alone still works), else the JSON beside it, else these defaults."""

    working_size: int = 320
    """Long side the network sees."""
    multiple: int = 16
    """Padded sides are a multiple of this (2**depth)."""
    name: str = "personcut"
    extra: dict[str, Any] | None = None

    @classmethod
    def for_model(cls, model: Path, embedded: dict[str, str] | None = None) -> ModelInfo:
        """``embedded``: the ONNX file's custom metadata (working_size, pad_multiple, name)."""
        meta = model.with_suffix(".json")
        raw: dict[str, Any] = json.loads(meta.read_text()) if meta.is_file() else {}
        raw.update(
            {
                k: v
                for k, v in (embedded or {}).items()
                if k in ("working_size", "pad_multiple", "name")
            }
        )
        if not raw:
            return cls(name=model.stem)
        return cls(
            working_size=int(raw.get("working_size", 320)),
            multiple=int(raw.get("pad_multiple", 16)),
            name=raw.get("name", model.stem),
            extra=raw,
        )


def shipped_models() -> list[str]:
    """Names of the models inside the package; "personcut" is the default."""
    return sorted(p.stem for p in WEIGHTS.glob("*.onnx"))


def resolve_model(model: str | Path | None) -> Path:
    """A model file from a path, a shipped model's name, or None (the default model)."""
    if model is None:
        return DEFAULT_MODEL
    path = Path(model)
    if path.is_file():
        return path
    if path.suffix == "" and path.name == str(model) and (WEIGHTS / f"{model}.onnx").is_file():
        return WEIGHTS / f"{model}.onnx"
    names = ", ".join(shipped_models())
    raise FileNotFoundError(
        f"model {model} is neither a file nor a shipped model (shipped: {names})"
    )


def _box(x: np.ndarray, r: int) -> np.ndarray:
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
    mean_i, mean_p, mean_ip, mean_ii = _box(
        np.stack([guide_low, prob, guide_low * prob, guide_low * guide_low]), radius
    )
    a = (mean_ip - mean_i * mean_p) / (mean_ii - mean_i * mean_i + eps)
    b = mean_p - a * mean_i
    a, b = _box(np.stack([a, b]), radius)
    if stretch is not None:
        low, high = stretch
        _check_levels(low, high)
        a, b = a / (high - low), (b - low) / (high - low)
    if guide_full.dtype == np.uint8:
        a = a / 255.0
    a_low = Image.fromarray(a.astype(np.float32), "F")
    b_low = Image.fromarray(b.astype(np.float32), "F")
    h, w = guide_full.shape
    scale = a_low.height / h
    out = np.empty((h, w), np.float32)
    # In strips (imaging.STRIP_PIXELS): each strip's upsampled a and b stay in the cache (3x
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


def _check_levels(low: float, high: float) -> None:
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"levels need 0 <= low < high <= 1, got ({low}, {high})")


def levels(prob: np.ndarray, low: float, high: float) -> np.ndarray:
    """Stretch ``prob`` so that ``low`` maps to 0 and ``high`` to 1, clipped (float32)."""
    _check_levels(low, high)
    return np.clip((prob - low) / (high - low), 0.0, 1.0).astype(np.float32)


def _gray(rgb: np.ndarray) -> np.ndarray:
    """Luma in [0, 1] as float32 (the guided filter's guide)."""
    return np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32) / 255.0


def threads_per_worker(workers: int) -> int | None:
    """ONNX Runtime threads for each of ``workers`` photos worked on side by side: the cores
    shared out, at least one each; None (ORT's default, every core) for a single worker. Under
    load, one network per core gets 17 % more through than networks sharing all cores
    (benchmarks/bench_ort_options.py)."""
    if workers <= 1:
        return None
    return max(1, (os.cpu_count() or 1) // workers)


class Segmenter:
    """Holds one model session and predicts person masks.

    Args:
        model: an ``.onnx`` file (ONNX Runtime), a ``.pt`` checkpoint or ``.safetensors`` file
            (torch); the name of a model shipped in the package ("classic", see
            :func:`shipped_models`); None for the default shipped model.
        device: "auto" (CUDA when available), "cpu" or "cuda".
        working_size: long side the network sees; default from the model's JSON.
        alpha_levels: (low, high) for the final levels step (see ALPHA_LEVELS); None leaves the
            refined probabilities as they are.
        threads: ONNX Runtime's threads for one photo; None for one per core (the fastest single
            photo). Give 1 when several photos run side by side (:func:`cutout_many` with
            ``workers``): one network on each core beats two networks sharing both.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        device: str = "auto",
        working_size: int | None = None,
        alpha_levels: tuple[float, float] | None = ALPHA_LEVELS,
        threads: int | None = None,
    ) -> None:
        if alpha_levels is not None:
            _check_levels(*alpha_levels)  # before the model loads, not at the first photo
        self.alpha_levels = alpha_levels
        path = resolve_model(model)
        self.path = path
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        if path.suffix == ".onnx":
            self._init_onnx(device, threads)
        elif path.suffix in (".pt", ".safetensors"):
            self._init_torch(device)
        else:
            raise ValueError(f"{path}: unknown model type; use .onnx, .pt or .safetensors")
        if working_size:  # the caller's choice beats the model's
            self.info.working_size = working_size
        log.info("model %s on %s (%s)", path.name, self.runtime, self.device)

    def _init_onnx(self, device: str, threads: int | None) -> None:
        import onnxruntime as ort

        available = ort.get_available_providers()
        want_cuda = device in ("auto", "cuda") and "CUDAExecutionProvider" in available
        if device == "cuda" and not want_cuda:
            raise RuntimeError("device cuda asked for, but onnxruntime has no CUDA provider")
        providers = (
            ["CUDAExecutionProvider", "CPUExecutionProvider"]
            if want_cuda
            else ["CPUExecutionProvider"]
        )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        embedded = self.session.get_modelmeta().custom_metadata_map
        self.info = ModelInfo.for_model(self.path, embedded)
        self.runtime = "onnxruntime"
        self.device = "cuda" if self.session.get_providers()[0].startswith("CUDA") else "cpu"

    def _init_torch(self, device: str) -> None:
        import torch

        from personcut.checkpoint import load_model

        use_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
        if device == "cuda" and not use_cuda:
            raise RuntimeError("device cuda asked for, but torch sees no CUDA device")
        self.device = "cuda" if use_cuda else "cpu"
        self.torch_model, config = load_model(self.path, self.device)
        self.info = ModelInfo.for_model(self.path)
        self.info.multiple = 2**config.model.depth
        if self.info.extra is None:
            self.info.working_size = config.data.eval_size
        self.runtime = "torch"

    def _logits(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) float32 in [0, 1], sides a multiple of ``info.multiple`` -> logits."""
        if self.runtime == "onnxruntime":
            return self.session.run(None, {self.input_name: batch})[0]
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device)
            return self.torch_model.eval()(x).float().cpu().numpy()

    def _prepare(
        self, rgb: np.ndarray, image: Image.Image | None = None
    ) -> tuple[np.ndarray, tuple[int, int]]:
        """The photo at the working size; ``image``: ``rgb`` as a PIL image, if the caller has
        one (making it copies the photo)."""
        h, w = rgb.shape[:2]
        s = self.info.working_size / max(h, w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        # reducing_gap=1 (a box reduction by the whole factor first) halves this step's 4 ms at
        # 1 MP but cost 0.0007 person IoU at 1 MP (benchmarks/eval_large.py); kept at 2.
        if image is None:
            image = Image.fromarray(rgb)
        small = np.asarray(image.resize((nw, nh), Image.BILINEAR, reducing_gap=2.0))
        return small, (nh, nw)

    def _to_batch(self, smalls: list[np.ndarray]) -> np.ndarray:
        m = self.info.multiple
        ph = max(s.shape[0] for s in smalls)
        pw = max(s.shape[1] for s in smalls)
        ph, pw = -(-ph // m) * m, -(-pw // m) * m
        batch = np.empty((len(smalls), 3, ph, pw), np.float32)
        for i, s in enumerate(smalls):
            padded = np.pad(s, ((0, ph - s.shape[0]), (0, pw - s.shape[1]), (0, 0)), mode="edge")
            batch[i] = padded.transpose(2, 0, 1) / 255.0
        return batch

    def predict_masks(
        self,
        images: list[ImageInput],
        refine: bool = True,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> list[np.ndarray]:
        """Person probability (HxW float32 in [0, 1]) at each image's full size, in one batch.
        Images over ``max_pixels`` are refused (ImageError) before they are decoded."""
        rgbs = [to_rgb(load_image(im, max_pixels=max_pixels)) for im in images]
        return self.predict_rgb(rgbs, refine)

    def predict_rgb(self, rgbs: list[np.ndarray], refine: bool = True) -> list[np.ndarray]:
        """Like :meth:`predict_masks` for images already decoded to HxWx3 uint8 RGB arrays (the
        CLI and the server decode once, then both predict and compose from the same pixels)."""
        images = [Image.fromarray(rgb) for rgb in rgbs]  # once, for the resize and the guide
        prepared = [self._prepare(rgb, im) for rgb, im in zip(rgbs, images, strict=True)]
        logits = self._logits(self._to_batch([p[0] for p in prepared]))
        out = []
        for rgb, image, (small, (nh, nw)), logit in zip(
            rgbs, images, prepared, logits, strict=True
        ):
            prob = 1.0 / (1.0 + np.exp(-logit[0, :nh, :nw].astype(np.float32)))
            if refine:
                # The levels step rides inside the filter's coefficients: same result, fewer
                # passes over the full-size image.
                gray = np.asarray(image.convert("L"))
                alpha = guided_upsample(prob, _gray(small), gray, stretch=self.alpha_levels)
            else:
                size = (rgb.shape[1], rgb.shape[0])
                alpha = np.asarray(Image.fromarray(prob, "F").resize(size, Image.BILINEAR))
                if self.alpha_levels is not None:
                    alpha = levels(alpha, *self.alpha_levels)
            out.append(alpha)
        return out

    def predict_mask(self, image: ImageInput, refine: bool = True) -> np.ndarray:
        """Person probability (HxW float32 in [0, 1]) at the image's full (upright) size."""
        return self.predict_masks([image], refine)[0]


_DEFAULT: Segmenter | None = None


def default_segmenter() -> Segmenter:
    global _DEFAULT
    if _DEFAULT is None:
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
    segmenter: Segmenter | None = None,
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
        segmenter: the model to use; the shipped model by default.
        max_pixels: refuse larger images (decompression bombs); None for no limit.

    Returns:
        An RGBA cutout by default; "L" with ``mask``; RGB with a background. Same size and
        orientation as a viewer shows the input.
    """
    from personcut.cutout import CutoutOptions, cutout_image

    options = CutoutOptions(
        mask=mask, bg=bg, bg_image=bg_image, blur=blur, crop=crop, threshold=threshold
    )
    return cutout_image(segmenter or default_segmenter(), image, options, max_pixels)
