"""Towers on the CPU through OpenVINO: a torch module converted once, cached in the data dir, checked.

A *part* is one torch module of a tower (the VideoMAE v2 features, the open_clip image or text
encoder) with the input it is traced with. Its converted copy is keyed by everything that fixes its
output: the tower's identity (architecture, weights sha256, preprocessing), the part, the input
shape, the precision hint, the OpenVINO version and whether the CPU has native bf16. The copy lives
in `DATA/runtime/<key>.xml/.bin` beside a manifest `<key>.json` holding the key, both files' sha256
and the cosine measured against PyTorch fp32 when it was built. A copy whose files are missing or
do not match the manifest is rebuilt, never used: a cached model is exactly the one that was
measured.

Fidelity is part of the identity: vectors from a converted part must match PyTorch fp32 to cosine
>= `MIN_COSINE` on every row of a probe batch, or `UnfaithfulRuntime` is raised (the tower then runs
in PyTorch when the runtime was chosen automatically). So a data dir indexed with one runtime is
searched with another without re-embedding: the runtime is not part of the vector set's identity.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from encoder.errors import EncoderError
from encoder.runtime import Runtime, cpu_has_fast_bf16, pick_runtime
from encoder.runtime_cache import converted_paths
from indexer.atomic import fsync_directory, fsync_file, write_text_atomic

MIN_COSINE = 0.9999  # per probe row, against PyTorch fp32
MANIFEST_VERSION = 1
log = logging.getLogger(__name__)


def import_openvino():
    """The `openvino` module, imported with its model converter's usage telemetry off.

    On import, OpenVINO's converter loads `openvino-telemetry`, which (unless a consent file in the
    user's home says no, or a CI variable is set) writes a client id under ~/intel and reports every
    conversion to Google Analytics, forking the process for each event: 10 forks for one tiny module
    here, and ~27 thread-seconds of a ViT-S + CLIP conversion spent forking a 1 GB process (py-spy,
    bench/RESULTS.md). A self-hosted indexer sends nothing anywhere, so the package is made unimportable
    for this process before openvino is first imported: the converter then uses the no-op stub it ships
    for when the package is absent. Every import of openvino in Tubelet goes through here.
    """
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)  # `import openvino_telemetry` now raises ImportError
    import openvino

    return openvino


class UnfaithfulRuntime(EncoderError):
    """A converted model's vectors differ from PyTorch fp32 by more than `MIN_COSINE` allows."""


@dataclass(frozen=True)
class Part:
    """One torch module of a tower to run through OpenVINO."""

    name: str  # "video", "image", "text"
    identity: dict  # the tower's identity: what determines the module's weights and inputs
    build: Callable[[], torch.nn.Module]  # the fp32 eval-mode module, built only when converting
    probe: torch.Tensor  # a batch (>= 2 rows) to trace and check with; its first dim stays dynamic


class OpenVINOPart:
    """A compiled part: a batch as numpy in, the module's float32 output as numpy out."""

    def __init__(self, compiled, cosine: float, precision: str):
        self.compiled = compiled
        self.precision = precision  # the inference precision hint it was compiled with
        self.cosine = cosine  # the worst probe row's cosine to PyTorch fp32, measured at build time
        # calling a compiled model reuses one infer request, which two threads must not share (concurrent
        # searches in `serve`); OpenVINO already spreads one request over every core
        self._lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            return np.array(self.compiled(np.ascontiguousarray(x))[0], dtype=np.float32)


def cache_key(part: Part, precision: str) -> dict:
    ov = import_openvino()

    return {
        "manifest": MANIFEST_VERSION,
        "runtime": "openvino",
        "openvino": ov.get_version(),
        "part": part.name,
        "tower": part.identity,
        "input": [list(part.probe.shape[1:]), str(part.probe.dtype)],
        "precision": precision,
        "cpu_bf16": cpu_has_fast_bf16(),
    }


def key_digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]


def load_part(part: Part, precision: str, cache_dir: Path | None) -> OpenVINOPart:
    """The part compiled for the CPU at `precision` ("fp32" | "bf16"): from the cache when it holds exactly
    this part, else converted (and cached when `cache_dir` is given). Raises `UnfaithfulRuntime`."""
    ov = import_openvino()

    key = cache_key(part, precision)
    core = ov.Core()
    # No pinning: the decode thread and other processes share these cores (ViT-S bf16 under load 8 on
    # 2 cores: 1532 ms per clip unpinned, 1637 pinned, PyTorch bf16 4261, in one run)
    config = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32", "ENABLE_CPU_PINNING": False}
    cached = _read_cached(core, cache_dir, key) if cache_dir is not None else None
    if cached is not None:
        model, cosine = cached
        compiled = core.compile_model(model, "CPU", config)
    else:
        tower = part.identity.get("tower")
        log.warning("converting the %s %s encoder for OpenVINO (%s), once", tower, part.name, precision)
        module = part.build()
        model = _convert(module, part.probe)
        compiled = core.compile_model(model, "CPU", config)
        cosine = probe_cosine(module, compiled, part.probe)
        if cache_dir is not None:
            _write_cached(cache_dir, key, model, cosine)
    if cosine < MIN_COSINE:
        raise UnfaithfulRuntime(
            f"OpenVINO {precision} {part.name} encoder of {part.identity.get('tower')} reaches cosine {cosine:.6f} "
            f"to PyTorch fp32, below {MIN_COSINE}"
        )
    return OpenVINOPart(compiled, cosine, precision)


def probe_cosine(module: torch.nn.Module, compiled, probe: torch.Tensor) -> float:
    """The worst row's cosine between PyTorch fp32 and the compiled model on `probe`."""
    with torch.inference_mode():
        ref = module(probe).float().numpy()
    out = np.asarray(compiled(probe.numpy())[0], dtype=np.float32)
    return float(row_cosines(ref, out).min())


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _convert(module: torch.nn.Module, probe: torch.Tensor):
    ov = import_openvino()

    shape = ov.PartialShape([-1, *probe.shape[1:]])  # batches of any size
    with warnings.catch_warnings():
        # tracing warns about shape checks inside the modules: the shapes other than the batch are fixed
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)
        with torch.inference_mode(False), torch.no_grad():
            return ov.convert_model(module, example_input=probe[:1], input=[shape])


def _paths(cache_dir: Path, key: dict) -> tuple[Path, Path, Path]:
    return converted_paths(cache_dir, key_digest(key))


def _read_cached(core, cache_dir: Path, key: dict):
    """(model, cosine) when the cache holds exactly this part, else None (then it is rebuilt)."""
    xml, bin_, manifest = _paths(cache_dir, key)
    try:
        record = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("key") != json.loads(json.dumps(key, default=str)):
        return None
    try:
        if _sha256(xml) != record.get("xml_sha256") or _sha256(bin_) != record.get("bin_sha256"):
            log.warning("OpenVINO cache %s does not match its manifest: converting again", xml.name)
            return None
        model = core.read_model(str(xml), str(bin_))
    except (OSError, RuntimeError) as exc:
        log.warning("OpenVINO cache %s unreadable (%s): converting again", xml.name, exc)
        return None
    return model, float(record["cosine"])


def _write_cached(cache_dir: Path, key: dict, model, cosine: float) -> None:
    """Both files renamed into place, then the manifest naming their sha256 (atomically, last): a crash
    between leaves files that no manifest vouches for, which the next load rebuilds."""
    ov = import_openvino()

    xml, bin_, manifest = _paths(cache_dir, key)
    xml.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=xml.parent, prefix=".convert.") as tmp:
        tmp_xml = Path(tmp) / "model.xml"
        ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
        tmp_bin = tmp_xml.with_suffix(".bin")
        for src, dst in ((tmp_xml, xml), (tmp_bin, bin_)):
            fsync_file(src)
            os.replace(src, dst)
    fsync_directory(xml.parent)
    record = {"key": key, "xml_sha256": _sha256(xml), "bin_sha256": _sha256(bin_), "cosine": cosine}
    write_text_atomic(manifest, json.dumps(record, indent=1, sort_keys=True, default=str))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_faithful(part: Part, runtime: Runtime, cache_dir: Path | None) -> OpenVINOPart:
    """`load_part` at the runtime's precision; when the runtime was picked automatically and bf16 is not
    faithful for this part, fp32 (a slower OpenVINO still beats PyTorch fp32)."""
    precision = "bf16" if runtime.amp_dtype == torch.bfloat16 else "fp32"
    try:
        return load_part(part, precision, cache_dir)
    except UnfaithfulRuntime as exc:
        if not runtime.fallback or precision == "fp32":
            raise
        log.warning("%s; using fp32", exc)
        return load_part(part, "fp32", cache_dir)


def runtime_of(runtime: Runtime, parts: list[OpenVINOPart]) -> Runtime:
    """The runtime the parts run at: bf16 only when every part is."""
    bf16 = all(part.precision == "bf16" for part in parts)
    return replace(runtime, amp_dtype=torch.bfloat16 if bf16 else None)


def load_or_fall_back(runtime: Runtime, convert: Callable[[], object], in_torch: Callable[[Runtime], object]):
    """`convert()` (the OpenVINO tower); when the runtime was picked automatically and the converted copy is
    not faithful, the PyTorch tower instead, with a warning. An explicit `--runtime openvino` fails then."""
    try:
        return convert()
    except UnfaithfulRuntime as exc:
        if not runtime.fallback:
            raise
        log.warning("%s; running it in PyTorch", exc)
        return in_torch(runtime.as_torch())


def probe_batch(shape: tuple[int, ...]) -> torch.Tensor:
    """A fixed pseudo-random batch (the same in every process) to trace and check a part with."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


def probe_clips(shape: tuple[int, ...]) -> torch.Tensor:
    """A fixed pseudo-random batch of uint8 pixels (the same in every process), for parts taking raw clips."""
    return torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def load_on_runtime(load_torch, load_converted, device: str, precision: str, backend: str):
    """A tower on the runtime picked from the arguments (`pick_runtime`): `load_converted(runtime)` for a
    converted runtime, which falls back to `load_torch` when the conversion is not faithful
    (`load_or_fall_back`); else `load_torch(runtime)`."""
    runtime = pick_runtime(device, precision, backend)
    if runtime.backend == "openvino":
        return load_or_fall_back(runtime, lambda: load_converted(runtime), load_torch)
    return load_torch(runtime)
