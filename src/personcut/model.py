"""The classic U-Net (Ronneberger et al., 2015), in one file.

Encoder: blocks of two 3x3 convolutions, each followed by ReLU (BatchNorm between by default),
joined by 2x2 max-pooling, doubling the channels at each step down. Decoder: 2x2 transposed
convolutions halving the channels, the encoder block's output at the same scale concatenated in,
then the same two-conv block. A 1x1 convolution gives one person logit per pixel.

Unlike the paper, convolutions are zero-padded ("same"), so the output covers the whole input;
inputs of any size are padded up to a multiple of 2**depth and the logits cropped back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from personcut.config import ModelConfig


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

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = True) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.conv = DoubleConv(2 * out_channels, out_channels, batch_norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNet(nn.Module):
    """U-Net that maps an RGB batch in [0, 1] of shape (N, 3, H, W) to logits (N, 1, H, W)."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        c, w, bn = self.config.in_channels, self.config.width, self.config.batch_norm
        widths = [w * 2**i for i in range(self.config.depth + 1)]
        self.register_buffer("mean", torch.tensor(self.config.mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(self.config.std).view(1, -1, 1, 1))
        self.encoder = nn.ModuleList([DoubleConv(c, widths[0], bn)])
        self.encoder.extend(DoubleConv(a, b, bn) for a, b in zip(widths, widths[1:]))
        self.decoder = nn.ModuleList(
            Up(a, b, bn) for a, b in zip(widths[::-1], widths[::-1][1:])
        )
        self.head = nn.Conv2d(widths[0], 1, kernel_size=1)

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
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for up in self.decoder:
            x = up(x, skips.pop())
        logits = self.head(x)
        return logits[..., :h, :w]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def flops_per_image(config: ModelConfig, height: int, width: int) -> int:
    """Multiply-accumulates x 2 of one forward pass (convolutions only), for throughput tables."""
    total = 0
    c = config.in_channels
    widths = [config.width * 2**i for i in range(config.depth + 1)]
    h, w = height, width
    for i, out in enumerate(widths):
        if i:
            h, w = h // 2, w // 2
        total += h * w * 9 * (c * out + out * out)
        c = out
    for a, b in zip(widths[::-1], widths[::-1][1:]):
        h, w = h * 2, w * 2
        total += h * w * a * b  # 2x2 stride-2 transposed conv: one tap per output pixel
        total += h * w * 9 * (2 * b * b + b * b)
    total += h * w * widths[0]
    return 2 * total
