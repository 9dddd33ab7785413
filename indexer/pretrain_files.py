"""The files a pretraining run leaves in the data dir, each written atomically (indexer/atomic.py):

    DATA/pretrain/checkpoint.pth      model (official pretraining layout: encoder.*, decoder.*, ...),
                                      optimizer, progress and the run's options: what a resumed run reads
    DATA/pretrain/loss.png            the loss curve
    DATA/pretrain/encoder-SHA.pth     encoder-only weights for `run.py index --weights PATH`

The encoder file is named by its content, so a later run never changes a file some vector set was made with.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from indexer.atomic import atomic_write, write_bytes_atomic
from indexer.settings import DataDir

CHECKPOINT_FORMAT = 1  # bump when the layout below changes; an older file is then not resumed


def pretrain_dir(data: DataDir) -> Path:
    return data.root / "pretrain"


def checkpoint_path(data: DataDir) -> Path:
    return pretrain_dir(data) / "checkpoint.pth"


def curve_path(checkpoint: Path) -> Path:
    return checkpoint.with_name("loss.png")


@dataclass(frozen=True)
class Progress:
    """How far a run got: enough to continue it exactly."""

    step: int = 0  # optimizer steps done
    total_steps: int = 0  # the schedule's length: fixed when the run started (`--minutes`: fitted once more)
    clips_seen: int = 0
    seconds: float = 0.0  # time spent training, over every session of the run
    losses: list[float] = field(default_factory=list)  # one per step
    refitted: bool = False  # `--minutes`: the schedule was fitted to the measured pace (`refit_to_pace`)


REFIT_AFTER = 0.05  # share of a `--minutes` budget after which the schedule is fitted to the measured pace
REFIT_MIN_STEPS = 10  # and at least this many steps timed


def refit_to_pace(progress: Progress, budget_s: float, since_step: int, since_seconds: float) -> Progress:
    """The schedule's length fitted to the pace of the steps done since (`since_step`, `since_seconds`),
    so that it ends when the time does. The first fit times one forward/backward pass and assumes decoding
    runs beside it; on a busy CPU or with a costlier objective the real pace can be half that, and a
    schedule cut at the time limit never decays its learning rate."""
    per_step = (progress.seconds - since_seconds) / max(1, progress.step - since_step)
    left = max(0.0, budget_s - progress.seconds)
    total = progress.step + max(1, int(left / per_step))
    return replace(progress, total_steps=total, refitted=True)


@dataclass(frozen=True)
class TrainingState:
    run: dict  # the options that define the run (a resumed run must match them)
    model: dict[str, torch.Tensor]  # official pretraining layout
    optimizer: dict
    progress: Progress
    torch_rng: torch.Tensor  # CPU generator state (drop path, if any, draws from it)

    def finished(self) -> bool:
        return self.progress.step >= self.progress.total_steps


def save_checkpoint(path: Path, state: TrainingState) -> None:
    document = {
        "format": CHECKPOINT_FORMAT,
        "run": state.run,
        "model": state.model,
        "optimizer": state.optimizer,
        "progress": asdict(state.progress),
        "torch_rng": state.torch_rng,
    }
    with atomic_write(path, ".pth") as tmp:
        torch.save(document, tmp)


def load_checkpoint(path: Path) -> TrainingState | None:
    """The run saved at `path`; None when there is none, or it is of an older layout."""
    if not path.is_file():
        return None
    document = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(document, dict) or document.get("format") != CHECKPOINT_FORMAT:
        return None
    return TrainingState(
        document["run"],
        document["model"],
        document["optimizer"],
        Progress(**document["progress"]),
        document["torch_rng"],
    )


def save_encoder_weights(folder: Path, state: dict[str, torch.Tensor]) -> Path:
    """Write an encoder-only state dict as `encoder-SHA.pth` (first 12 hex digits of its content)."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().float().cpu().contiguous() for k, v in state.items()}, buffer)
    data = buffer.getvalue()
    path = folder / f"encoder-{hashlib.sha256(data).hexdigest()[:12]}.pth"
    write_bytes_atomic(path, data)
    return path


def save_curve(path: Path, losses: list[float], title: str) -> None:
    """The loss per optimizer step as a PNG (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(6, 3.5), dpi=100)
    axes = figure.add_subplot()
    axes.plot(range(1, len(losses) + 1), losses, linewidth=1)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
    axes.set_xlabel("step")
    axes.set_ylabel("reconstruction loss (MSE)")
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_write(path, ".png") as tmp:
        figure.savefig(tmp, format="png")
