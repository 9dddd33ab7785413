"""The Ray engine: the local engine's stages run by Ray Data, on this machine or across a cluster.

    driver:        jobs (probed and planned by the run) -> one input row per video
    decode tasks:  flat_map(decode_rows): decode_video (the local engine's decode stage) -> clip rows + an end row
    encoder pool:  map_batches(EmbedClips): an actor per worker holds the towers (num_gpus=1 where GPUs exist;
                   precision "auto" is bf16 on CUDA); clip rows -> vector rows, end rows pass through
    driver:        rows stream back; a video is complete when its end row and all the clip rows it counts have
                   arrived, and goes to the run's store step, which commits it as the local engine's videos

Nothing here writes: workers return vectors, windows and thumbnail JPEG bytes. Ray retries a decode task or
restarts an encoder actor whose process dies (Ray Data's defaults for actors; decode tasks up to
`DECODE_RETRIES` times), and re-runs its input; rows that come back twice are told apart by window number,
so nothing is lost or doubled. A video whose decode task keeps dying is a per-file failure.

Footage is read by the workers: every path must be readable on every node (shared storage, same mount
point), as must the data dir's weights when they are files. A worker that cannot read a file says so.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from indexer.decode import ProbeError
from indexer.embedding import CLIP, EXTEND, decode_video
from indexer.jobs import EmbeddedVideo, Job, OnEmbedded
from indexer.records import ClipWindow, DecodedClip, VideoInfo, stack_by_size
from indexer.towers import Towers

DECODE_RETRIES = 3  # a decode task whose process dies is run again this many times, then the video fails
REPO_ROOT = Path(__file__).resolve().parents[1]  # workers import Tubelet from the same path


@dataclass(frozen=True)
class TowerParts:
    """What workers rebuild the towers from: a Towers without its loaded encoders (those stay in processes)."""

    video: object
    image: object
    sampling: object
    device: str
    precision: str
    backend: str
    runtime_dir: Path | None

    @classmethod
    def of(cls, towers: Towers) -> TowerParts:
        return cls(
            towers.video,
            towers.image,
            towers.sampling,
            towers.device,
            towers.precision,
            towers.backend,
            towers.runtime_dir,
        )

    def towers(self) -> Towers:
        return Towers(
            self.video, self.image, self.sampling, self.device, self.precision, self.backend, self.runtime_dir
        )


# -- the rows between stages ("item" holds one of these) -----------------------------------------
@dataclass(frozen=True)
class _Clip:
    clip: DecodedClip
    thumbnail: bytes | None
    towers: tuple[str, ...]


@dataclass(frozen=True)
class _Embedded:
    window: ClipWindow
    thumbnail: bytes | None
    vectors: dict[str, np.ndarray]
    seconds: float  # this clip's share of its batch's encoder time
    runtimes: dict[str, str]  # what ran each tower ("cuda bf16")


@dataclass(frozen=True)
class _End:
    info: VideoInfo | None
    stats: dict
    error: ProbeError | None
    clips: int  # clip rows sent for the video
    skipped: int


def decode_rows(row: dict, parts: TowerParts) -> Iterator[dict]:
    """A decode task: one video's clip rows, then its end row. A skipped window's end is folded into the clip
    before it (held back one clip), as the local engine's consumer does."""
    n, job = int(row["job"]), row["item"]
    video = EmbeddedVideo(job)
    unreadable = _unreadable(job.file.path)
    if unreadable:
        yield _row(n, "end", _End(None, {}, ProbeError(unreadable), 0, 0))
        return
    held: tuple[DecodedClip, bytes | None] | None = None
    clips = skipped = 0
    for kind, payload in decode_video(video, parts.towers(), lambda: False):
        if kind == EXTEND:
            skipped += 1
            clip, thumb = held
            held = replace(clip, window=replace(clip.window, end=max(clip.window.end, payload))), thumb
            continue
        if kind == CLIP and held is not None:
            yield _row(n, "clip", _Clip(*held, job.towers))
            clips += 1
        held = payload
    if held is not None:
        yield _row(n, "clip", _Clip(*held, job.towers))
        clips += 1
    yield _row(n, "end", _End(video.info, video.stats, video.error, clips, skipped))


def _unreadable(path: Path) -> str | None:
    if os.access(path, os.R_OK):
        return None
    where = socket.gethostname()
    return (
        f"cannot read {path} on Ray worker node {where}: every node must see the footage at the same path "
        "(shared storage such as NFS, mounted alike on every node)"
    )


class EmbedClips:
    """An encoder actor: loads the towers once (the costly step), then embeds batches of clip rows."""

    def __init__(self, parts: TowerParts, cpu_workers: int | None):
        if cpu_workers:  # CPU actors share their node's cores (else torch takes one thread: Ray's OMP default)
            import torch

            torch.set_num_threads(max(1, (os.cpu_count() or 1) // cpu_workers))
        self.towers = parts.towers()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        items, kinds = list(batch["item"]), list(batch["kind"])
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, (kind, item) in enumerate(zip(kinds, items)):
            if kind == "clip":
                groups.setdefault(item.towers, []).append(i)
        for names, rows in groups.items():
            started = time.monotonic()
            try:
                vectors = self.towers.embed(list(names), stack_by_size([items[i].clip for i in rows]))
            except Exception as exc:  # sent to the driver, which raises it: only decode blocks may be dropped
                return {
                    "job": batch["job"],
                    "kind": np.full(len(items), "failed", dtype=object),
                    "item": _objects([exc] * len(items)),
                }
            share = (time.monotonic() - started) / len(rows)
            for k, i in enumerate(rows):
                item = items[i]
                vector = {m: vectors[m][k] for m in names}
                items[i] = _Embedded(item.clip.window, item.thumbnail, vector, share, self.towers.runtimes())
                kinds[i] = "embedded"
        return {"job": batch["job"], "kind": np.array(kinds, dtype=object), "item": _objects(items)}


def _row(n: int, kind: str, item: object) -> dict:
    return {"job": n, "kind": kind, "item": item}


def _objects(items: list) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


# -- the driver --------------------------------------------------------------------------------------
@dataclass
class _Assembly:
    """Rows of one video as they stream back, in any order, each window once."""

    job: Job
    embedded: dict[int, _Embedded] = field(default_factory=dict)  # window number -> its row
    end: _End | None = None

    def complete(self) -> bool:
        return self.end is not None and (self.end.error is not None or len(self.embedded) == self.end.clips)

    def video(self) -> EmbeddedVideo:
        end = self.end
        if end.error is not None:
            return EmbeddedVideo(self.job, info=end.info, error=end.error)
        rows = [self.embedded[o] for o in sorted(self.embedded)]
        return EmbeddedVideo(
            self.job,
            info=end.info,
            windows=[r.window for r in rows],
            vectors={name: [r.vectors[name] for r in rows] for name in self.job.towers},
            thumbnails=[r.thumbnail for r in rows],
            stats=end.stats,
            skipped=end.skipped,
            embed_seconds=sum(r.seconds for r in rows),
            runtimes={name: ran for r in rows for name, ran in r.runtimes.items()},
            ended=True,
        )


@dataclass(frozen=True)
class RayEngine:
    """Runs the stages on Ray. `address` None starts a local Ray instance for the run (or uses the one this
    process already has, as tests do); "auto" or HOST:PORT joins a cluster (`ray start --head` / `--address`)."""

    batch_size: int  # clips per encoder call
    address: str | None = None
    workers: int | None = None  # encoder actors; None: one per GPU, else one

    def embed(
        self, jobs: list[Job], towers: Towers, should_stop: Callable[[], bool], on_embedded: OnEmbedded
    ) -> Iterator[EmbeddedVideo]:
        if not jobs:
            return
        with self._connected():
            assembly = {n: _Assembly(job) for n, job in enumerate(jobs)}
            for row in self._dataset(jobs, towers).iter_rows():
                kind, item, n = row["kind"], row["item"], int(row["job"])
                if kind == "failed":
                    raise item
                part = assembly.get(n)
                if part is None:  # a row of a video already handed on, again: its task ran twice
                    continue
                if kind == "embedded":
                    if part.embedded.setdefault(item.window.ordinal, item) is item:  # each window once
                        on_embedded(part.job, item.window.end)
                elif part.end is None:
                    part.end = item
                if part.complete():
                    yield assembly.pop(n).video()
                if should_stop():
                    return
            for part in assembly.values():  # a block of it was dropped: its task's process died for good
                error = ProbeError(f"a Ray worker died on it {DECODE_RETRIES + 1} times; see the Ray logs")
                yield EmbeddedVideo(part.job, error=error)

    def _dataset(self, jobs: list[Job], towers: Towers):
        import ray

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the run has its own, in seconds of video
        context.max_errored_blocks = len(jobs)  # a video whose decoding dies for good fails alone
        gpus = int(ray.cluster_resources().get("GPU", 0))
        workers = self.workers or max(gpus, 1)
        parts = TowerParts.of(towers)
        rows = ray.data.from_items([_row(n, "job", job) for n, job in enumerate(jobs)], override_num_blocks=len(jobs))
        clips = rows.flat_map(decode_rows, fn_kwargs={"parts": parts}, max_retries=DECODE_RETRIES)
        return clips.map_batches(
            EmbedClips,
            fn_constructor_kwargs={"parts": parts, "cpu_workers": None if gpus else workers},
            batch_size=self.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_gpus=1 if gpus else 0,
        )

    @contextmanager
    def _connected(self) -> Iterator[None]:
        import ray

        if ray.is_initialized():
            yield
            return
        path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        options = {"runtime_env": {"env_vars": {"PYTHONPATH": path}}, "logging_level": "ERROR", "log_to_driver": False}
        if self.address:
            ray.init(address=self.address, **options)
        else:
            # Logical CPUs: decode tasks always find a slot beside the encoder actors, as the local engine's
            # decode thread runs beside its encoders.
            cpus = max(os.cpu_count() or 1, (self.workers or 1) + 1)
            ray.init(num_cpus=cpus, include_dashboard=False, **options)
        try:
            yield
        finally:
            ray.shutdown()
