"""Where weights come from: one place that resolves, downloads, caches and checksums them.

A weights *source* is one of
  - a pretrained tag of the architecture (see `VIDEOMAE2_PRETRAINED`), e.g. `k710-distill`;
  - `hf:OWNER/REPO/PATH/IN/REPO[@REVISION]`, any file on the Hugging Face hub;
  - a local `.pth` / `.pt` / `.bin` / `.safetensors` file;
  - `random` or `random:SEED`: generated, saved in the cache dir and reused, for tests and
    benchmarks only. Never chosen implicitly.
Hub files are downloaded and cached by huggingface_hub (HF_HOME). Nothing here falls back to
another source: a source that cannot be had is a `WeightsError` saying how to provide it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from encoder.errors import WeightsError
from encoder.preprocess import VideoPreprocess
from indexer.atomic import TEMP_NAME, atomic_write, write_text_atomic

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
            "OpenGVLab/VideoMAE2", "distill/vit_s_k710_dl_from_giant.pth", K710_PREPROCESS,
            "ViT-S distilled from ViT-g on Kinetics-710 (44 MB, fp16)"),
    },
    "vit-b": {
        "k710-distill": PretrainedTag(
            "OpenGVLab/VideoMAE2", "distill/vit_b_k710_dl_from_giant.pth", K710_PREPROCESS,
            "ViT-B distilled from ViT-g on Kinetics-710 (174 MB, fp16)"),
        "hybrid-pt": PretrainedTag(
            "OpenGVLab/VideoMAEv2-Base", "model.safetensors", K710_PREPROCESS,
            "ViT-B self-supervised on UnlabeledHybrid, encoder only (CC-BY-NC-4.0)"),
    },
    "vit-l": {
        "hybrid-pt": PretrainedTag(
            "OpenGVLab/VideoMAEv2-Large", "model.safetensors", K710_PREPROCESS,
            "ViT-L self-supervised on UnlabeledHybrid, encoder only (CC-BY-NC-4.0)"),
    },
    "vit-h": {
        "hybrid-pt": PretrainedTag(
            "OpenGVLab/VideoMAEv2-Huge", "model.safetensors", K710_PREPROCESS,
            "ViT-H self-supervised on UnlabeledHybrid, encoder only (CC-BY-NC-4.0)"),
    },
    "vit-g": {
        "hybrid-pt": PretrainedTag(
            "OpenGVLab/VideoMAEv2-giant", "model.safetensors", K710_PREPROCESS,
            "ViT-g self-supervised on UnlabeledHybrid, encoder only (CC-BY-NC-4.0)"),
    },
}
DEFAULT_TAGS = {"vit-s": "k710-distill", "vit-b": "k710-distill", "vit-l": "hybrid-pt",
                "vit-h": "hybrid-pt", "vit-g": "hybrid-pt"}
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")


@dataclass(frozen=True)
class ResolvedWeights:
    source: str  # canonical source, recorded with the vectors (e.g. "hf:OpenGVLab/VideoMAE2/...")
    path: Path  # local file holding the weights
    sha256: str  # content checksum: the weights' identity
    preprocess: VideoPreprocess  # preprocessing defined with these weights


def default_cache_dir() -> Path:
    return Path(os.environ.get("TUBELET_CACHE", Path.home() / ".cache" / "tubelet"))


def valid_sources(variant: str) -> str:
    tags = ", ".join(VIDEOMAE2_PRETRAINED.get(variant, {})) or "none for this variant"
    return (f"pretrained tags: {tags}; hf:OWNER/REPO/FILE; a local {'/'.join(CHECKPOINT_SUFFIXES)} "
            "file; or 'random' (tests and benchmarks only)")


def resolve_videomae2_weights(variant: str, source: str | None, cache_dir: Path) -> ResolvedWeights:
    """Turn a user's `--weights` value into a local, checksummed file. Downloads if needed."""
    tags = VIDEOMAE2_PRETRAINED.get(variant, {})
    if source in (None, "", "default"):
        if variant not in DEFAULT_TAGS:
            raise WeightsError(f"VideoMAE v2 {variant!r} has no published weights; pass --weights "
                               f"with a local checkpoint or 'random'. Valid: {valid_sources(variant)}")
        source = DEFAULT_TAGS[variant]
    if source in tags:
        tag = tags[source]
        path = download_hub_file(tag.repo, tag.filename, revision=None)
        return _resolved(f"hf:{tag.repo}/{tag.filename}", path, tag.preprocess, cache_dir)
    return _resolve_file_source(source, default_preprocess(variant), cache_dir, "--weights",
                                lambda seed: random_weights_file(variant, seed, cache_dir),
                                f"weights {source!r} for {variant!r}", valid_sources(variant))


def _resolve_file_source(source: str, preprocess, cache_dir: Path, flag: str, make_random,
                         what: str, valid: str) -> ResolvedWeights:
    """The sources every tower shares: hf:OWNER/REPO/FILE, random[:SEED], a local file."""
    if source.startswith("hf:"):
        repo, filename, revision = parse_hub_source(source)
        return _resolved(source, download_hub_file(repo, filename, revision, flag), preprocess, cache_dir)
    if source == "random" or source.startswith("random:"):
        seed = _parse_seed(source)
        remove_stale_temp_files(Path(cache_dir))  # a writer killed mid-way left its temp file
        return _resolved(f"random:{seed}", make_random(seed), preprocess, cache_dir)
    path = Path(source).expanduser()
    if not path.is_file():
        raise WeightsError(f"{what}: no such file. Valid sources: {valid}")
    if path.suffix not in CHECKPOINT_SUFFIXES:
        raise WeightsError(f"weights file {str(path)!r} has suffix {path.suffix!r}; expected one of "
                           f"{', '.join(CHECKPOINT_SUFFIXES)}")
    return _resolved(str(path.resolve()), path.resolve(), preprocess, cache_dir)


def default_preprocess(variant: str) -> VideoPreprocess:
    """Preprocessing for weights that do not define their own: the K710 recipe at the model's size."""
    from encoder.videomae2 import variant_config

    return replace(K710_PREPROCESS, size=variant_config(variant).img_size)


def _resolved(source: str, path: Path, preprocess: VideoPreprocess, cache_dir: Path) -> ResolvedWeights:
    return ResolvedWeights(source, path, file_sha256(path, cache_dir), preprocess)


def _parse_seed(source: str) -> int:
    _, _, seed = source.partition(":")
    try:
        return int(seed or 0)
    except ValueError:
        raise WeightsError(f"random weights seed must be an integer, got {source!r}") from None


def parse_hub_source(source: str) -> tuple[str, str, str | None]:
    spec, _, revision = source[len("hf:"):].partition("@")
    parts = spec.strip("/").split("/")
    if len(parts) < 3:
        raise WeightsError(f"hub source {source!r} must look like hf:OWNER/REPO/PATH/IN/REPO[@REVISION]")
    return "/".join(parts[:2]), "/".join(parts[2:]), revision or None


def download_hub_file(repo: str, filename: str, revision: str | None, flag: str = "--weights") -> Path:
    """Cached copy first (no network), then the hub; a clear error if neither works."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    cache = hub_cache_dir()
    try:
        return Path(hf_hub_download(repo, filename, revision=revision, cache_dir=cache, local_files_only=True))
    except LocalEntryNotFoundError:
        pass  # not cached yet: download below
    try:
        return Path(hf_hub_download(repo, filename, revision=revision, cache_dir=cache))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        raise WeightsError(
            f"could not get {filename!r} from the Hugging Face hub repo {repo!r} and it is not in "
            f"the local cache ({type(exc).__name__}). Download it where the hub is reachable "
            f"(https://huggingface.co/{repo}/blob/main/{filename}) and pass the file with "
            f"{flag} /path/to/{Path(filename).name}, or copy a populated HF_HOME cache here."
        ) from exc


def hub_cache_dir() -> Path:
    """huggingface_hub's cache, read from the environment at call time (it reads it at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"


# ----------------------------------------------------------------------------------------------
# Reading checkpoint files

def read_checkpoint(path: Path) -> dict:
    """Load a checkpoint's top-level dict without executing code (weights_only / safetensors)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch/safetensors raise many types for a bad file; re-raised with context
        raise WeightsError(f"cannot read weights file {str(path)!r}: {exc}") from exc


def random_weights_file(variant: str, seed: int, cache_dir: Path) -> Path:
    """Seeded random VideoMAE v2 weights, written once (atomically) and reused by every process."""
    from safetensors.torch import save_file

    from encoder.videomae2 import VideoMAE2, variant_config

    path = Path(cache_dir) / f"random-videomae2-{variant}-seed{seed}.safetensors"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    model = VideoMAE2(variant_config(variant)).init_random_(seed)
    with atomic_write(path) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    return path


# ----------------------------------------------------------------------------------------------
# Checksums. Resolving uses a cache keyed by path, size, mtime, inode and ctime (hashing a
# multi-GB checkpoint on every resolve is slow; ctime changes on any write, even one that puts
# size and mtime back). The cache only names the weights: loading them hashes the bytes for real
# (`verify_weights`, once per load, so at least once per process), and so does `status --check`.

def file_sha256(path: Path, cache_dir: Path) -> str:
    stat = path.stat()
    cache_file = Path(cache_dir) / "checksums.json"
    key = str(path.resolve())
    cache = _read_json(cache_file)
    entry = cache.get(key)
    if isinstance(entry, dict) and entry == _cache_entry(stat, entry.get("sha256")):
        return entry["sha256"]
    digest = sha256_file(path)
    cache[key] = _cache_entry(stat, digest)
    try:
        _write_json_atomic(cache_file, cache)
    except OSError:
        pass  # a read-only data dir: the cache only saves time, the checksum above is right
    return digest


def _cache_entry(stat: os.stat_result, sha256: str | None) -> dict:
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "inode": stat.st_ino,
            "ctime_ns": stat.st_ctime_ns, "sha256": sha256}


def sha256_file(path: Path) -> str:
    """The real checksum of a file's bytes (no cache)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checksum_mismatch(path: Path, actual: str, expected: str) -> WeightsError:
    return WeightsError(
        f"weights file {str(path)!r} is damaged or was replaced: its sha256 is {actual[:12]}, but this "
        f"index's vectors were made with {expected[:12]}. Restore the original file (a downloaded or "
        "'random' file can be deleted, to be fetched or generated again), or re-embed everything with "
        "these weights: `run.py index PATH --rebuild ...`")


def verify_weights(weights: ResolvedWeights) -> None:
    """Hash the file for real before its bytes are used; a mismatch is a WeightsError naming it."""
    try:
        actual = sha256_file(weights.path)
    except OSError as exc:
        raise WeightsError(f"cannot read weights file {str(weights.path)!r}: {exc.strerror or exc}") from exc
    if actual != weights.sha256:
        raise checksum_mismatch(weights.path, actual, weights.sha256)


# ----------------------------------------------------------------------------------------------
# Temporary files of writers that died (a kill during random-weights generation)

STALE_TEMP_SECONDS = 24 * 3600  # a temp file this old is stale even if its pid was reused since


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete temp files whose writer is gone (or that are a day old); return what was deleted."""
    removed = []
    for path in folder.glob(".*.tmp*") if folder.is_dir() else ():
        match = TEMP_NAME.match(path.name)
        if match is None or int(match.group(1)) == os.getpid():
            continue
        try:
            old = time.time() - path.stat().st_mtime > STALE_TEMP_SECONDS
        except FileNotFoundError:
            continue  # its writer just renamed it into place
        if old or not _process_alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return {}  # a missing or torn cache only costs a re-hash
    return data if isinstance(data, dict) else {}


def _write_json_atomic(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=1))


def with_overrides(weights: ResolvedWeights, **preprocess_overrides) -> ResolvedWeights:
    """Same weights with some preprocessing fields changed (e.g. a user's frame interval)."""
    changes = {k: v for k, v in preprocess_overrides.items() if v is not None}
    return replace(weights, preprocess=replace(weights.preprocess, **changes))


# ----------------------------------------------------------------------------------------------
# open_clip image/text tower weights

def resolve_clip_weights(model_name: str, source: str | None, cache_dir: Path) -> ResolvedWeights:
    """Resolve `--clip-weights`: an open_clip pretrained tag, hf:..., a local file, or random."""
    import open_clip

    from encoder.clip import DEFAULT_CLIP_TAGS, clip_preprocess, register_tubelet_configs

    register_tubelet_configs()
    if open_clip.get_model_config(model_name) is None:
        raise WeightsError(f"unknown open_clip model {model_name!r}; see open_clip.list_models()")
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if source and source.startswith("open_clip:"):  # the canonical form recorded with vectors
        named_model, _, source = source[len("open_clip:"):].partition("/")
        if named_model != model_name:
            raise WeightsError(f"CLIP weights {source!r} belong to {named_model!r}, not {model_name!r}")
    if source in (None, "", "default"):
        if model_name not in DEFAULT_CLIP_TAGS:
            raise WeightsError(f"no default weights for open_clip {model_name!r}; pass --clip-weights "
                               f"with one of: {', '.join(tags) or 'a local file or random'}")
        source = DEFAULT_CLIP_TAGS[model_name]
    if source in tags:
        tag_cfg = open_clip.pretrained.get_pretrained_cfg(model_name, source)
        path = _download_clip_tag(model_name, source, tag_cfg)
        return _resolved(f"open_clip:{model_name}/{source}", path, clip_preprocess(model_name, tag_cfg), cache_dir)
    return _resolve_file_source(source, clip_preprocess(model_name), cache_dir, "--clip-weights",
                                lambda seed: random_clip_weights_file(model_name, seed, cache_dir),
                                f"CLIP weights {source!r} for {model_name!r}",
                                f"open_clip tags {', '.join(tags) or '(none)'}; hf:OWNER/REPO/FILE; "
                                "a local file; random")


def _download_clip_tag(model_name: str, tag: str, tag_cfg: dict) -> Path:
    hub = (tag_cfg.get("hf_hub") or "").strip("/")
    if not hub:
        raise WeightsError(f"open_clip {model_name}/{tag} is not on the Hugging Face hub; download it "
                           f"from {tag_cfg.get('url')} and pass the file with --clip-weights PATH")
    try:
        return download_hub_file(hub, "open_clip_model.safetensors", None, "--clip-weights")
    except WeightsError as first:
        try:
            return download_hub_file(hub, "open_clip_pytorch_model.bin", None, "--clip-weights")
        except WeightsError:
            raise first from None


def random_clip_weights_file(model_name: str, seed: int, cache_dir: Path) -> Path:
    """Seeded random open_clip weights, written once (atomically) and reused by every process."""
    import open_clip
    from safetensors.torch import save_file

    path = Path(cache_dir) / f"random-openclip-{model_name}-seed{seed}.safetensors"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.create_model(model_name, pretrained=None)
    with atomic_write(path) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    return path
