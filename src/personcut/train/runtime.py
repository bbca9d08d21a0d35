"""Where training runs: one process or many under torchrun, CPU or CUDA, mixed precision."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from personcut.train.model import UNet


@dataclass
class Runtime:
    """Where this process runs and how it talks to the others."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_runtime(device: str = "auto") -> Runtime:
    """Join torchrun's process group when launched by it, and pick the device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu" if device == "auto" else device)
        # Trained weights and small gradients drift into subnormal floats, which x86 CPUs handle
        # in microcode: a trained width-8 U-Net stepped 2x slower than a fresh one until these
        # were flushed to zero (benchmarks/RESULTS.md). Values that small carry no accuracy.
        torch.set_flush_denormal(True)
    return Runtime(dev, rank, world_size, local_rank)


def amp_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for training steps. CUDA: "auto" is bf16 where supported, else fp16.
    CPU: fp32 unless "bf16" is asked for. bf16 can only pay where the CPU has bf16
    instructions (``cpu_has_bf16``): on an AVX2-only EPYC it was 8x slower; on a 2-core Xeon
    with AMX one step alone was 1.2x faster, but a whole run no faster, at the same quality
    (benchmarks/RESULTS.md, stage 19)."""
    if setting == "none":
        return None
    if device.type == "cuda":
        if setting == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return {"bf16": torch.bfloat16, "fp16": torch.float16}[setting]
    if setting == "fp16":
        raise ValueError("train.amp fp16 needs CUDA; on a CPU use bf16 or none")
    return torch.bfloat16 if setting == "bf16" else None


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 instructions (AMX tiles or AVX-512 BF16)."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # torch >= 2.1, private
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def unwrap(model: nn.Module) -> UNet:
    """The plain U-Net inside DDP and torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def autocast(dtype: torch.dtype | None, device: torch.device):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
