"""Configuration dataclasses for the model, the data and training.

A YAML file sets values, ``--set section.key=value`` overrides them, and the resolved config is
written next to every run's outputs and stored inside every checkpoint, so a checkpoint alone is
enough to rebuild its model.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config file or override names an unknown key or holds an invalid value."""


ENCODERS = {
    # name -> (levels it fixes, or None when model.depth chooses; its input mean and std)
    "classic": (None, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "efficientnet_lite0": (5, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "efficientnet_lite1": (5, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "efficientnet_lite2": (5, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}


@dataclass
class ModelConfig:
    """The U-Net's shape."""

    width: int = 16
    """Channels of the first encoder block (classic: each deeper block doubles them; paper: 64;
    efficientnet_lite*: the full-resolution block only)."""
    depth: int = 4
    """Number of 2x2 poolings (paper: 4). Inputs are padded to a multiple of 2**depth.
    The efficientnet_lite encoders have 5."""
    batch_norm: bool = True
    """BatchNorm after each 3x3 conv; False gives the paper's exact form."""
    in_channels: int = 3
    encoder: str = "classic"
    """"classic" (the paper's blocks) or "efficientnet_lite0", "_lite1", "_lite2"
    (ImageNet-pretrained, larger in that order)."""
    pretrained: bool = True
    """Start a pretrained encoder from its ImageNet weights when training from scratch."""
    mean: tuple[float, float, float] | None = None
    """Per-channel mean subtracted inside the model, so callers feed RGB in [0, 1]; None: the
    encoder's own (ImageNet statistics for classic, 0.5 for efficientnet_lite*)."""
    std: tuple[float, float, float] | None = None
    decoder: tuple[int, ...] | None = None
    """Channels of each decoder level, deepest first (``depth`` of them, the last at full
    resolution, read by the head); None: each level as wide as the skip it joins. A trained model
    grows into wider levels keeping its function (``model.widen``)."""

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise ConfigError(
                f"model.encoder must be one of {', '.join(ENCODERS)}, got {self.encoder!r}"
            )
        levels, mean, std = ENCODERS[self.encoder]
        if levels is not None and self.depth != levels:
            raise ConfigError(
                f"model.encoder {self.encoder} has {levels} levels: set "
                f"model.depth={levels}, got {self.depth}"
            )
        if self.width < 1:
            raise ConfigError(f"model.width must be >= 1, got {self.width}")
        if not 1 <= self.depth <= 7:
            raise ConfigError(f"model.depth must be in 1..7, got {self.depth}")
        self.mean = mean if self.mean is None else self.mean
        self.std = std if self.std is None else self.std
        self.mean = tuple(float(v) for v in self.mean)  # YAML gives lists
        self.std = tuple(float(v) for v in self.std)
        if self.decoder is not None:
            self.decoder = tuple(int(v) for v in self.decoder)  # YAML and JSON give lists
            if len(self.decoder) != self.depth or min(self.decoder) < 1:
                raise ConfigError(
                    f"model.decoder needs {self.depth} widths >= 1 (one per level, deepest "
                    f"first), got {list(self.decoder)}"
                )
        if len(self.mean) != self.in_channels or len(self.std) != self.in_channels:
            raise ConfigError("model.mean and model.std need one value per input channel")


@dataclass
class DataConfig:
    """Where the images come from and how they are augmented."""

    train: list[str] = field(default_factory=list)
    """Training sources. Each is a folder with images/ and masks/, a COCO json (images in the
    folder named like the json's split, e.g. train2017/, or given as ``JSON:IMAGES_DIR``), a
    folder with images/ and annotations/*.json, or ``FOLDER:SOURCE``: only a folder's pairs whose
    names start with ``SOURCE-`` (e.g. ``persons-train:coco``). A source listed twice is drawn
    twice as often."""
    val: list[str] = field(default_factory=list)
    """Validation sources, same forms as ``train``."""
    exclude: str | None = None
    """A text file of training image names (file stems, one per line, ``#`` comments) left out
    of ``train``: labels found wrong (``benchmarks/audit_labels.py`` lists candidates)."""
    backgrounds: str | None = None
    """Folder of person-free photos for copy-paste compositing (None: no compositing)."""
    copy_paste_p: float = 0.5
    """Probability that a training sample's people are pasted onto a random background."""
    crop_size: int = 256
    """Side of the square training crops."""
    eval_size: int = 320
    """Validation: the long side is resized to this, then padded to a square."""
    min_scale: float = 0.25
    """Smallest area fraction kept by the random resized crop."""
    rotate_degrees: float = 10.0
    scene_p: float = 0.0
    """Probability that a training sample is a made-up scene: 2 to ``scene_max_people`` people
    cut from the training images, pasted onto one of ``backgrounds`` (needs backgrounds)."""
    negative_p: float = 0.0
    """Probability that a training sample is a background photo with nobody in it."""
    scene_max_people: int = 10
    scene_crowd_p: float = 0.0
    """Share of made-up scenes that are crowds instead: 10 to 30 people in rows receding toward
    a horizon, 3 % to 30 % of the frame tall (train/data/scenes.py)."""
    crowd: str = "ignore"
    """COCO crowd regions: "ignore" (left out of loss and metrics) or "person"."""
    keep_empty: bool = True
    """Keep COCO images with no person as negatives."""
    min_person_area: float = 0.0
    """Drop COCO person instances smaller than this many pixels."""
    negatives: list[str] = field(default_factory=list)
    """Folders (searched in subfolders) of person-free photos: the negatives are drawn from
    them instead of ``backgrounds``, and scenes use them as backdrops too (hard negatives:
    animals, clutter, foliage, night lights; textured backdrops behind people)."""
    negatives_half: str | None = None
    """"even" or "odd": only every second photo of each folder (sorted), so the other half can
    measure false people (benchmarks/false_people.py holds out the odd half)."""
    gray_p: float = 0.0
    """Probability that a sample is made grayscale (half of those sepia): old photos."""
    turn_p: float = 0.0
    """Probability that a sample is turned by 90, 180 or 270 degrees: photos whose EXIF
    orientation was lost."""
    exposure_p: float = 0.0
    """Probability of a strong exposure fault: under-, over-exposed, or backlit (the people
    dark against a bright background: silhouettes)."""
    shadow_p: float = 0.0
    """Probability that the people cast a hard shadow on the ground or a wall behind them
    (background, darkened; the mask unchanged): on the whole labelled photo before the crop,
    and on made-up scenes. (Stage 40 ran an earlier form, cast on the crop: commit 4ac08ea.)"""
    closeup_p: float = 0.0
    """Probability that a labelled photo is first cropped close around one of its people, so
    that the person fills or overflows the frame."""

    def __post_init__(self) -> None:
        if isinstance(self.negatives, str):
            self.negatives = [self.negatives]
        for name in ("gray_p", "turn_p", "exposure_p", "shadow_p", "closeup_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"data.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.negatives_half not in (None, "even", "odd"):
            raise ConfigError(
                f'data.negatives_half must be "even" or "odd", got {self.negatives_half!r}'
            )
        if isinstance(self.train, str):
            self.train = [self.train]
        if isinstance(self.val, str):
            self.val = [self.val]
        if self.crowd not in ("ignore", "person"):
            raise ConfigError(f'data.crowd must be "ignore" or "person", got {self.crowd!r}')
        if not 0.0 <= self.copy_paste_p <= 1.0:
            raise ConfigError(f"data.copy_paste_p must be in [0, 1], got {self.copy_paste_p}")
        if self.scene_p < 0 or self.negative_p < 0 or self.scene_p + self.negative_p > 1:
            raise ConfigError("data.scene_p and data.negative_p must be >= 0 and sum to <= 1")
        if (self.scene_p or self.negative_p) and not self.backgrounds:
            raise ConfigError("data.scene_p and data.negative_p need data.backgrounds")
        if self.scene_max_people < 2:
            raise ConfigError("data.scene_max_people must be >= 2")
        if not 0.0 <= self.scene_crowd_p <= 1.0:
            raise ConfigError(f"data.scene_crowd_p must be in [0, 1], got {self.scene_crowd_p}")
        if not 0.0 < self.min_scale <= 1.0:
            raise ConfigError(f"data.min_scale must be in (0, 1], got {self.min_scale}")
        if self.crop_size % 16 or self.eval_size % 16:
            raise ConfigError("data.crop_size and data.eval_size must be multiples of 16")


@dataclass
class TrainConfig:
    """The optimisation schedule and the machinery around it."""

    out_dir: str = "runs/default"
    epochs: int = 20
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    """Linear warm-up length in epochs (fractions allowed), then cosine decay to zero."""
    dice_weight: float = 0.0
    """Weight of the Dice loss added to binary cross-entropy (0: BCE only)."""
    lovasz_weight: float = 0.0
    """Weight of the Lovász hinge (each image's person IoU, made convex) added likewise."""
    edge_weight: float = 0.0
    """Extra cross-entropy weight on pixels near the mask's boundary (0: every pixel alike)."""
    edge_width: int = 3
    """How near, in pixels of the training crop, a pixel must be to count as boundary."""
    grad_clip: float = 1.0
    """Clip the gradient norm to this (0: no clipping)."""
    amp: str = "auto"
    """Mixed precision: "bf16", "fp16", "none", or "auto" (CUDA: bf16 where supported, else
    fp16; CPU: fp32). "bf16" on a CPU only where it has bf16 instructions (AMX, AVX-512
    BF16; elsewhere it is far slower), and measure: on 2 cores it was no faster. fp16 is CUDA
    only."""
    channels_last: bool = True
    """Use channels_last memory format (faster on CUDA and on CPUs with oneDNN)."""
    compile: bool = False
    """Wrap the model in torch.compile."""
    sync_bn: bool = False
    """Convert BatchNorm to SyncBatchNorm under torchrun."""
    num_workers: int = 2
    seed: int = 0
    device: str = "auto"
    max_steps_per_epoch: int = 0
    """Stop each epoch after this many steps (0: the whole loader); for smoke runs."""
    init: str | None = None
    """Start from these weights (checkpoint .pt, .safetensors, "shipped" or "classic")."""
    sheet_images: int = 8
    """Validation images shown in the predictions sheet written each epoch."""
    ema_decay: float = 0.0
    """Keep an exponential moving average of the weights, updated every step with this decay
    (torchvision reference's --model-ema; 0.999 averages over about the last 1,000 steps;
    0: off). When on, validation, best.* and the .safetensors files use the averaged weights;
    the checkpoints keep the raw ones too, which --resume continues from."""

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("train.epochs and train.batch_size must be >= 1")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"train.ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.dice_weight < 0 or self.lovasz_weight < 0:
            raise ConfigError("train.dice_weight and train.lovasz_weight must be >= 0")
        if self.edge_weight < 0 or self.edge_width < 1:
            raise ConfigError("train.edge_weight must be >= 0 and train.edge_width >= 1")
        if self.amp not in ("auto", "bf16", "fp16", "none"):
            raise ConfigError(f"train.amp must be auto, bf16, fp16 or none, got {self.amp!r}")


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> Config:
        """Build a config from nested dicts, naming any unknown key with a suggestion."""
        raw = raw or {}
        _check_keys(raw, {f.name for f in dataclasses.fields(cls)}, source, "")
        parts = {}
        for f in dataclasses.fields(cls):
            section_cls = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}[f.name]
            values = raw.get(f.name) or {}
            if not isinstance(values, dict):
                raise ConfigError(f"{source}: section {f.name!r} must be a mapping")
            known = {g.name for g in dataclasses.fields(section_cls)}
            _check_keys(values, known, source, f.name + ".")
            types = {g.name: g.type for g in dataclasses.fields(section_cls)}
            values = {k: _coerce(v, types[k], f"{source}: {f.name}.{k}") for k, v in values.items()}
            try:
                parts[f.name] = section_cls(**values)
            except TypeError as exc:
                raise ConfigError(f"{source}: {exc}") from exc
        return cls(**parts)


def _check_keys(values: dict, known: set[str], source: str, prefix: str) -> None:
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
            raise ConfigError(f"{source}: unknown key '{prefix}{key}'{hint}")


def _coerce(value: Any, kind: str, where: str) -> Any:
    """Check a YAML value against a field's annotation (a string under postponed evaluation).

    YAML guesses types (``--set model.width=abc`` gives a str), so a wrong one must be named here
    rather than fail later deep inside the model or the data loader.
    """

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "float" and number(value):
        return float(value)
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind in ("str", "str | None"):
        if value is None and kind == "str | None":
            return None
        if isinstance(value, str) or number(value):
            return str(value)  # a folder named 2024 is read by YAML as a number
    if kind == "list[str]":
        items = value if isinstance(value, list) else [value]
        if all(isinstance(v, str) or number(v) for v in items):
            return [str(v) for v in items]
    if kind.startswith("tuple[float") and value is None and kind.endswith("| None"):
        return None
    if kind.startswith("tuple[float") and isinstance(value, (list, tuple)):
        if len(value) == kind.count("float") and all(number(v) for v in value):
            return tuple(float(v) for v in value)
    if kind == "tuple[int, ...] | None" and value is None:
        return None
    if kind == "tuple[int, ...] | None" and isinstance(value, (list, tuple)):
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return tuple(value)
    wanted = {
        "int": "an integer",
        "float": "a number",
        "bool": "true or false",
        "str": "a string",
        "str | None": "a string or null",
        "list[str]": "a list of paths, e.g. [a, b]",
        "tuple[int, ...] | None": "a list of integers, e.g. [240, 96, 24, 16, 8], or null",
    }.get(kind, kind)
    raise ConfigError(f"{where} must be {wanted}, got {value!r}")


def _parse_value(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or start from defaults) and apply ``section.key=value`` overrides."""
    import yaml

    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of model/data/train")
        source = str(path)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        section, _, name = key.partition(".")
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise ConfigError(f"override {item!r}: {section!r} is not a section")
        raw[section][name] = _parse_value(value)
    return Config.from_dict(raw, source=source)


def save_config(config: Config, path: str | Path) -> None:
    import yaml

    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
