"""VideoMAE v2 weights: the published tags, their preprocessing, and seeded random weights.

The generic sources (hf:..., a local file, random) and the checksums are in `encoder/weights.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from encoder.errors import WeightsError
from encoder.preprocess import VideoPreprocess
from encoder.videomae2 import VideoMAE2, variant_config
from encoder.weights import (
    CHECKPOINT_SUFFIXES,
    ResolvedWeights,
    download_hub_file,
    resolve_file_source,
    resolved_weights,
    write_random_weights,
)

# K710 fine-tuned/distilled models and the hybrid pretraining all sample 16 frames every 4th
# frame at 224 px with ImageNet statistics (official `dataset/datasets.py`, `MODEL_ZOO.md`).
K710_PREPROCESS = VideoPreprocess()


@dataclass(frozen=True)
class PretrainedTag:
    repo: str  # Hugging Face repo id
    filename: str  # file inside the repo
    preprocess: VideoPreprocess  # how the weights expect their input
    about: str  # one line for `--help` and error messages


VIDEOMAE2_PRETRAINED: dict[str, dict[str, PretrainedTag]] = {
    "vit-s": {
        "k710-distill": PretrainedTag(
            "OpenGVLab/VideoMAE2",
            "distill/vit_s_k710_dl_from_giant.pth",
            K710_PREPROCESS,
            "ViT-S distilled from ViT-g on Kinetics-710 (44 MB, fp16)",
        ),
    },
    "vit-b": {
        "k710-distill": PretrainedTag(
            "OpenGVLab/VideoMAE2",
            "distill/vit_b_k710_dl_from_giant.pth",
            K710_PREPROCESS,
            "ViT-B distilled from ViT-g on Kinetics-710 (174 MB, fp16)",
        ),
        "hybrid-pt": PretrainedTag(
            "OpenGVLab/VideoMAEv2-Base",
            "model.safetensors",
            K710_PREPROCESS,
            "ViT-B self-supervised on UnlabeledHybrid, encoder only (CC-BY-NC-4.0)",
        ),
    },
    "vit-l": {
        "hybrid-pt": PretrainedTag(
            "OpenGVLab/VideoMAEv2-Large",
            "model.safetensors",
            K710_PREPROCESS,
            "ViT-L self-supervised on UnlabeledHybrid, encoder only (CC-BY-NC-4.0)",
        ),
    },
    "vit-h": {
        "hybrid-pt": PretrainedTag(
            "OpenGVLab/VideoMAEv2-Huge",
            "model.safetensors",
            K710_PREPROCESS,
            "ViT-H self-supervised on UnlabeledHybrid, encoder only (CC-BY-NC-4.0)",
        ),
    },
    "vit-g": {
        "hybrid-pt": PretrainedTag(
            "OpenGVLab/VideoMAEv2-giant",
            "model.safetensors",
            K710_PREPROCESS,
            "ViT-g self-supervised on UnlabeledHybrid, encoder only (CC-BY-NC-4.0)",
        ),
    },
}
DEFAULT_TAGS = {
    "vit-s": "k710-distill",
    "vit-b": "k710-distill",
    "vit-l": "hybrid-pt",
    "vit-h": "hybrid-pt",
    "vit-g": "hybrid-pt",
}


def valid_sources(variant: str) -> str:
    tags = ", ".join(VIDEOMAE2_PRETRAINED.get(variant, {})) or "none for this variant"
    return (
        f"pretrained tags: {tags}; hf:OWNER/REPO/FILE; a local {'/'.join(CHECKPOINT_SUFFIXES)} "
        "file; or 'random' (tests and benchmarks only)"
    )


def resolve_videomae2_weights(variant: str, source: str | None, cache_dir: Path) -> ResolvedWeights:
    """Turn a user's `--weights` value into a local, checksummed file. Downloads if needed."""
    tags = VIDEOMAE2_PRETRAINED.get(variant, {})
    if source in (None, "", "default"):
        if variant not in DEFAULT_TAGS:
            raise WeightsError(
                f"VideoMAE v2 {variant!r} has no published weights; pass --weights "
                f"with a local checkpoint or 'random'. Valid: {valid_sources(variant)}"
            )
        source = DEFAULT_TAGS[variant]
    if source in tags:
        tag = tags[source]
        path = download_hub_file(tag.repo, tag.filename, revision=None)
        return resolved_weights(f"hf:{tag.repo}/{tag.filename}", path, tag.preprocess, cache_dir)
    return resolve_file_source(
        source,
        default_preprocess(variant),
        cache_dir,
        "--weights",
        lambda seed: random_weights_file(variant, seed, cache_dir),
        f"weights {source!r} for {variant!r}",
        valid_sources(variant),
    )


def default_preprocess(variant: str) -> VideoPreprocess:
    """Preprocessing for weights that do not define their own: the K710 recipe at the model's size."""
    return replace(K710_PREPROCESS, size=variant_config(variant).img_size)


def random_weights_file(variant: str, seed: int, cache_dir: Path) -> Path:
    """Seeded random VideoMAE v2 weights, written once (atomically) and reused by every process."""
    path = Path(cache_dir) / f"random-videomae2-{variant}-seed{seed}.safetensors"
    return write_random_weights(path, lambda: VideoMAE2(variant_config(variant)).init_random_(seed).state_dict())
