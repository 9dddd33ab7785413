"""Typed settings, built once at the entry point (run.py) and passed down."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from indexer.change import DEFAULT_THRESHOLD


@dataclass(frozen=True)
class DataDir:
    root: Path  # everything Tubelet writes lives here
    catalog_url: str | None = None  # SQLAlchemy URL; default: SQLite file in `root`

    @property
    def catalog(self) -> str:
        return self.catalog_url or f"sqlite:///{self.root / 'catalog.db'}"

    @property
    def has_catalog(self) -> bool:
        """Whether there is a catalog to open: a server database is assumed to be there, a SQLite file must be."""
        return self.catalog_url is not None or (self.root / "catalog.db").is_file()

    @property
    def catalog_files(self) -> tuple[Path, ...]:
        """The SQLite catalog's own files (none for a server database). Opening and closing any of them
        anywhere in a process drops that process's SQLite locks on the catalog (POSIX locks go with any
        close of the file), so nothing but SQLite may open them, whatever name links to them."""
        if self.catalog_url is not None:
            return ()
        return tuple(self.root / f"catalog.db{suffix}" for suffix in ("", "-wal", "-shm", "-journal"))

    @property
    def index_dir(self) -> Path:
        return self.root / "index"

    @property
    def weights_dir(self) -> Path:
        return self.root / "weights"

    @property
    def runtime_dir(self) -> Path:
        """Encoders converted for a CPU runtime (OpenVINO), keyed by encoder identity: rebuildable."""
        return self.root / "runtime"

    @property
    def lock_file(self) -> Path:
        """One index run at a time on a SQLite catalog; a PostgreSQL one locks in the server (Catalog.run_lock)."""
        return self.root / "index.lock"


@dataclass(frozen=True)
class EncoderSettings:
    variant: str = "vit-s"  # VideoMAE v2 architecture
    weights: str | None = None  # source (see encoder/weights.py); None = the variant's default
    device: str = "auto"  # auto | cpu | cuda[:N]
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    runtime: str = "auto"  # auto | torch | openvino (encoder.runtime.pick_runtime)


@dataclass(frozen=True)
class ImageTextSettings:
    enabled: bool = True  # compute image-text vectors (text and image search)
    model: str = "ViT-B-32-256"  # open_clip architecture
    weights: str | None = None  # open_clip tag, hf:..., a local file or random; None = default tag
    frames_per_clip: int = 4  # frames of each clip embedded and averaged (of its `window_frames`)


@dataclass(frozen=True)
class IndexSettings:
    data: DataDir
    encoder: EncoderSettings
    image_text: ImageTextSettings = ImageTextSettings()
    window_frames: int | None = None  # frames sampled per clip window; None = the weights' own
    frame_interval: int | None = None  # None = the weights' own
    stride_frames: int | None = None  # None = windows back to back
    # Skip windows that do not differ (indexer/change.py); None = embed every window (`--every-window`).
    change_threshold: float | None = DEFAULT_THRESHOLD
    batch_size: int = 4  # clips per encoder call
    retry_failed: bool = False  # re-try files that failed before even if unchanged
    rebuild: bool = False  # forget all clips and vectors and embed everything again
    keep_active: bool = False  # a new vector set (other encoder) waits for `run.py activate` when complete
    one_file_system: bool = False  # scan: stay on each root's filesystem (no mounts below it)
    memory_budget: int = 4 << 30  # bytes the vector index may use
