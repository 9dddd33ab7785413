"""What an embedding engine is given and what it gives back: the seam between the index run and the engine.

An index run (indexer/pipeline.py) plans jobs on the driver and hands them to an engine: the threaded
local engine (indexer/embedding.py) or the Ray engine (indexer/ray_engine.py). The engine decodes and
embeds; it writes nothing. Everything its workers make (vectors, clip windows, thumbnails as JPEG bytes)
comes back in an EmbeddedVideo, and the run's store step alone writes files and catalog rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from indexer.decode import ProbeError
from indexer.plan import EmbedTask
from indexer.records import ClipWindow, ScannedFile, VideoInfo

if TYPE_CHECKING:  # typing only: the towers module loads encoder code
    from indexer.towers import Towers


@dataclass(frozen=True)
class NewVideo:
    """New or changed content: clip rows, thumbnails and every tower's vectors are stored for it."""

    task: EmbedTask
    towers: tuple[str, ...]  # which towers' vectors to compute
    info: VideoInfo | None = None  # probed already (to plan progress): not probed again

    @property
    def file(self) -> ScannedFile:
        return self.task.file

    @property
    def new_content(self) -> bool:
        return True


@dataclass(frozen=True)
class AddVectors:
    """An indexed video lacking some towers' vectors: its stored clips get them (matched by window number)."""

    video_id: int
    file: ScannedFile
    towers: tuple[str, ...]
    info: VideoInfo | None = None

    @property
    def new_content(self) -> bool:
        return False  # every window is embedded (to meet the stored ones); no thumbnails


Job = NewVideo | AddVectors


@dataclass
class EmbeddedVideo:
    """One job's result. The fields after `embed_seconds` are the local engine's bookkeeping."""

    job: Job
    info: VideoInfo | None = None
    windows: list[ClipWindow] = field(default_factory=list)
    vectors: dict[str, list[np.ndarray]] = field(default_factory=dict)  # tower -> per-clip vectors
    thumbnails: list[bytes | None] = field(default_factory=list)  # JPEG per clip (new content only)
    stats: dict = field(default_factory=dict)  # duration, frames, warning
    error: ProbeError | None = None  # decoding failed: nothing to store
    skipped: int = 0  # windows not embedded: no different from the last embedded one
    embed_seconds: float = 0.0  # this video's share of encoder time
    runtimes: dict[str, str] = field(default_factory=dict)  # tower -> what ran it, where not in this process
    pending: int = 0  # clips decoded but not embedded yet
    ended: bool = False  # the decoder is done with this video

    def matrix(self, tower: str) -> np.ndarray:
        return np.stack(self.vectors[tower])


OnEmbedded = Callable[[Job, float], None]  # (job, end in seconds of a clip window just embedded)


class EmbeddingEngine(Protocol):
    """Jobs in, embedded videos out: each video once all its clips are embedded (or its decoding failed),
    in any order. `should_stop` is polled between clips; a stopped engine yields what it finished."""

    def embed(
        self, jobs: list[Job], towers: Towers, should_stop: Callable[[], bool], on_embedded: OnEmbedded
    ) -> Iterator[EmbeddedVideo]: ...
