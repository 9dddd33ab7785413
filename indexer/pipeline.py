"""An index run: scan -> plan -> path updates -> decode + embed -> backfill -> rebuild FAISS.

Each stage is a plain function or a small object over plain records, so the same stages can run
under another engine. Crash safety comes from the catalog: a video's clips, thumbnails and
vectors are committed in one transaction after it is fully embedded, so an interrupted run
resumes with the videos it had not finished.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from encoder import runtime_cache
from encoder.weights import remove_stale_temp_files
from indexer import store, thumbnails
from indexer.catalog import Catalog, CatalogBackendError, DataDirError, VectorSetInfo
from indexer.decode import ProbeError, probe, read_recorded
from indexer.embedding import LocalEngine
from indexer.fingerprint import content_fingerprint
from indexer.jobs import AddVectors, EmbeddedVideo, EmbeddingEngine, Job, NewVideo
from indexer.plan import EmbedTask, Plan, plan_changes
from indexer.progress import NoProgress, Progress, ProgressFactory, VideoSeconds
from indexer.records import Failure, IndexReport, ScannedFile
from indexer.scan import scan_roots
from indexer.set_roles import parse_set_name
from indexer.settings import IndexSettings
from indexer.switch import RunSets, plan_sets, switch_complete
from indexer.towers import EncoderCache, resolve_towers


class Indexer:
    """Cheap to construct; `run(roots)` does the work."""

    def __init__(
        self,
        settings: IndexSettings,
        catalog: Catalog,
        progress: ProgressFactory = lambda total: NoProgress(),
        should_stop: Callable[[], bool] = lambda: False,
        engine: EmbeddingEngine | None = None,
        encoders: EncoderCache | None = None,
    ):
        self.settings = settings
        self.encoders = encoders  # loaded encoders kept across runs (a watch's batches); None: loaded per run
        self.engine = engine or LocalEngine(settings.batch_size)  # decodes and embeds; writes nothing
        self.catalog = catalog
        self.progress = progress
        self.should_stop = should_stop  # polled between videos: a cancelled run keeps what it finished
        self._embed_seconds = 0.0  # encoder time of the videos stored so far (for report.seconds_saved)

    def run(self, roots: list[Path]) -> IndexReport:
        started = time.monotonic()
        with self.catalog.run_lock(self.settings.data.lock_file):
            self.catalog.mark_interrupted_runs()  # we hold the lock: any "running" run died
            if self.settings.rebuild:
                self.catalog.reset_embeddings()
            planned = plan_sets(
                self.catalog, resolve_towers(self.settings, self.encoders), self.settings.data.weights_dir
            )
            towers, sets = planned.towers, planned.sets
            run_id = self.catalog.start_run([str(r) for r in roots])
            report = IndexReport(vectors_embedded={name: 0 for name in sets})
            self._embed_seconds = 0.0
            try:
                plan = self._plan(roots, report)
                deleted = self._apply_path_changes(plan, report)
                self._backfill_recorded()
                backfill = self._backfill_tasks(sets, skip={str(t.file.path) for t in plan.embed})
                jobs: list[Job] = [NewVideo(t, tuple(sets)) for t in plan.embed]
                jobs += [AddVectors(video_id, f, tuple(names)) for video_id, _, f, names in backfill]
                jobs = self._probed(jobs)
                bar = self.progress(sum(_planned_seconds(job) for job in jobs))
                try:
                    self._embed(jobs, towers, sets, report, bar)
                finally:
                    bar.close()
                report.runtimes = {**report.runtimes, **towers.runtimes()}  # an engine's workers', then ours
                report.generation_runtimes = {
                    sets[n].generation: ran for n, ran in report.runtimes.items() if n in sets
                }
                report.cancelled = self.should_stop()
                if not self.settings.keep_active:
                    report.activated = switch_complete(self.catalog, planned)
                report.building = self._building(planned)
                self._refresh_indexes([name for name in sets if parse_set_name(name).role == "active"])
                if deleted or plan.changed_count:
                    self._sweep_thumbnails()
                runtime_cache.sweep(self.settings.data.runtime_dir, [v.identity for v in self.catalog.vector_sets()])
            except BaseException:
                report.seconds = time.monotonic() - started
                self.catalog.finish_run(run_id, "failed", report.to_json())
                raise
            report.files.failed = len(report.failures)
            report.seconds = time.monotonic() - started
            self.catalog.finish_run(run_id, "cancelled" if report.cancelled else "done", report.to_json())
            return report

    def _embed(self, jobs: list[Job], towers, sets: dict[str, VectorSetInfo], report: IndexReport, bar: Progress):
        seconds = VideoSeconds({_key(job): _planned_seconds(job) for job in jobs}, bar)

        def on_embedded(job: Job, end_s: float) -> None:
            bar.set_postfix_str(job.file.path.name[-40:])
            seconds.reached(_key(job), end_s)

        for video in self.engine.embed(jobs, towers, self.should_stop, on_embedded):
            self._store(video, sets, report)
            seconds.finished(_key(video.job))  # stored, failed or shorter than it said: all of it is done

    def _probed(self, jobs: list[Job]) -> list[Job]:
        """Each job with its probe, so progress is planned in seconds of video before embedding starts.

        A file that fails to probe keeps info=None: the decode thread probes it again and reports why.
        """
        probed = []
        for job in jobs:
            if self.should_stop():
                return probed + jobs[len(probed) :]
            try:
                probed.append(replace(job, info=probe(job.file.path)))
            except ProbeError:
                probed.append(job)
        return probed

    # -- planning -------------------------------------------------------------------------------
    def _plan(self, roots: list[Path], report: IndexReport) -> Plan:
        roots = [Path(os.path.abspath(r)) for r in roots]
        data = self.settings.data
        scan = scan_roots(
            roots,
            exclude=[data.root],
            one_file_system=self.settings.one_file_system,
            exclude_files=list(data.catalog_files),
        )
        report.failures.extend(scan.failures)
        report.files.skipped += scan.skipped
        unreadable: list[Failure] = []

        def fingerprint(f: ScannedFile) -> str:
            try:
                return content_fingerprint(f.path)
            except OSError as exc:  # planned as new, then dropped below and reported
                unreadable.append(Failure(str(f.path), f"cannot read file: {exc.strerror}"))
                return f"unreadable:{f.path}"

        plan = plan_changes(
            scan.files,
            roots,
            self.catalog.known_paths(),
            self.catalog.videos_by_fingerprint(),
            fingerprint,
            self.settings.retry_failed,
        )
        skip = {f.path for f in unreadable}
        plan.embed = [t for t in plan.embed if str(t.file.path) not in skip]
        report.failures.extend(unreadable)
        report.failures.extend(Failure(str(f.path), k.error or "failed") for f, k in plan.known_failed)
        return plan

    def _apply_path_changes(self, plan: Plan, report: IndexReport) -> int:
        if plan.touched:
            self.catalog.touch_paths(plan.touched)
        relinks = plan.moved + plan.copies + plan.relinked
        if relinks:
            self.catalog.add_paths(relinks, replacing=plan.vacated)
        deleted = self.catalog.remove_paths(plan.deleted) if plan.deleted else 0
        counts = report.files
        counts.unchanged += len(plan.unchanged)
        counts.moved += len(plan.moved)
        counts.new += len(plan.copies)
        counts.changed += len(plan.relinked)
        counts.deleted += len(plan.deleted)
        return deleted

    def _backfill_tasks(self, sets: dict[str, VectorSetInfo], skip: set[str]):
        """Indexed videos lacking some tower's vectors (e.g. image-text added to a --no-image-text index)."""
        missing: dict[int, tuple[int, str, ScannedFile, list[str]]] = {}
        for name, vset in sets.items():
            for video_id, fingerprint, f in self.catalog.videos_missing_vectors(vset.id):
                if str(f.path) not in skip:
                    missing.setdefault(video_id, (video_id, fingerprint, f, []))[3].append(name)
        return list(missing.values())

    def _backfill_recorded(self) -> None:
        """Recording starts of videos indexed before schema 5, from their tags and names: no decoding, and
        no clip or vector is touched. A file unreadable now is looked at again by the next run."""
        found = {}
        for video_id, path in self.catalog.videos_without_recorded():
            try:
                found[video_id] = read_recorded(Path(path))
            except ProbeError:
                continue
        if found:
            self.catalog.set_recorded(found)

    # -- storing ------------------------------------------------------------------------------
    def _store(self, video: EmbeddedVideo, sets: dict[str, VectorSetInfo], report: IndexReport) -> None:
        if isinstance(video.job, NewVideo):
            self._store_new(video, video.job.task, sets, report)
        else:
            self._store_backfill(video, video.job.video_id, sets, report)

    def _store_new(
        self, video: EmbeddedVideo, task: EmbedTask, sets: dict[str, VectorSetInfo], report: IndexReport
    ) -> None:
        f = task.file
        if video.error is not None:
            self.catalog.record_failure(f, task.fingerprint, str(video.error))
            report.failures.append(Failure(str(f.path), str(video.error)))
            return
        if not _unchanged_since_scan(f):  # written to while we read it: what we embedded is stale
            report.failures.append(
                Failure(str(f.path), "changed while being indexed; not stored, the next index run will pick it up")
            )
            return
        vectors = {sets[name].id: video.matrix(name) for name in video.job.towers}
        thumbs = self._save_thumbnails(task.fingerprint, video)  # files first: the rows that name them follow
        self.catalog.store_video(f, task.fingerprint, video.info, video.stats, video.windows, vectors, thumbs)
        report.clips_embedded += len(video.windows)
        report.runtimes.update(video.runtimes)
        report.windows_skipped += video.skipped
        self._embed_seconds += video.embed_seconds
        if report.clips_embedded:  # what the skipped windows would have cost at this run's pace
            report.seconds_saved = report.windows_skipped * self._embed_seconds / report.clips_embedded
        for name in video.job.towers:
            report.vectors_embedded[name] += len(video.windows)
        if video.stats.get("warning"):
            report.warnings.append(Failure(str(f.path), video.stats["warning"]))
        if task.reason == "new":
            report.files.new += 1
        else:
            report.files.changed += 1

    def _save_thumbnails(self, fingerprint: str, video: EmbeddedVideo) -> list[str | None]:
        root = self.settings.data.root
        return [
            thumbnails.save_thumbnail(root, fingerprint, w.ordinal, jpeg) if jpeg is not None else None
            for w, jpeg in zip(video.windows, video.thumbnails)
        ]

    def _store_backfill(
        self, video: EmbeddedVideo, video_id: int, sets: dict[str, VectorSetInfo], report: IndexReport
    ) -> None:
        names = video.job.towers
        if video.error is not None:  # the file went bad since it was indexed: keep what we have
            report.warnings.append(
                Failure(str(video.job.file.path), f"could not add {', '.join(names)} vectors: {video.error}")
            )
            return
        for name in names:
            by_ordinal = {w.ordinal: v for w, v in zip(video.windows, video.vectors[name])}
            report.vectors_embedded[name] += self.catalog.add_vectors(video_id, sets[name].id, by_ordinal)

    def _building(self, planned: RunSets) -> dict[str, dict]:
        """The new sets still being built after this run: how many of the clips each covers."""
        clips = self.catalog.stats()["clips"]
        building = {}
        for name in planned.new_sets():
            vset = self.catalog.vector_set(name)
            if vset is not None:  # else it became active just now
                building[name] = {"clips": clips, "vectors": self.catalog.vector_count(vset.id)}
        return building

    # -- derived files --------------------------------------------------------------------------
    def _refresh_indexes(self, names: list[str]) -> None:
        """Bring each active set's index file up to the catalog: incrementally from the last file when it can
        (a set being built has none: nothing searches it before it is active)."""
        index_dir = self.settings.data.index_dir
        remove_stale_temp_files(index_dir)  # an index file half-written by a killed run
        for name in names:
            vset = self.catalog.vector_set(name)
            loaded = store.open_index(self.catalog, vset, index_dir, self.settings.memory_budget)
            if not loaded.from_file:
                loaded.save(index_dir)
            store.remove_stale(index_dir, vset)

    def _sweep_thumbnails(self) -> None:
        root = self.settings.data.root / "thumbs"
        if not root.is_dir():
            return
        live = self.catalog.live_fingerprints()
        for folder in root.glob("*/*"):
            if folder.name not in live:
                thumbnails.remove_thumbnails(self.settings.data.root, folder.name)


WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def run_index(
    settings: IndexSettings,
    roots: list[Path],
    progress: ProgressFactory = lambda t: NoProgress(),
    should_stop: Callable[[], bool] = lambda: False,
    engine: EmbeddingEngine | None = None,
    encoders: EncoderCache | None = None,
) -> IndexReport:
    """Open the catalog, run one index over `roots` with `engine` (default: the local one), close it.
    `encoders` keeps loaded encoders between runs (a watch passes one across its batches).

    A data dir that cannot be written (read-only, full, permissions) stops the run with a
    DataDirError; every video committed before that stays indexed and searchable.
    """
    root = settings.data.root
    try:
        root.mkdir(parents=True, exist_ok=True)
        catalog = Catalog(settings.data.catalog).open()
    except (OSError, CatalogBackendError) as exc:
        raise _data_dir_error(root, exc) from exc
    try:
        if catalog.read_only:
            raise DataDirError(
                f"cannot index into {root}: {catalog.read_only_reason}. Searching it still "
                "works; free space, fix permissions or use another --data to index"
            )
        return Indexer(settings, catalog, progress, should_stop, engine, encoders).run(roots)
    except CatalogBackendError as exc:
        raise _data_dir_error(root, exc) from exc
    except OSError as exc:
        if exc.errno in WRITE_ERRNOS:
            raise _data_dir_error(root, exc) from exc
        raise
    finally:
        catalog.close()


def _data_dir_error(root: Path, exc: BaseException) -> DataDirError:
    reason = getattr(exc, "strerror", None) or str(getattr(exc, "orig", exc))
    return DataDirError(
        f"cannot write to the data dir {root}: {reason}. Free space or fix permissions, "
        "or use another --data; the index as of the last finished video is intact and "
        "searchable, and the next run resumes from there"
    )


def _key(job: Job) -> str:
    return str(job.file.path)  # one job per path in a run: backfill skips the paths being embedded


def _planned_seconds(job: Job) -> float:
    """Seconds of video the job will embed: the duration the file states (0 when it states none)."""
    return (job.info.duration or 0.0) if job.info else 0.0


def _unchanged_since_scan(f: ScannedFile) -> bool:
    try:
        stat = os.stat(f.path)
    except OSError:
        return False
    return (stat.st_size, stat.st_mtime_ns) == (f.size, f.mtime_ns)
