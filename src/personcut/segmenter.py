"""Segmenter: one model session, one predict path, on ONNX Runtime (default) or torch.

The network runs at a working size (long side, e.g. 320, each side stretched to the model's
multiple); its soft mask is brought back to the photo's full size by :mod:`personcut.refine`.
Torch is imported only for ``.pt``/``.safetensors`` models (the training extra).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image

from personcut import refine
from personcut.images import DEFAULT_MAX_PIXELS, ImageInput, load_image, to_rgb
from personcut.refine import ALPHA_LEVELS
from personcut.weights import ModelInfo, resolve_model

log = logging.getLogger(__name__)


QUALITIES = ("fast", "balanced", "best")
"""``fast``: one pass at 0.8x the working size; ``balanced``: one pass at the working size and
one on the mirrored photo; ``best``: passes at 1x, 1.3x and 1.6x the working size, each also on
the mirrored photo. A mode's probabilities are averaged before the guided filter
(benchmarks/RESULTS.md, "Quality modes", has the figures)."""

PASSES: dict[str, tuple[tuple[float, ...], bool]] = {
    "fast": ((0.8,), False),
    "balanced": ((1.0,), True),
    "best": ((1.0, 1.3, 1.6), True),
    "frame": ((1.0,), False),
}
"""Each mode's (scales of the working size, whether the mirrored photo is a pass too). The
mirror pass is in ``balanced`` since the eighteenth session: it lifted every set scored
outside the repo (issue 25's table: 320 + flip) and persons-val (+0.002 person IoU, +0.006
boundary F) for one more pass in the same batch. ``frame`` (one pass, no mirror) is video's: a
clip has a frame budget, and its temporal filter already steadies the mask."""


def pass_sizes(working_size: int, quality: str) -> tuple[int, ...]:
    """The working sizes of the passes a quality mode runs (multiples of 32)."""
    if quality not in PASSES:
        raise ValueError(f"quality must be one of {', '.join(QUALITIES)}, got {quality!r}")
    return tuple(
        working_size if s == 1.0 else max(32, round(working_size * s / 32) * 32)
        for s in PASSES[quality][0]
    )


def stretched_sides(h: float, w: float, multiple: int) -> tuple[int, int]:
    """The sides the network sees for a photo scaled to ``h`` x ``w``: each stretched up to the
    next multiple of the network's stride instead of padded up to it. The network was trained on
    crops without padding: the border repeated into a padded band (16 rows of a 4:3 photo at
    320) cost 0.006 person IoU and 0.017 boundary F on persons-val, a grey or mirrored band 0.003
    and 0.008-0.011. Squeezing to the nearest multiple instead of stretching cost `fast` 0.003
    ("Stretch, don't pad" in benchmarks/RESULTS.md). The input is as large as the padded one
    was, so the time is the same."""
    return (
        max(multiple, math.ceil(round(h, 3) / multiple) * multiple),
        max(multiple, math.ceil(round(w, 3) / multiple) * multiple),
    )


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
        quality: "fast", "balanced" (default) or "best" (see QUALITIES); each call of
            :meth:`predict_rgb` may choose another.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        device: str = "auto",
        working_size: int | None = None,
        alpha_levels: tuple[float, float] | None = ALPHA_LEVELS,
        threads: int | None = None,
        quality: str = "balanced",
    ) -> None:
        pass_sizes(320, quality)  # checked before the model loads
        self.quality = quality
        self.guide = refine.GUIDE  # (radius, eps) of the guided filter
        if alpha_levels is not None:
            refine.check_levels(*alpha_levels)  # before the model loads, not at the first photo
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

        from personcut.train.checkpoint import load_model

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

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) float32 in [0, 1], sides a multiple of ``info.multiple`` -> logits.
        ``prepare``, ``to_batch`` and ``logits`` are one pass's steps as ``predict_rgb`` runs
        them; benchmarks and scripts (tune_edges, profile_remove, quantize_int8) call them alone."""
        if self.runtime == "onnxruntime":
            return self.session.run(None, {self.input_name: batch})[0]
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device)
            return self.torch_model.eval()(x).float().cpu().numpy()

    def prepare(
        self, rgb: np.ndarray, image: Image.Image | None = None, size: int | None = None
    ) -> tuple[np.ndarray, tuple[int, int]]:
        """The photo at the working size (or ``size``), its sides stretched to the model's
        multiple (:func:`stretched_sides`); ``image``: ``rgb`` as a PIL image, if the caller has
        one (making it copies the photo)."""
        h, w = rgb.shape[:2]
        s = (size or self.info.working_size) / max(h, w)
        nh, nw = stretched_sides(h * s, w * s, self.info.multiple)
        # reducing_gap=1 (a box reduction by the whole factor first) halves this step's 4 ms at
        # 1 MP but cost 0.0007 person IoU at 1 MP (benchmarks/eval_large.py); kept at 2.
        if image is None:
            image = Image.fromarray(rgb)
        small = np.asarray(image.resize((nw, nh), Image.BILINEAR, reducing_gap=2.0))
        return small, (nh, nw)

    @staticmethod
    def to_batch(smalls: list[np.ndarray]) -> np.ndarray:
        """Same-shape HxWx3 uint8 images -> (N, 3, H, W) float32 in [0, 1], contiguous (a
        transposed view would be copied again by ONNX Runtime)."""
        batch = np.empty((len(smalls), 3, *smalls[0].shape[:2]), np.float32)
        for i, small in enumerate(smalls):
            batch[i] = small.transpose(2, 0, 1)
        return np.divide(batch, 255.0, out=batch)

    def predict_masks(
        self,
        images: list[ImageInput],
        guided: bool = True,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        quality: str | None = None,
    ) -> list[np.ndarray]:
        """Person probability (HxW float32 in [0, 1]) at each image's full size, in one batch.
        Images over ``max_pixels`` are refused (ImageError) before they are decoded."""
        rgbs = [to_rgb(load_image(im, max_pixels=max_pixels)) for im in images]
        return self.predict_rgb(rgbs, guided, quality)

    def predict_rgb(
        self, rgbs: list[np.ndarray], guided: bool = True, quality: str | None = None
    ) -> list[np.ndarray]:
        """Like :meth:`predict_masks` for images already decoded to HxWx3 uint8 RGB arrays (the
        CLI and the server decode once, then both predict and compose from the same pixels).
        ``quality``: this call's mode (None: the Segmenter's)."""
        quality = quality or self.quality
        sizes = pass_sizes(self.info.working_size, quality)
        mirrored = PASSES[quality][1]
        images = [Image.fromarray(rgb) for rgb in rgbs]  # once, for the resize and the guide
        # Each pass: every photo at that size (its small copy, its probabilities).
        runs = []
        for size in sizes:
            smalls = [self.prepare(rgb, im, size)[0] for rgb, im in zip(rgbs, images, strict=True)]
            runs.append((smalls, self._probabilities(smalls, mirrored)))
        alphas = []
        for i, image in enumerate(images):
            # Averaged on the largest pass's grid; that pass's photo guides the filter.
            small, prob = max(((smalls[i], probs[i]) for smalls, probs in runs), key=_area)
            if len(runs) > 1:
                h, w = prob.shape
                total = np.zeros((h, w), np.float32)
                for _, probs in runs:
                    p = probs[i]
                    if p.shape != (h, w):
                        p = np.asarray(Image.fromarray(p, "F").resize((w, h), Image.BILINEAR))
                    total += p
                prob = total / len(runs)
            alphas.append(
                refine.to_full_size(prob, small, image, self.alpha_levels, guided, self.guide)
            )
        return alphas

    def _probabilities(self, smalls: list[np.ndarray], mirrored: bool) -> list[np.ndarray]:
        """Person probability of each small photo; with ``mirrored``, averaged with that of its
        mirror image. One network call per shape: photos of one shape (and their mirror images)
        share a batch, none is padded."""
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, small in enumerate(smalls):
            by_shape.setdefault(small.shape, []).append(i)
        probs: list[np.ndarray] = [np.empty(0)] * len(smalls)
        for members in by_shape.values():
            batch = [smalls[i] for i in members]
            if mirrored:
                batch += [small[:, ::-1] for small in batch]  # to_batch copies them
            out = _sigmoid(self.logits(self.to_batch(batch))[:, 0])
            for j, i in enumerate(members):
                probs[i] = (out[j] + out[len(members) + j][:, ::-1]) / 2 if mirrored else out[j]
        return probs

    def predict_mask(
        self, image: ImageInput, guided: bool = True, quality: str | None = None
    ) -> np.ndarray:
        """Person probability (HxW float32 in [0, 1]) at the image's full (upright) size."""
        return self.predict_masks([image], guided, quality=quality)[0]


def _area(pass_: tuple[np.ndarray, np.ndarray]) -> int:
    return pass_[1].size


def _sigmoid(logit: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logit.astype(np.float32)))
