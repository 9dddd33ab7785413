"""An index run: scan -> plan -> path updates -> decode + embed new content -> rebuild FAISS.

Each stage is a plain function or a small object over plain records, so the same stages can run
under another engine. Crash safety comes from the catalog: a video's clips and vectors are
committed in one transaction after it is fully embedded, so an interrupted run resumes with
the videos it had not finished.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from encoder.factory import VideoEncoder, VideoEncoderSpec, resolve_video_encoder
from indexer import store
from indexer.catalog import Catalog, VectorSetInfo
from indexer.decode import ClipDecoder, ProbeError, probe
from indexer.fingerprint import content_fingerprint
from indexer.lock import IndexLock
from indexer.plan import EmbedTask, Plan, plan_changes
from indexer.records import ClipSampling, ClipWindow, Failure, IndexReport, ScannedFile, VideoInfo
from indexer.scan import scan_roots
from indexer.settings import IndexSettings

VIDEO_SET = "video"  # name of the VideoMAE v2 vector set


class Progress(Protocol):
    def update(self, n: float) -> None: ...
    def set_postfix_str(self, s: str) -> None: ...
    def close(self) -> None: ...


class _NoProgress:
    def update(self, n: float) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass

    def close(self) -> None:
        pass


ProgressFactory = Callable[[int], Progress]  # total bytes to process -> progress bar


def sampling_for(spec: VideoEncoderSpec, stride_frames: int | None) -> ClipSampling:
    pre = spec.weights.preprocess
    return ClipSampling(pre.num_frames, pre.frame_interval, stride_frames)


def vector_set_identity(spec: VideoEncoderSpec, sampling: ClipSampling) -> dict:
    return {**spec.identity(), "sampling": sampling.to_dict()}


@dataclass
class EmbeddedVideo:
    info: VideoInfo
    windows: list[ClipWindow]
    vectors: np.ndarray  # (n, D) float32
    stats: dict  # duration, frames, warning


class Indexer:
    """Cheap to construct; `run(roots)` does the work."""

    def __init__(self, settings: IndexSettings, catalog: Catalog,
                 progress: ProgressFactory = lambda total: _NoProgress()):
        self.settings = settings
        self.catalog = catalog
        self.progress = progress
        self._encoder: VideoEncoder | None = None

    def run(self, roots: list[Path]) -> IndexReport:
        started = time.monotonic()
        data = self.settings.data
        with IndexLock(data.lock_file):
            spec = self._resolve_spec()
            sampling = sampling_for(spec, self.settings.stride_frames)
            if self.settings.rebuild:
                self.catalog.reset_embeddings()
            vset = self.catalog.ensure_vector_set(VIDEO_SET, vector_set_identity(spec, sampling), spec.dim)
            run_id = self.catalog.start_run([str(r) for r in roots])
            report = IndexReport()
            try:
                plan = self._plan(roots, report)
                self._apply_path_changes(plan, report)
                self._embed_all(plan.embed, spec, sampling, vset, report)
                self._refresh_index(VIDEO_SET)
            except BaseException:
                report.seconds = time.monotonic() - started
                self.catalog.finish_run(run_id, "failed", report.to_json())
                raise
            report.files.failed = len(report.failures)
            report.seconds = time.monotonic() - started
            self.catalog.finish_run(run_id, "done", report.to_json())
            return report

    def _resolve_spec(self) -> VideoEncoderSpec:
        enc = self.settings.encoder
        return resolve_video_encoder(enc.variant, enc.weights, self.settings.data.weights_dir,
                                     self.settings.window_frames, self.settings.frame_interval)

    # -- planning -------------------------------------------------------------------------------
    def _plan(self, roots: list[Path], report: IndexReport) -> Plan:
        roots = [Path(os.path.abspath(r)) for r in roots]
        scan = scan_roots(roots, exclude=[self.settings.data.root])
        report.failures.extend(scan.failures)
        report.files.skipped += scan.skipped
        fingerprint_failures: list[Failure] = []

        def fingerprint(f: ScannedFile) -> str:
            try:
                return content_fingerprint(f.path)
            except OSError as exc:  # unreadable: planned as new, reported when embedding
                fingerprint_failures.append(Failure(str(f.path), f"cannot read file: {exc.strerror}"))
                return f"unreadable:{f.path}"

        plan = plan_changes(scan.files, roots, self.catalog.known_paths(),
                            self.catalog.videos_by_fingerprint(), fingerprint,
                            self.settings.retry_failed)
        unreadable = {f.path for f in fingerprint_failures}
        plan.embed = [t for t in plan.embed if str(t.file.path) not in unreadable]
        report.failures.extend(fingerprint_failures)
        report.failures.extend(Failure(str(f.path), k.error or "failed") for f, k in plan.known_failed)
        return plan

    def _apply_path_changes(self, plan: Plan, report: IndexReport) -> None:
        if plan.touched:
            self.catalog.touch_paths(plan.touched)
        relinks = plan.moved + plan.copies + plan.relinked
        if relinks:
            self.catalog.add_paths(relinks, replacing=plan.vacated)
        if plan.deleted:
            self.catalog.remove_paths(plan.deleted)
        counts = report.files
        counts.unchanged += len(plan.unchanged)
        counts.moved += len(plan.moved)
        counts.new += len(plan.copies)
        counts.changed += len(plan.relinked)
        counts.deleted += len(plan.deleted)

    # -- embedding ------------------------------------------------------------------------------
    def _embed_all(self, tasks: list[EmbedTask], spec: VideoEncoderSpec, sampling: ClipSampling,
                   vset: VectorSetInfo, report: IndexReport) -> None:
        bar = self.progress(sum(t.file.size for t in tasks))
        try:
            for task in tasks:
                self._embed_one(task, spec, sampling, vset, report, bar)
        finally:
            bar.close()

    def _embed_one(self, task: EmbedTask, spec: VideoEncoderSpec, sampling: ClipSampling,
                   vset: VectorSetInfo, report: IndexReport, bar: Progress) -> None:
        f = task.file
        bar.set_postfix_str(f.path.name[-40:])
        try:
            result = self._embed_file(f, spec, sampling, bar)
        except ProbeError as exc:
            bar.update(f.size)
            self.catalog.record_failure(f, task.fingerprint, str(exc))
            report.failures.append(Failure(str(f.path), str(exc)))
            return
        self.catalog.store_video(f, task.fingerprint, result.info, result.stats, result.windows,
                                 {vset.id: result.vectors})
        report.clips_embedded += len(result.windows)
        if result.stats.get("warning"):
            report.warnings.append(Failure(str(f.path), result.stats["warning"]))
        if task.reason == "new":
            report.files.new += 1
        else:
            report.files.changed += 1

    def _embed_file(self, f: ScannedFile, spec: VideoEncoderSpec, sampling: ClipSampling,
                    bar: Progress) -> EmbeddedVideo:
        info = probe(f.path)
        decoder = ClipDecoder(f.path, info, sampling, spec.weights.preprocess.size)
        encoder = self._load_encoder(spec)
        windows: list[ClipWindow] = []
        vectors: list[np.ndarray] = []
        batch = []
        reported = 0.0
        for clip in decoder.clips():
            batch.append(clip)
            if len(batch) == self.settings.batch_size:
                vectors.append(encoder.embed(np.stack([c.frames for c in batch])))
                windows.extend(c.window for c in batch)
                batch = []
            if info.duration:
                done = min(1.0, clip.window.end / info.duration) * f.size
                bar.update(done - reported)
                reported = done
        if batch:
            vectors.append(encoder.embed(np.stack([c.frames for c in batch])))
            windows.extend(c.window for c in batch)
        bar.update(f.size - reported)
        if not windows:
            raise ProbeError(decoder.summary.error or "no decodable video frames")
        return EmbeddedVideo(info, windows, np.concatenate(vectors), _decode_stats(decoder))

    def _load_encoder(self, spec: VideoEncoderSpec) -> VideoEncoder:
        if self._encoder is None:
            enc = self.settings.encoder
            self._encoder = spec.load(enc.device, enc.precision)
        return self._encoder

    # -- derived index --------------------------------------------------------------------------
    def _refresh_index(self, name: str) -> None:
        vset = self.catalog.vector_set(name)
        path = store.index_path(self.settings.data.index_dir, vset)
        if path.is_file():
            return
        index = store.build_from_catalog(self.catalog, vset, self.settings.memory_budget)
        store.save_index(index, path)
        store.remove_stale(self.settings.data.index_dir, vset)


def _decode_stats(decoder: ClipDecoder) -> dict:
    summary = decoder.summary
    problems = []
    if summary.bad_packets:
        problems.append(f"{summary.bad_packets} corrupt packet(s) skipped")
    if summary.error:
        problems.append(f"{summary.error} at {summary.duration:.2f} s; indexed what decoded")
    return {"duration": summary.duration, "frames": summary.frames,
            "warning": "; ".join(problems) or None}
