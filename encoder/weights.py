"""Where weights come from: what every tower shares to resolve, download, cache and checksum them.

A weights *source* is one of
  - a pretrained tag of the tower, e.g. `k710-distill` (VideoMAE v2 tags: `encoder/videomae2_weights.py`;
    open_clip tags: `encoder/image_text.py`);
  - `hf:OWNER/REPO/PATH/IN/REPO[@REVISION]`, any file on the Hugging Face hub;
  - a local `.pth` / `.pt` / `.bin` / `.safetensors` file;
  - `random` or `random:SEED`: generated, saved in the cache dir and reused, for tests and
    benchmarks only. Never chosen implicitly.
Hub files are downloaded and cached by huggingface_hub (HF_HOME). Nothing here falls back to
another source: a source that cannot be had is a `WeightsError` saying how to provide it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from encoder.errors import WeightsError
from encoder.offline import HubFile, HubUnreachableError, offline_mode, unreachable_reason
from encoder.preprocess import ImagePreprocess, VideoPreprocess
from indexer.atomic import TEMP_NAME, atomic_write, write_text_atomic
from indexer.files import sha256_file

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")


@dataclass(frozen=True)
class ResolvedWeights:
    source: str  # canonical source, recorded with the vectors (e.g. "hf:OpenGVLab/VideoMAE2/...")
    path: Path  # local file holding the weights
    sha256: str  # content checksum: the weights' identity
    preprocess: VideoPreprocess | ImagePreprocess  # preprocessing defined with these weights


def default_cache_dir() -> Path:
    return Path(os.environ.get("TUBELET_CACHE", Path.home() / ".cache" / "tubelet"))


def resolve_file_source(
    source: str, preprocess, cache_dir: Path, flag: str, make_random: Callable[[int], Path], what: str, valid: str
) -> ResolvedWeights:
    """The sources every tower shares: hf:OWNER/REPO/FILE, random[:SEED], a local file."""
    if source.startswith("hf:"):
        repo, filename, revision = parse_hub_source(source)
        return resolved_weights(source, download_hub_file(repo, filename, revision, flag), preprocess, cache_dir)
    if source == "random" or source.startswith("random:"):
        seed = _parse_seed(source)
        remove_stale_temp_files(Path(cache_dir))  # a writer killed mid-way left its temp file
        return resolved_weights(f"random:{seed}", make_random(seed), preprocess, cache_dir)
    path = Path(source).expanduser()
    if not path.is_file():
        raise WeightsError(f"{what}: no such file. Valid sources: {valid}")
    if path.suffix not in CHECKPOINT_SUFFIXES:
        raise WeightsError(
            f"weights file {str(path)!r} has suffix {path.suffix!r}; expected one of {', '.join(CHECKPOINT_SUFFIXES)}"
        )
    return resolved_weights(str(path.resolve()), path.resolve(), preprocess, cache_dir)


def resolved_weights(
    source: str, path: Path, preprocess: VideoPreprocess | ImagePreprocess, cache_dir: Path
) -> ResolvedWeights:
    """`path` named by `source`, with its checksum (cached: see `file_sha256`)."""
    return ResolvedWeights(source, path, file_sha256(path, cache_dir), preprocess)


def _parse_seed(source: str) -> int:
    _, _, seed = source.partition(":")
    try:
        return int(seed or 0)
    except ValueError:
        raise WeightsError(f"random weights seed must be an integer, got {source!r}") from None


def parse_hub_source(source: str) -> tuple[str, str, str | None]:
    spec, _, revision = source[len("hf:") :].partition("@")
    parts = spec.strip("/").split("/")
    if len(parts) < 3:
        raise WeightsError(f"hub source {source!r} must look like hf:OWNER/REPO/PATH/IN/REPO[@REVISION]")
    return "/".join(parts[:2]), "/".join(parts[2:]), revision or None


def download_hub_file(
    repo: str, filename: str, revision: str | None, flag: str = "--weights", fallbacks: tuple[str, ...] = ()
) -> Path:
    """Cached copy first (no network), then the hub; a clear error if neither works. `fallbacks`: other
    names the same weights may have in the repo, tried in order. A hub that cannot be reached is known
    in seconds (`encoder.offline`), before huggingface_hub's retries."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    cache, names = hub_cache_dir(), (filename, *fallbacks)
    for name in names:
        try:
            return Path(hf_hub_download(repo, name, revision=revision, cache_dir=cache, local_files_only=True))
        except LocalEntryNotFoundError:
            pass  # not cached yet: download below
    reason = "HF_HUB_OFFLINE is set" if offline_mode() else unreachable_reason()
    if reason:
        raise HubUnreachableError((HubFile(repo, filename, flag),), reason)
    errors: list[Exception] = []
    for name in names:
        try:
            return Path(hf_hub_download(repo, name, revision=revision, cache_dir=cache))
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
            errors.append(exc)
    raise WeightsError(
        f"could not get {filename!r} from the Hugging Face hub repo {repo!r} and it is not in "
        f"the local cache ({type(errors[0]).__name__}: {errors[0]}). Download it where the hub is reachable "
        f"(https://huggingface.co/{repo}/blob/main/{filename}) and pass the file with "
        f"{flag} /path/to/{Path(filename).name}, or copy a populated HF_HOME cache here."
    ) from errors[0]


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


def write_random_weights(path: Path, make_state: Callable[[], dict]) -> Path:
    """Seeded random weights at `path`, written once (atomically) and reused by every process.

    `make_state` builds the state dict; it runs only when `path` does not exist yet.
    """
    from safetensors.torch import save_file

    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    state = make_state()
    with atomic_write(path) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
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
    with contextlib.suppress(OSError):  # a read-only data dir: the cache only saves time, the digest is right
        _write_json_atomic(cache_file, cache)
    return digest


def _cache_entry(stat: os.stat_result, sha256: str | None) -> dict:
    return {
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "inode": stat.st_ino,
        "ctime_ns": stat.st_ctime_ns,
        "sha256": sha256,
    }


def checksum_mismatch(path: Path, actual: str, expected: str) -> WeightsError:
    return WeightsError(
        f"weights file {str(path)!r} is damaged or was replaced: its sha256 is {actual[:12]}, but this "
        f"index's vectors were made with {expected[:12]}. Restore the original file (a downloaded or "
        "'random' file can be deleted, to be fetched or generated again), or re-embed everything with "
        "these weights: `run.py index PATH --rebuild ...`"
    )


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
