"""The towers through ONNX Runtime, for the runtime table only (bench/runtime_table.py): Tubelet runs its
towers on the CPU through OpenVINO, chosen by measurement, and this is the other half of that measurement.

Each tower's module is the one the OpenVINO path converts (`RawClipFeatures` for VideoMAE v2, open_clip's
`encode_image` / `encode_text`), exported with `torch.onnx.export` at the timed input's shape and wrapped
in the product's converted-tower classes, so preprocessing and pooling are the same code as OpenVINO's
rows and only the runtime differs. fp32 only: ONNX Runtime's CPU provider has no bf16 kernels for these
graphs' matrix products. Needs `pip install onnxruntime onnx onnxscript` (not a Tubelet dependency).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from encoder.factory import ConvertedVideoEncoder, RawClipFeatures, VideoEncoderSpec, build_videomae2
from encoder.image_text import ConvertedImageTextTower, ImageTextTowerSpec, _Encode
from encoder.runtime import Runtime

ONNX_RUNTIME = Runtime(torch.device("cpu"), None, "onnxruntime")


def available() -> bool:
    return all(importlib.util.find_spec(name) for name in ("onnxruntime", "onnx", "onnxscript"))


class OnnxPart:
    """A module exported at `example`'s shape and run by ONNX Runtime: numpy in, float32 numpy out."""

    def __init__(self, module: torch.nn.Module, example: torch.Tensor, path: Path):
        import onnxruntime

        with torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(module.eval(), (example,), str(path), input_names=["x"], dynamo=True)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # as many as the torch and OpenVINO rows use
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {"x": np.ascontiguousarray(x)})[0], dtype=np.float32)


def video_encoder(spec: VideoEncoderSpec, clips: np.ndarray, folder: Path) -> ConvertedVideoEncoder:
    """VideoMAE v2 through ONNX Runtime, exported for as many uint8 clips as `clips` holds, at its size."""
    module = RawClipFeatures(build_videomae2(spec.variant, spec.weights), spec.preprocess)
    size = spec.preprocess.size  # the tower resizes other sizes first
    example = torch.zeros((*clips.shape[:2], size, size, 3), dtype=torch.uint8)
    part = OnnxPart(module, example, folder / f"{spec.variant}.onnx")
    return ConvertedVideoEncoder(spec, part, ONNX_RUNTIME)


def image_text_tower(spec: ImageTextTowerSpec, frames: int, texts: list[str], folder: Path) -> ConvertedImageTextTower:
    """open_clip through ONNX Runtime: the image encoder exported for `frames` images, the text encoder
    for `texts` (tokenised), both from the fp32 torch model."""
    torch_tower = spec.load("cpu", "fp32", "torch")
    images = torch.randn(frames, 3, spec.size, spec.size)
    image = OnnxPart(_Encode(torch_tower.model, "encode_image"), images, folder / "image.onnx")
    text = OnnxPart(_Encode(torch_tower.model, "encode_text"), torch_tower.tokenizer(texts), folder / "text.onnx")
    return ConvertedImageTextTower(spec, image, text, torch_tower.tokenizer, ONNX_RUNTIME)
