"""Where and in what precision the encoders run: chosen once, from what the machine has."""

from __future__ import annotations

import contextlib
import importlib.util
import os
from dataclasses import dataclass

import torch

from encoder.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BACKENDS = ("auto", "torch", "openvino")  # what executes the towers; torch is the reference and the CUDA path


@dataclass(frozen=True)
class Runtime:
    device: torch.device  # where the model's weights live
    amp_dtype: torch.dtype | None  # autocast dtype, or None for plain float32
    backend: str = "torch"  # "torch", or "openvino" (CPU only: a converted copy of the model runs)
    fallback: bool = False  # chosen by "auto": another backend may replace it when it is not faithful

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def describe(self) -> str:
        precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]
        if self.backend == "torch":
            return f"{self.device.type} {precision}"
        return f"{self.backend} {self.device.type} {precision}"

    def as_torch(self) -> Runtime:
        """The PyTorch runtime at the same device and precision (where a converted model was not faithful)."""
        return Runtime(self.device, self.amp_dtype)


def cpu_has_fast_bf16() -> bool:
    """bf16 pays off on CPUs with native bf16 math (AMX or AVX512-BF16); elsewhere it is emulated."""
    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def pick_runtime(device: str = "auto", precision: str = "auto", backend: str = "auto") -> Runtime:
    """`device`: auto | cpu | cuda[:N]. `precision`: auto | fp32 | bf16 | fp16. `backend`: auto | torch |
    openvino; auto = OpenVINO on a CPU where it is installed (3.3x PyTorch bf16 per ViT-S clip on the
    AVX512-BF16 EPYC, bench/RESULTS.md), PyTorch on CUDA."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if backend == "auto":
        # TUBELET_RUNTIME says what "auto" means on this machine: the test suite sets "torch" so that each
        # of its hundreds of throwaway data dirs does not convert the encoders anew.
        backend = os.environ.get("TUBELET_RUNTIME", "auto")
    if backend not in BACKENDS:
        raise ConfigError(f"runtime must be one of {', '.join(BACKENDS)}, got {backend!r}")
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
    if backend == "auto":
        use_openvino = dev.type == "cpu" and precision != "fp16" and openvino_installed()
        return Runtime(dev, amp, "openvino", fallback=True) if use_openvino else Runtime(dev, amp)
    if backend == "openvino":
        if dev.type != "cpu":
            raise ConfigError(f"runtime 'openvino' runs on the CPU; device {device!r} was requested")
        if precision == "fp16":
            raise ConfigError("runtime 'openvino' runs fp32 or bf16 on the CPU; fp16 was requested")
        if not openvino_installed():
            raise ConfigError("runtime 'openvino' was requested but the openvino package is not installed")
    return Runtime(dev, amp, backend)
