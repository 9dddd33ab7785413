"""The image-text tower (open_clip): appearance vectors for clips, aligned with text.

A clip's image-text vector is the mean of K evenly spaced frames' image embeddings (K = 4 by
default), re-normalised. The frames are the ones already decoded for VideoMAE v2.

Default model: ViT-B-32-256 `datacomp_s34b_b86k`, the best accuracy/speed trade-off on CPU
among open_clip's pretrained models that we measured: 72.8% ImageNet zero-shot (open_clip
docs/openclip_classification_results.csv), close to ViT-B-16 `datacomp_xl_s13b_b90k` (73.5%)
at 2.2x its CPU throughput (71 vs 32 images/s, bf16 weights, 2 cores; see README).
"""

from __future__ import annotations

import functools
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from encoder.errors import CheckpointError, ConfigError, WeightsError
from encoder.preprocess import ImagePreprocess, normalize_images, to_device
from encoder.runtime import Runtime, pick_runtime
from encoder.tower import FromSpec
from encoder.weights import (
    ResolvedWeights,
    download_hub_file,
    resolve_file_source,
    resolved_weights,
    verify_weights,
    write_random_weights,
)

DEFAULT_IMAGE_TEXT_MODEL = "ViT-B-32-256"
DEFAULT_IMAGE_TEXT_TAGS = {
    "ViT-B-32-256": "datacomp_s34b_b86k",
    "ViT-B-32": "datacomp_xl_s13b_b90k",
    "ViT-B-16": "datacomp_xl_s13b_b90k",
    "ViT-L-14": "datacomp_xl_s13b_b90k",
}
CONFIG_DIR = Path(__file__).parent / "open_clip_configs"  # Tubelet's own architectures (tests)
STREAM_BYTES = 64 << 20  # checkpoint bytes mapped at once while loading open_clip weights


def register_tubelet_configs() -> None:
    """Make `tubelet-tiny-clip` known to open_clip (idempotent)."""
    import open_clip

    if "tubelet-tiny-clip" not in open_clip.list_models():
        open_clip.add_model_config(CONFIG_DIR)


def image_text_input_size(model_name: str) -> int:
    import open_clip

    register_tubelet_configs()
    size = open_clip.get_model_config(model_name)["vision_cfg"]["image_size"]
    return size[0] if isinstance(size, (list, tuple)) else int(size)


def image_text_preprocess(model_name: str, tag_cfg: dict | None = None) -> ImagePreprocess:
    """Input size from the architecture; mean/std from the pretrained tag, else OpenAI's."""
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    tag_cfg = tag_cfg or {}
    return ImagePreprocess(
        size=image_text_input_size(model_name),
        mean=tuple(tag_cfg.get("mean", OPENAI_DATASET_MEAN)),
        std=tuple(tag_cfg.get("std", OPENAI_DATASET_STD)),
    )


class ImageTextTower(FromSpec):
    """A loaded open_clip model: frames and texts in, unit vectors out (a `TextTower`)."""

    def __init__(self, spec: ImageTextTowerSpec, model, tokenizer, runtime: Runtime):
        self.spec = spec
        self.model = model
        self.tokenizer = tokenizer
        self.runtime = runtime
        self._dtype = next(model.parameters()).dtype

    @torch.inference_mode()
    def encode_images(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, S, S, 3) RGB -> float32 (N, D) unit vectors."""
        pre = self.spec.weights.preprocess
        x = normalize_images(to_device(images, self.runtime.device), pre.size, pre.mean, pre.std)
        features = self.model.encode_image(x.to(self._dtype))
        return torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()

    @torch.inference_mode()
    def encode_text(self, texts: list[str]) -> np.ndarray:
        """Strings -> float32 (N, D) unit vectors."""
        tokens = self.tokenizer(texts).to(self.runtime.device)
        features = self.model.encode_text(tokens)
        return torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()

    def embed(self, clips: np.ndarray) -> np.ndarray:
        """uint8 (B, T, S, S, 3) -> (B, D): mean of K evenly spaced frames' vectors, normalised."""
        B, T = clips.shape[:2]
        picks = frame_picks(T, self.spec.frames_per_clip)
        vectors = self.encode_images(clips[:, picks].reshape(B * len(picks), *clips.shape[2:]))
        pooled = vectors.reshape(B, len(picks), -1).mean(axis=1)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


class _Encode(torch.nn.Module):
    """One of open_clip's `encode_image` / `encode_text` as a module's forward: what a runtime converts."""

    def __init__(self, model, method: str):
        super().__init__()
        self.model, self.method = model, method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self.model, self.method)(x)


class ConvertedImageTextTower(FromSpec):
    """open_clip through a converted runtime (OpenVINO): the image and the text encoder (a `TextTower`)."""

    def __init__(self, spec: ImageTextTowerSpec, image_part, text_part, tokenizer, runtime: Runtime):
        self.spec = spec
        self.image_part, self.text_part = image_part, text_part
        self.tokenizer = tokenizer
        self.runtime = runtime

    @torch.inference_mode()
    def encode_images(self, images: np.ndarray) -> np.ndarray:
        pre = self.spec.weights.preprocess
        x = normalize_images(torch.from_numpy(np.ascontiguousarray(images)), pre.size, pre.mean, pre.std)
        return _unit_rows(self.image_part(x.numpy()))

    def encode_text(self, texts: list[str]) -> np.ndarray:
        return _unit_rows(self.text_part(self.tokenizer(texts).numpy()))

    embed = ImageTextTower.embed  # the same pooling of frames' vectors over a clip


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


PROBE_TEXTS = ("a person walking a dog in the park", "a red car at night")  # traces and checks the text encoder


def load_image_text_weights(model: torch.nn.Module, path: Path) -> None:
    """Load an open_clip checkpoint into `model`, casting to the model's dtype.

    A checkpoint whose keys fit the model exactly (open_clip's own releases) is streamed into
    it tensor by tensor: open_clip's loader holds the whole checkpoint beside the model (1.2 GB
    for ViT-B-32-256 in fp32). Torch files are memory-mapped whole, so their pages count in RSS
    until loading ends; safetensors (the hub default) are read in bounded groups. Anything else
    (OpenAI TorchScript files, older layouts, other position-embedding sizes) goes through
    open_clip's loader, which converts those.
    """
    import open_clip

    if _stream_if_exact(model, path):
        return
    try:
        open_clip.load_checkpoint(model, str(path))
    except (RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{path} does not fit open_clip model weights: {exc}") from exc


def _stream_if_exact(model: torch.nn.Module, path: Path) -> bool:
    own = model.state_dict()
    if path.suffix == ".safetensors":
        return _stream_safetensors(own, path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, pickle.UnpicklingError):  # TorchScript or legacy files: not mappable
        return False
    if not isinstance(state, dict):
        return False
    state = state.get("state_dict", state)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if set(state) != set(own):
        return False
    for key, value in state.items():
        own[key].copy_(value)
    return True


def _stream_safetensors(own: dict, path: Path) -> bool:
    """Copy tensors in groups of about STREAM_BYTES, reopening the file between groups.

    safetensors memory-maps the file and every page read stays resident (and counted in RSS)
    until the file is closed; reopening bounds that to one group.
    """
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        if set(handle.keys()) != set(own):
            return False
    keys, done = sorted(own), 0
    while done < len(keys):
        with safe_open(str(path), framework="pt") as handle:
            copied = 0
            while done < len(keys) and copied < STREAM_BYTES:
                tensor = handle.get_tensor(keys[done])
                own[keys[done]].copy_(tensor)
                copied += tensor.nbytes
                done += 1
    return True


def frame_picks(window_frames: int, k: int) -> list[int]:
    """K evenly spaced frame indices out of `window_frames`, first and last included."""
    return np.linspace(0, window_frames - 1, min(k, window_frames)).round().astype(int).tolist()


@dataclass(frozen=True)
class ImageTextTowerSpec:
    """Which open_clip model with which (resolved, checksummed) weights; nothing loaded yet."""

    model_name: str
    weights: ResolvedWeights
    frames_per_clip: int = 4
    tower: str = "open_clip"

    @property
    def dim(self) -> int:
        import open_clip

        return int(open_clip.get_model_config(self.model_name)["embed_dim"])

    @property
    def preprocess(self) -> ImagePreprocess:
        return self.weights.preprocess

    @property
    def size(self) -> int:
        return self.weights.preprocess.size

    def identity(self) -> dict:
        return {
            "tower": self.tower,
            "model": self.model_name,
            "weights": self.weights.source,
            "sha256": self.weights.sha256,
            "preprocess": self.weights.preprocess.to_dict(),
            "frames_per_clip": self.frames_per_clip,
            "dim": self.dim,
        }

    def load(
        self, device: str = "auto", precision: str = "auto", backend: str = "auto", cache_dir: Path | None = None
    ) -> ImageTextTower | ConvertedImageTextTower:
        """The tower on the runtime picked from the arguments (`encoder.runtime.pick_runtime`); a converted
        runtime's models are cached under `cache_dir` (see `encoder.openvino_runtime`)."""
        verify_weights(self.weights)  # the checksum named at resolve time may come from a cache
        from encoder.openvino_runtime import load_on_runtime  # openvino is imported only where it runs

        converted = lambda runtime: self._load_openvino(runtime, cache_dir)  # noqa: E731
        return load_on_runtime(self._load_torch, converted, device, precision, backend)

    def _load_openvino(self, runtime: Runtime, cache_dir: Path | None) -> ConvertedImageTextTower:
        import open_clip

        from encoder.openvino_runtime import Part, load_faithful, probe_batch, runtime_of

        tokenizer = open_clip.get_tokenizer(self.model_name)
        model = functools.cache(lambda: self._load_torch(pick_runtime("cpu", "fp32", "torch")).model)  # built once
        identity = self.identity()
        probe = probe_batch((2, 3, self.size, self.size))
        image = Part("image", identity, lambda: _Encode(model(), "encode_image"), probe)
        text = Part("text", identity, lambda: _Encode(model(), "encode_text"), tokenizer(list(PROBE_TEXTS)))
        image_part, text_part = load_faithful(image, runtime, cache_dir), load_faithful(text, runtime, cache_dir)
        ran = runtime_of(runtime, [image_part, text_part])
        return ConvertedImageTextTower(self, image_part, text_part, tokenizer, ran)

    def _load_torch(self, runtime: Runtime) -> ImageTextTower:
        import open_clip

        model = empty_open_clip_model(self.model_name)
        if runtime.amp_dtype is not None:
            # Converted weights beat autocast at these batch sizes on CPU: ViT-B-32 gave 27-48 img/s in bf16
            # weights against 15-16 in fp32, with bf16 autocast slower still at small batches (2-core AMX CPU).
            model = model.to(runtime.amp_dtype)
        load_image_text_weights(model, self.weights.path)
        tokenizer = open_clip.get_tokenizer(self.model_name)
        return ImageTextTower(self, model.to(runtime.device).eval(), tokenizer, runtime)

    @classmethod
    def from_identity(cls, identity: dict, cache_dir: Path) -> ImageTextTowerSpec:
        """The tower an identity names, checksum not compared (`encoder.registry.spec_from_identity` does)."""
        return resolve_image_text_tower(identity["model"], identity["weights"], cache_dir, identity["frames_per_clip"])


def resolve_image_text_tower(
    model_name: str, weights: str | None, cache_dir: Path, frames_per_clip: int = 4
) -> ImageTextTowerSpec:
    if frames_per_clip < 1:
        raise ConfigError(f"image-text frames per clip must be at least 1, got {frames_per_clip}")
    return ImageTextTowerSpec(
        model_name, resolve_image_text_weights(model_name, weights, Path(cache_dir)), frames_per_clip
    )


# ----------------------------------------------------------------------------------------------
# Where open_clip weights come from (the generic sources are in encoder/weights.py)


def resolve_image_text_weights(model_name: str, source: str | None, cache_dir: Path) -> ResolvedWeights:
    """Resolve `--image-text-weights`: an open_clip pretrained tag, hf:..., a local file, or random."""
    import open_clip

    register_tubelet_configs()
    if open_clip.get_model_config(model_name) is None:
        raise WeightsError(f"unknown open_clip model {model_name!r}; see open_clip.list_models()")
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if source and source.startswith("open_clip:"):  # the canonical form recorded with vectors
        named_model, _, source = source[len("open_clip:") :].partition("/")
        if named_model != model_name:
            raise WeightsError(f"open_clip weights {source!r} belong to {named_model!r}, not {model_name!r}")
    if source in (None, "", "default"):
        if model_name not in DEFAULT_IMAGE_TEXT_TAGS:
            raise WeightsError(
                f"no default weights for open_clip {model_name!r}; pass --image-text-weights "
                f"with one of: {', '.join(tags) or 'a local file or random'}"
            )
        source = DEFAULT_IMAGE_TEXT_TAGS[model_name]
    if source in tags:
        tag_cfg = open_clip.pretrained.get_pretrained_cfg(model_name, source)
        path = _download_open_clip_tag(model_name, source, tag_cfg)
        return resolved_weights(
            f"open_clip:{model_name}/{source}", path, image_text_preprocess(model_name, tag_cfg), cache_dir
        )
    return resolve_file_source(
        source,
        image_text_preprocess(model_name),
        cache_dir,
        "--image-text-weights",
        lambda seed: random_image_text_weights_file(model_name, seed, cache_dir),
        f"open_clip weights {source!r} for {model_name!r}",
        f"open_clip tags {', '.join(tags) or '(none)'}; hf:OWNER/REPO/FILE; a local file; random",
    )


def _download_open_clip_tag(model_name: str, tag: str, tag_cfg: dict) -> Path:
    hub = (tag_cfg.get("hf_hub") or "").strip("/")
    if not hub:
        raise WeightsError(
            f"open_clip {model_name}/{tag} is not on the Hugging Face hub; download it "
            f"from {tag_cfg.get('url')} and pass the file with --image-text-weights PATH"
        )
    return download_hub_file(
        hub, "open_clip_model.safetensors", None, "--image-text-weights", fallbacks=("open_clip_pytorch_model.bin",)
    )


def random_image_text_weights_file(model_name: str, seed: int, cache_dir: Path) -> Path:
    """Seeded random open_clip weights, written once (atomically) and reused by every process."""
    path = Path(cache_dir) / f"random-openclip-{model_name}-seed{seed}.safetensors"
    return write_random_weights(path, lambda: _random_image_text_state(model_name, seed))


class _DropMessage(logging.Filter):
    def __init__(self, start: str):
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.start)


def empty_open_clip_model(model_name: str):
    """The architecture with untrained weights, which Tubelet replaces with its resolved ones right
    after. open_clip logs "No pretrained weights loaded ... initialized randomly" (on the root logger)
    for each such model, which is true of this step but not of the tower: that one record is dropped."""
    import open_clip

    register_tubelet_configs()  # a spec may be loaded in another process than resolved it (a Ray actor)
    quiet = _DropMessage("No pretrained weights loaded")
    root = logging.getLogger()
    root.addFilter(quiet)
    try:
        return open_clip.create_model(model_name, pretrained=None)
    finally:
        root.removeFilter(quiet)


def _random_image_text_state(model_name: str, seed: int) -> dict:

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return empty_open_clip_model(model_name).state_dict()
