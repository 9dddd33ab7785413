"""Converted encoders cached in the data dir (DATA/runtime): where each one lives, and sweeping the ones that
no vector set uses any more. Torch-free: `status` and the sweep read manifests without loading a model.

Layout (written by encoder/openvino_runtime.py): `<digest>.xml` and `<digest>.bin`, the converted model,
and `<digest>.json`, its manifest: the key it was built for (`key["tower"]` is the tower's identity
without its sampling, `tower_identity`) and both files' sha256. A model file no manifest vouches for is
never loaded, so the manifest is removed first.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


def converted_paths(cache_dir: Path, digest: str) -> tuple[Path, Path, Path]:
    """(model xml, weights bin, manifest json) of the cache entry named `digest`."""
    stem = Path(cache_dir) / digest
    return stem.with_suffix(".xml"), stem.with_suffix(".bin"), stem.with_suffix(".json")


def tower_identity(set_identity: dict) -> dict:
    """What a converted model is keyed by: a vector set's identity without its sampling (the indexer's)."""
    return {k: v for k, v in set_identity.items() if k != "sampling"}


def manifests(cache_dir: Path) -> Iterator[tuple[Path, dict]]:
    """Each readable manifest and its record, by file name; damaged or foreign files are passed over (a
    damaged entry is rebuilt by the next load that needs it)."""
    for path in sorted(Path(cache_dir).glob("*.json")):
        try:
            record = json.loads(path.read_text())
            if isinstance(record, dict) and isinstance(record.get("key"), dict) and "tower" in record["key"]:
                yield path, record
        except (OSError, ValueError):
            continue


def sweep(cache_dir: Path, set_identities: list[dict]) -> list[Path]:
    """Remove the converted models of towers that are no vector set's (after `--rebuild` with another
    encoder, or `drop-set`); those of every remaining set, old ones included, are kept. The files removed."""
    kept = [tower_identity(identity) for identity in set_identities]
    removed = []
    for manifest, record in manifests(cache_dir):
        if record["key"]["tower"] in kept:
            continue
        xml, bin_, _ = converted_paths(cache_dir, manifest.stem)
        for path in (manifest, xml, bin_):  # the manifest first: then nothing vouches for the rest
            try:
                path.unlink()
                removed.append(path)
            except FileNotFoundError:
                continue
            except OSError as exc:  # left for the next sweep: what was indexed is not at stake
                log.warning("could not remove %s, a converted encoder no vector set uses: %s", path, exc)
    if removed:
        log.info("removed %d converted-encoder files no vector set uses from %s", len(removed), cache_dir)
    return removed
