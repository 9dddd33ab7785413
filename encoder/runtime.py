"""Where and in what precision the encoders run: chosen once, from what the machine has."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from encoder.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Runtime:
    device: torch.device  # where the model's weights live
    amp_dtype: torch.dtype | None  # autocast dtype, or None for plain float32

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def describe(self) -> str:
        precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]
        return f"{self.device.type} {precision}"


def cpu_has_fast_bf16() -> bool:
    """bf16 pays off on CPUs with native bf16 math (AMX or AVX512-BF16); elsewhere it is emulated."""
    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def pick_runtime(device: str = "auto", precision: str = "auto") -> Runtime:
    """`device`: auto | cpu | cuda[:N]. `precision`: auto | fp32 | bf16 | fp16."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was requested but torch sees no CUDA device")
    if precision == "auto":
        if dev.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "bf16" if cpu_has_fast_bf16() else "fp32"
    amp = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return Runtime(dev, amp)
