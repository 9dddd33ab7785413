"""One line describing the machine a benchmark ran on: results differ several-fold between CPUs
(fp32 ViT-S takes ~1 s per clip with AVX2 alone, ~0.15 s in bf16 with AMX; bench/RESULTS.md)."""

from __future__ import annotations

import os
import platform

import torch


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine() -> str:
    cores = len(os.sched_getaffinity(0))
    bf16 = (
        "AMX"
        if torch.cpu._is_amx_tile_supported()
        else ("AVX512-BF16" if torch.cpu._is_avx512_bf16_supported() else "none")
    )
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"machine: {cpu_model()}, {cores} cores, torch {torch.__version__} "
        f"({torch.backends.cpu.get_cpu_capability()}, native bf16: {bf16}, "
        f"{torch.get_num_threads()} threads), GPU: {gpu}"
    )
