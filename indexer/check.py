"""`status --check` and `--repair`: verify catalog <-> index files <-> footage, rebuild what is derived.

The catalog is the source of truth. Index files, their statistics and thumbnails derive from it
(and from the footage), so repair rebuilds them; it never changes the catalog's videos, clips or
vectors, and never touches the footage.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer import atomic, store, thumbnails
from indexer.catalog import Catalog, CatalogBackendError, DataDirError
from indexer.decode import ClipDecoder, ProbeError, probe
from indexer.records import IMAGE_SET, VIDEO_SET, ClipSampling
from indexer.settings import DataDir


@dataclass
class CheckReport:
    problems: list[str] = field(default_factory=list)  # things that are wrong
    notes: list[str] = field(default_factory=list)  # worth knowing, not wrong
    repaired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        return {"ok": self.ok, "problems": self.problems, "notes": self.notes, "repaired": self.repaired}


def check_library(data: DataDir) -> CheckReport:
    report = CheckReport()
    catalog = Catalog(data.catalog).open()
    try:
        for vset in _vector_sets(catalog):
            _check_index(catalog, vset, data.index_dir, report)
            _check_coverage(catalog, vset, report)
        _check_weights(catalog, data.weights_dir, report)
        _check_files(catalog, report)
        _check_thumbnails(catalog, data.root, report)
        interrupted = [r for r in catalog.runs(1000) if r["status"] == "interrupted"]
        if interrupted:
            report.notes.append(f"{len(interrupted)} index run(s) were interrupted; their finished videos are kept")
    finally:
        catalog.close()
    return report


def _vector_sets(catalog: Catalog) -> list:
    return [vset for name in (VIDEO_SET, IMAGE_SET) if (vset := catalog.vector_set(name)) is not None]


def _check_index(catalog: Catalog, vset, index_dir: Path, report: CheckReport) -> None:
    path = store.index_path(index_dir, vset)
    if not path.is_file() or not store.stats_path(path).is_file():
        report.problems.append(f"{vset.name} index file {path.name} (or its statistics) is missing or stale")
        return
    try:
        loaded = store.read_index(path, vset)
    except store.DamagedIndexFile as exc:
        report.problems.append(
            f"{vset.name} index file {path.name} is damaged: {exc}; searching rebuilds it "
            "in memory, `status --repair` or the next index run rebuilds it on disk"
        )
        return
    ids = catalog.vector_ids(vset.id)
    indexed = loaded.ids
    if loaded.index.d != vset.dim or not np.array_equal(indexed, ids):
        report.problems.append(
            f"{vset.name} index file holds {loaded.index.ntotal} vectors, the catalog "
            f"{len(ids)} ({len(np.setdiff1d(ids, indexed))} missing, "
            f"{len(np.setdiff1d(indexed, ids))} unknown)"
        )
    for stray in index_dir.glob(f"{vset.name}-*"):
        if stray.name not in (path.name, store.stats_path(path).name) and not stray.name.startswith(path.name + "."):
            report.notes.append(f"stale index file {stray.name}")


def _check_weights(catalog: Catalog, weights_dir: Path, report: CheckReport) -> None:
    """Every tower's weights file hashed for real against the checksum recorded with its vectors."""
    if catalog.vector_set(VIDEO_SET) is None:
        return
    from encoder.errors import WeightsError  # the encoder package imports torch: only --check needs it
    from encoder.weights import verify_weights
    from indexer.towers import towers_from_catalog

    try:
        towers, _ = towers_from_catalog(catalog, weights_dir)
    except WeightsError as exc:
        report.problems.append(str(exc))
        return
    for spec in towers.specs().values():
        try:
            verify_weights(spec.weights)
        except WeightsError as exc:
            report.problems.append(str(exc))


def _check_coverage(catalog: Catalog, vset, report: CheckReport) -> None:
    lacking = catalog.clips_without_vector(vset.id)
    if lacking:
        message = f"{lacking} clips have no {vset.name} vector"
        (report.notes if vset.name == IMAGE_SET else report.problems).append(
            message + ("; run index to add them" if vset.name == IMAGE_SET else "")
        )


def _check_files(catalog: Catalog, report: CheckReport) -> None:
    missing = changed = 0
    for indexed in catalog.indexed_paths():
        try:
            stat = os.stat(indexed.path)
        except OSError:
            missing += 1
            continue
        changed += (stat.st_size, stat.st_mtime_ns) != (indexed.size, indexed.mtime_ns)
    if missing:
        report.notes.append(f"{missing} indexed file(s) missing on disk; the next index run removes them")
    if changed:
        report.notes.append(f"{changed} indexed file(s) changed since indexing; the next index run updates them")


def _missing_thumbnails(catalog: Catalog, root: Path) -> dict[int, list[int]]:
    missing: dict[int, list[int]] = {}
    for clip in catalog.clip_thumbnails():
        if not clip.thumbnail or not (root / clip.thumbnail).is_file():
            missing.setdefault(clip.video_id, []).append(clip.ordinal)
    return missing


def _check_thumbnails(catalog: Catalog, root: Path, report: CheckReport) -> None:
    missing = _missing_thumbnails(catalog, root)
    if missing:
        report.problems.append(f"{sum(map(len, missing.values()))} clip thumbnails are missing")


def repair_library(data: DataDir) -> CheckReport:
    """Rebuild index files and statistics from the catalog, re-make missing thumbnails, tidy up.

    A data dir that cannot be written (full disk, read-only) stops the repair with a DataDirError:
    every write here is atomic, so what was there stays as it was."""
    catalog = Catalog(data.catalog).open()
    try:
        if catalog.read_only:
            raise DataDirError(
                f"cannot repair {data.root}: {catalog.read_only_reason}. Nothing was changed; "
                "free space or fix permissions, then run `status --repair` again"
            )
        return _repair(catalog, data)
    except (OSError, CatalogBackendError) as exc:
        reason = getattr(exc, "strerror", None) or str(getattr(exc, "orig", exc))
        raise DataDirError(
            f"cannot repair {data.root}: {reason}. Nothing indexed was lost (the catalog is "
            "unchanged and searching rebuilds any damaged index in memory); free space or fix "
            "permissions, then run `status --repair` again"
        ) from exc
    finally:
        catalog.close()


def _repair(catalog: Catalog, data: DataDir) -> CheckReport:
    report = CheckReport()
    for vset in _vector_sets(catalog):
        store.build_from_catalog(catalog, vset, 4 << 30, data.index_dir).save(data.index_dir)
        store.remove_stale(data.index_dir, vset)
        report.repaired.append(f"rebuilt the {vset.name} index from {catalog.vector_count(vset.id)} vectors")
    for tmp in data.index_dir.glob(atomic.TEMP_GLOB):
        tmp.unlink(missing_ok=True)
    made = _remake_thumbnails(catalog, data)
    if made:
        report.repaired.append(f"re-made {made} thumbnails")
    return report


def _remake_thumbnails(catalog: Catalog, data: DataDir) -> int:
    missing = _missing_thumbnails(catalog, data.root)
    vset = catalog.vector_set(VIDEO_SET)
    if not missing or vset is None:
        return 0
    sampling = ClipSampling.from_dict(vset.identity["sampling"])
    # Thumbnails come from the largest tower input, as when indexing.
    size = max(int(s.identity["preprocess"]["size"]) for s in (vset, catalog.vector_set(IMAGE_SET)) if s)
    made = 0
    for video_id, ordinals in missing.items():
        files = catalog.video_files(video_id)
        paths = [p for p in files.paths if os.path.exists(p)] if files else []
        if not paths:
            continue
        try:
            decoder = ClipDecoder(Path(paths[0]), probe(Path(paths[0])), sampling, size)
            for clip in decoder.clips():
                if clip.window.ordinal in ordinals:
                    relative = thumbnails.write_thumbnail(
                        data.root, files.fingerprint, clip.window.ordinal, clip.full_frames
                    )
                    catalog.set_thumbnail(video_id, clip.window.ordinal, relative)
                    made += 1
        except ProbeError:
            continue  # the file went bad: the check keeps reporting it
    return made
