"""The local engine: decode and embed at the same time in one process. A decode thread feeds clips through
a bounded queue to the encoders, which batch clips across videos; each video is handed back (and committed
by the run's store step) once all its clips are embedded.

    decode thread:  probe -> ClipDecoder -> thumbnail JPEGs -> queue (bounded: memory stays flat)
    caller thread:  queue -> batches per tower set -> towers.embed -> on_embedded (progress)
                    -> commit finished videos

Windows no different from the last embedded one of the same video (indexer/change.py) are not queued:
the decode thread sends the end they reach instead, and the last queued window's end grows over them, so
a video's clip rows still tile it. Only new content skips: a backfill (another tower's vectors for clips
already stored) embeds every window and keeps those whose window number the catalog holds.

`decode_video` is the decode stage of every engine (the Ray engine runs it in its decode tasks).
A job probed beforehand (the pipeline does, to plan progress in seconds of video) is not probed again.

FFmpeg decodes while torch multiplies; on a GPU, the GPU works while the CPU decodes. The queue
holds at most `QUEUE_CLIPS` clips (each about 3 MB at 256 px; the uncropped frames kept for
thumbnails are dropped before queueing), so memory does not depend on the footage. Only clips count
against that bound: a skipped window's end or a video's end carries no frames, so on static footage the
decode thread keeps deciding what to skip while the towers embed (with every event counted, it stopped
after 8 skipped windows, 0.1 s of decoding, and waited out each model call). A video whose decoding fails
is reported, the others go on.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

from indexer import thumbnails
from indexer.change import ChangeDetector
from indexer.decode import ClipDecoder, ProbeError, probe
from indexer.jobs import EmbeddedVideo, Job, OnEmbedded
from indexer.memory import release_free_memory
from indexer.records import DecodedClip, UnchangedWindow, stack_by_size
from indexer.towers import Towers

QUEUE_CLIPS = 8


_END, _CLIP, _EXTEND, _FATAL = "end", "clip", "extend", "fatal"
CLIP, EXTEND = _CLIP, _EXTEND  # the kinds of event decode_video yields, for other engines


class DecodeThread(threading.Thread):
    """Decodes jobs in order into the queue; stops early when asked."""

    def __init__(
        self,
        jobs: Iterable[Job],
        towers: Towers,
        out: ClipChannel,
        should_stop: Callable[[], bool],
    ):
        super().__init__(name="tubelet-decode", daemon=True)
        self.jobs, self.towers, self.out = list(jobs), towers, out
        self.should_stop = should_stop
        self.abort = threading.Event()  # set by the consumer when it fails

    def run(self) -> None:
        try:
            for job in self.jobs:
                if self.should_stop() or self.abort.is_set():
                    break
                self._decode(job)
        except BaseException as exc:  # handed to the consumer thread, which re-raises it
            self._put((_FATAL, None, exc))
        self._put((_END, None, None))

    def _decode(self, job: Job) -> None:
        video = EmbeddedVideo(job, vectors={name: [] for name in job.towers})
        for kind, payload in decode_video(video, self.towers, self.abort.is_set):
            self._put((kind, video, payload))
        if not self.abort.is_set():
            self._put((_END, video, None))

    def _put(self, item) -> None:
        self.out.put(item, self.abort.is_set)


class ClipChannel:
    """The decode thread's queue to the towers, bounded in clips rather than events: `put` waits only
    for a clip, and only while the consumer holds `clips` of them not yet taken out."""

    def __init__(self, clips: int):
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._room = threading.Semaphore(clips)

    def put(self, event: tuple, aborted: Callable[[], bool]) -> None:
        """Queue `event` (kind, video, payload); a clip first waits for room, checking `aborted`."""
        if event[0] == _CLIP:
            while not self._room.acquire(timeout=0.2):
                if aborted():
                    return
        self._events.put(event)

    def get(self) -> tuple:
        event = self._events.get()
        if event[0] == _CLIP:
            self._room.release()
        return event


def decode_video(video: EmbeddedVideo, towers: Towers, aborted: Callable[[], bool]) -> Iterator[tuple[str, object]]:
    """One job's clips as (_CLIP, (clip, thumbnail JPEG or None)) and (_EXTEND, end of a skipped window)
    events; fills `video.info` and `.stats`, and `.error` when decoding fails."""
    job = video.job
    try:
        video.info = job.info or probe(job.file.path)
        decoder = towers.clip_decoder(
            job.file.path, video.info, job.towers, change=_detector(job, towers), threading=towers.decode_threading()
        )
        for clip in decoder.clips():
            if aborted():
                return
            if isinstance(clip, UnchangedWindow):
                yield _EXTEND, clip.window.end
                continue
            thumb = thumbnails.thumbnail_jpeg(clip.full_frames) if job.new_content else None
            yield _CLIP, (replace(clip, full_frames=[]), thumb)  # thumbnail done: drop them
        video.stats = decoder_stats(decoder)
        if decoder.summary.frames == 0:
            raise ProbeError(decoder.summary.error or "no decodable video frames")
    except ProbeError as exc:
        video.error = exc


def _detector(job: Job, towers: Towers) -> ChangeDetector | None:
    """Skipping is for new content (a backfill must meet the stored windows) and for windows that
    tile the video (sparse windows leave gaps by design: there is nothing to extend over)."""
    sampling = towers.sampling
    if sampling.change_threshold is None or not job.new_content or sampling.stride > sampling.span:
        return None
    return ChangeDetector(sampling.change_threshold)


def embed_videos(
    jobs: Iterable[Job],
    towers: Towers,
    batch_size: int,
    should_stop: Callable[[], bool] = lambda: False,
    on_embedded: OnEmbedded = lambda job, end_s: None,
) -> Iterator[EmbeddedVideo]:
    """Yield each video once all its clips are embedded (or its decoding failed).

    `on_embedded(job, end_s)` is told, after each batch, the end of a clip window just embedded.

    Batches fill across videos; a video that has ended waits for the batch holding its last
    clips, and everything left is flushed when decoding is over.
    """
    channel = ClipChannel(QUEUE_CLIPS)
    worker = DecodeThread(jobs, towers, channel, should_stop)
    batches: dict[tuple[str, ...], list[tuple[EmbeddedVideo, DecodedClip]]] = {}
    waiting: list[EmbeddedVideo] = []  # ended, some clips not embedded yet
    worker.start()
    try:
        while True:
            kind, video, payload = channel.get()
            if kind == _FATAL:
                raise payload
            if kind == _END and video is None:  # the decode thread is done
                for names in list(batches):
                    _embed_batch(batches.pop(names), towers, on_embedded)
                yield from waiting
                return
            if kind == _CLIP:
                clip, thumb = payload
                video.pending += 1
                video.windows.append(clip.window)
                video.thumbnails.append(thumb)
                batch = batches.setdefault(video.job.towers, [])
                batch.append((video, clip))
                if len(batch) == batch_size:
                    _embed_batch(batches.pop(video.job.towers), towers, on_embedded)
            elif kind == _EXTEND:  # a skipped window: the last queued one now reaches its end
                video.skipped += 1
                video.windows[-1] = replace(video.windows[-1], end=max(video.windows[-1].end, payload))
                on_embedded(video.job, payload)
            else:
                video.ended = True
                waiting.append(video)
            done = [v for v in waiting if v.pending == 0]
            waiting = [v for v in waiting if v.pending]
            yield from done
    finally:
        worker.abort.set()
        worker.join(timeout=30)


def _embed_batch(batch: list[tuple[EmbeddedVideo, DecodedClip]], towers: Towers, on_embedded: OnEmbedded) -> None:
    names = list(batch[0][0].job.towers)
    started = time.monotonic()
    vectors = towers.embed(names, stack_by_size([clip for _, clip in batch]))
    share = (time.monotonic() - started) / len(batch)
    for row, (video, clip) in enumerate(batch):
        video.embed_seconds += share
        for name in names:
            video.vectors[name].append(vectors[name][row])
        video.pending -= 1
        on_embedded(video.job, clip.window.end)
    batch.clear()  # drop the frames now, then hand their pages back: memory stays flat over hours
    release_free_memory()


@dataclass(frozen=True)
class LocalEngine:
    """The default engine: one decode thread and the encoders in this process (see the module's note)."""

    batch_size: int  # clips per encoder call

    def embed(
        self, jobs: list[Job], towers: Towers, should_stop: Callable[[], bool], on_embedded: OnEmbedded
    ) -> Iterator[EmbeddedVideo]:
        return embed_videos(jobs, towers, self.batch_size, should_stop, on_embedded)


def decoder_stats(decoder: ClipDecoder) -> dict:
    summary = decoder.summary
    problems = []
    if summary.bad_packets:
        problems.append(f"{summary.bad_packets} corrupt packet(s) skipped")
    if summary.error:
        problems.append(f"{summary.error} at {summary.duration:.2f} s; indexed what decoded")
    return {"duration": summary.duration, "frames": summary.frames, "warning": "; ".join(problems) or None}
