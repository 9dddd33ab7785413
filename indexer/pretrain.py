"""`run.py pretrain`: continue VideoMAE v2 dual-masking pretraining on the user's own footage.

This module wires the layers and owns nothing of theirs: clips come from indexer/pretrain_clips.py (the
indexer's decode path), the model, masks and loss from encoder/ (plain tensors), the optimizer step from
encoder/pretrain_optim.py, the files from indexer/pretrain_files.py. Every random draw is a function of
(seed, step) or (seed, clip number), so a run stopped at any checkpoint and started again with the same
command continues exactly as if it had never stopped.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from encoder.factory import VideoEncoderSpec, resolve_video_encoder
from encoder.masking import MaskSpec, make_masks
from encoder.pretrain_checkpoint import encoder_state, load_pretrain_state, save_pretrain_state
from encoder.pretrain_objective import Objective, keep_constraint, objective_loss
from encoder.pretrain_optim import MicroBatch, NonFiniteLoss, build_optimizer, scaled_schedule, train_step
from encoder.runtime import Runtime, pick_runtime
from encoder.videomae2_pretrain import pretrain_config
from encoder.weights import read_checkpoint
from indexer.catalog import Catalog
from indexer.lock import IndexLock, LockHeld
from indexer.pretrain_clips import ClipSampler, probe_footage
from indexer.pretrain_errors import PretrainError
from indexer.pretrain_files import (
    REFIT_AFTER,
    REFIT_MIN_STEPS,
    Progress,
    TrainingState,
    checkpoint_path,
    curve_path,
    load_checkpoint,
    pretrain_dir,
    refit_to_pace,
    save_checkpoint,
    save_curve,
    save_encoder_weights,
)
from indexer.records import ClipSampling
from indexer.scan import scan_roots
from indexer.settings import DataDir, EncoderSettings

DEFAULT_BASE_LR = 1e-3  # official VideoMAE v2 base learning rate (per 256 clips), ViT-S to ViT-H
DEFAULT_CLIP_GRAD = 1.0  # the official B-H runs clip nothing and g clips at 0.02; tiny CPU batches are noisier


@dataclass(frozen=True)
class PretrainSettings:
    data: DataDir
    encoder: EncoderSettings  # variant and weights to start from, device, precision
    window_frames: int | None = None  # None: the weights' own
    frame_interval: int | None = None
    paths: tuple[Path, ...] = ()  # folders or files to learn from; empty = the data dir's indexed videos
    steps: int | None = None  # exactly one of steps and minutes
    minutes: float | None = None
    batch_size: int = 4  # clips per forward pass
    accum: int = 1  # forward passes per optimizer step
    lr: float = DEFAULT_BASE_LR  # per 256 clips; the run uses lr x batch_size x accum / 256
    mask: str = "tube"  # encoder masking: tube | random
    mask_ratio: float = 0.9
    decoder_mask_ratio: float = 0.5  # running cell; 0 = decode every hidden token (VideoMAE v1)
    # What is minimised (encoder/pretrain_objective.py): the default is the recipe that measured best for
    # retrieval (bench/RESULTS.md, "A tubelet embedding that sees only change"); `mae` is the official one.
    objective: str = "nce"  # mae | mae+nce | nce
    nce_weight: float = 1.0  # weight of the contrastive term (mae+nce)
    tubelet_difference: bool = True  # keep the tubelet embedding seeing only change
    seed: int = 0
    clip_grad: float | None = DEFAULT_CLIP_GRAD  # max gradient norm; None = no clipping
    checkpoint_minutes: float = 5.0  # also at the end and on Ctrl+C; 0 = after every step
    restart: bool = False  # discard an unfinished run's checkpoint instead of continuing it

    @property
    def total_batch(self) -> int:
        return self.batch_size * self.accum


@dataclass(frozen=True)
class StepReport:
    """What the progress line shows after each optimizer step."""

    step: int
    total_steps: int
    loss: float
    elapsed_s: float  # this session
    clips_per_s: float  # this session
    seconds_left: float | None


@dataclass(frozen=True)
class PretrainReport:
    checkpoint: Path
    encoder_weights: Path
    curve: Path
    steps: int
    clips_seen: int
    first_loss: float | None
    final_loss: float | None
    seconds: float  # training time over every session of the run
    stopped: bool = False  # stopped early by request (Ctrl+C): the same command continues

    def to_json(self) -> dict:
        return {
            "checkpoint": str(self.checkpoint),
            "encoder_weights": str(self.encoder_weights),
            "steps": self.steps,
            "clips_seen": self.clips_seen,
            "first_loss": self.first_loss,
            "final_loss": self.final_loss,
            "seconds": round(self.seconds, 3),
        }


Say = Callable[[str], None]


def run_pretrain(
    settings: PretrainSettings, say: Say, on_step: Callable[[StepReport], None], stop: threading.Event | None = None
) -> PretrainReport:
    """Train until the run's steps or minutes are done, or `stop` is set (then checkpoint and return)."""
    _check(settings)
    spec = resolve_video_encoder(
        settings.encoder.variant,
        settings.encoder.weights,
        settings.data.weights_dir,
        settings.window_frames,
        settings.frame_interval,
    )
    pre = spec.preprocess
    sampling = ClipSampling(pre.window_frames, pre.frame_interval)
    footage = probe_footage(library_videos(settings), say)
    sampler = ClipSampler(footage, sampling, pre.size, settings.seed, say)
    runtime = pick_runtime(settings.encoder.device, settings.encoder.precision, "torch")
    if runtime.amp_dtype == torch.float16:  # a GPU without bf16: fp16 training would need loss scaling
        runtime = Runtime(runtime.device, None)
    with pretrain_lock(settings.data):
        return _run(settings, spec, sampler, runtime, len(footage), say, on_step, stop or threading.Event())


@contextlib.contextmanager
def pretrain_lock(data: DataDir):
    """One pretraining run per data dir (they would overwrite each other's checkpoint); index runs may go on."""
    try:
        with IndexLock(pretrain_dir(data) / ".lock"):
            yield
    except LockHeld:
        raise PretrainError(
            f"another pretraining run is using {pretrain_dir(data)}: wait for it to finish, or stop it (Ctrl+C)"
        ) from None


def _run(
    settings: PretrainSettings,
    spec: VideoEncoderSpec,
    sampler: ClipSampler,
    runtime: Runtime,
    videos: int,
    say: Say,
    on_step: Callable[[StepReport], None],
    stop: threading.Event,
) -> PretrainReport:
    run = run_options(settings, spec)
    path = checkpoint_path(settings.data)
    saved = None if settings.restart else load_checkpoint(path)
    if saved is not None and saved.run != run:
        if not saved.finished():
            raise PretrainError(_other_run_message(path, saved.run, run))
        saved = None  # a finished run with other options: this command starts a new one
    trainer = Trainer(settings, spec, sampler, runtime, say)
    trainer.start(saved)
    say(trainer.describe(videos))
    return trainer.train(on_step, stop)


def _check(settings: PretrainSettings) -> None:
    if (settings.steps is None) == (settings.minutes is None):
        raise PretrainError("give exactly one of --steps N and --minutes M")
    if settings.mask not in ("tube", "random"):
        raise PretrainError(f"--mask must be tube or random, got {settings.mask!r}")
    if not 0 < settings.mask_ratio < 1:
        raise PretrainError(f"--mask-ratio must be between 0 and 1, got {settings.mask_ratio}")
    if not 0 <= settings.decoder_mask_ratio < 1:
        raise PretrainError(f"--decoder-mask-ratio must be 0 or more and below 1, got {settings.decoder_mask_ratio}")


def library_videos(settings: PretrainSettings) -> list[Path]:
    """The files of the given folders, else one path per indexed video of the data dir."""
    data = settings.data
    if settings.paths:
        found = scan_roots(list(settings.paths), exclude=[data.root], exclude_files=list(data.catalog_files))
        return [f.path for f in found.files]
    if not data.has_catalog:
        raise PretrainError(
            f"nothing is indexed in {data.root}: name folders to learn from (run.py pretrain FOLDER --data "
            f"{data.root}), or index them first"
        )
    catalog = Catalog(data.catalog).open()
    try:
        return [Path(row.paths[0]) for row in catalog.video_rows()]
    finally:
        catalog.close()


def run_options(settings: PretrainSettings, spec: VideoEncoderSpec) -> dict:
    """What defines a run: a checkpoint is continued only by a command with exactly these."""
    return {
        "variant": spec.variant,
        "weights": spec.weights.source,
        "sha256": spec.weights.sha256,
        "preprocess": spec.preprocess.to_dict(),
        "paths": [str(p.absolute()) for p in settings.paths],
        "steps": settings.steps,
        "minutes": settings.minutes,
        "batch_size": settings.batch_size,
        "accum": settings.accum,
        "lr": settings.lr,
        "mask": settings.mask,
        "mask_ratio": settings.mask_ratio,
        "decoder_mask_ratio": settings.decoder_mask_ratio,
        "objective": settings.objective,
        "nce_weight": settings.nce_weight,
        "tubelet_difference": settings.tubelet_difference,
        "seed": settings.seed,
        "clip_grad": settings.clip_grad,
    }


def _other_run_message(path: Path, saved: dict, wanted: dict) -> str:
    differ = ", ".join(f"{k} {saved.get(k)!r} (now {wanted[k]!r})" for k in wanted if saved.get(k) != wanted[k])
    return (
        f"{path} holds an unfinished run with other options: {differ}. Run that command again to finish it, "
        "or pass --restart to discard it and start this one"
    )


def model_grid(spec: VideoEncoderSpec) -> tuple[int, int, int]:
    """The token grid of the pretraining model, which fixes the clip's frames and size."""
    cfg, pre = pretrain_config(spec.variant).encoder, spec.preprocess
    if (pre.window_frames, pre.size) != (cfg.num_frames, cfg.img_size):
        raise PretrainError(
            f"{spec.variant} pretrains on clips of {cfg.num_frames} frames at {cfg.img_size} px; these weights "
            f"sample {pre.window_frames} frames at {pre.size} px (drop --window-frames)"
        )
    return cfg.grid


def step_seed(seed: int, step: int) -> int:
    """The masks' generator seed for one optimizer step."""
    return int(np.random.SeedSequence([seed, step]).generate_state(1)[0])


class Prefetch:
    """Decodes the next batch of clips in a thread while the model trains on this one (PyAV releases the
    GIL). The clips are the sampler's pure function of their numbers, so prefetching changes no order."""

    def __init__(self, sampler: ClipSampler, batch_size: int):
        self.sampler, self.batch_size = sampler, batch_size
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pretrain-clips")
        self._pending: dict[int, Future] = {}

    def take(self, first: int):
        """Clips first .. first + batch_size - 1, and start decoding the batch after them."""
        future = self._pending.pop(first, None)
        batch = future.result() if future is not None else self.sampler.batch(first, self.batch_size)
        following = first + self.batch_size
        self._pending[following] = self._pool.submit(self.sampler.batch, following, self.batch_size)
        return batch

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()


class Trainer:
    """One pretraining run in memory: model, optimizer, schedule, progress. Built cheaply; `start` loads."""

    def __init__(
        self, settings: PretrainSettings, spec: VideoEncoderSpec, sampler: ClipSampler, runtime: Runtime, say: Say
    ):
        self.settings = settings
        self.spec = spec
        self.sampler = sampler
        self.runtime = runtime
        self.say = say
        self.grid = model_grid(spec)
        self.masks = MaskSpec(settings.mask, settings.mask_ratio, settings.decoder_mask_ratio)
        self.objective = Objective(
            settings.objective, settings.nce_weight, tubelet_difference=settings.tubelet_difference
        )
        self.path = checkpoint_path(settings.data)
        self.progress = Progress()
        self.model = self.optimizer = self.schedule = None
        self.resumed = False
        self.prefetch = Prefetch(sampler, settings.batch_size)

    # -- setting up ----------------------------------------------------------------------------
    def start(self, saved: TrainingState | None) -> None:
        if saved is not None:
            model, _ = load_pretrain_state(saved.model, self.spec.variant)
            self._place(model)
            self.optimizer.load_state_dict(saved.optimizer)
            torch.set_rng_state(saved.torch_rng)
            self.progress, self.resumed = saved.progress, True
            done, total = saved.progress.step, saved.progress.total_steps
            if saved.finished():
                self.say(f"{self.path} holds this run, finished ({done} steps); --restart trains it again")
            else:
                self.say(f"resuming from {self.path}: step {done} of {total}, same optimizer, schedule and data order")
        else:
            torch.manual_seed(self.settings.seed)  # the global generator (drop path) starts from the seed too
            checkpoint = read_checkpoint(self.spec.weights.path)
            model, had_decoder = load_pretrain_state(checkpoint, self.spec.variant, seed=self.settings.seed)
            if not had_decoder:
                self.say(f"{self.spec.weights.source} has no decoder: the decoder starts fresh")
            self._place(model)
            keep_constraint(self.model, self.objective)  # the first step starts inside it, as every later one
            self.progress = Progress(total_steps=self.settings.steps) if self.settings.steps else self._fit_minutes()
        self.schedule = scaled_schedule(self.settings.lr, self.settings.total_batch, self.progress.total_steps)

    def _place(self, model: torch.nn.Module) -> None:
        self.model = model.to(self.runtime.device).float()
        self.optimizer = build_optimizer(self.model)

    def _fit_minutes(self) -> Progress:
        """Steps that fit the budget: the longer of one micro-batch's decoding and its second forward/backward
        pass (the first one pays for warming up; decoding runs beside training), times `accum`. No update is
        made; the timing counts as time spent, and the run stops at the time in any case."""
        began = time.monotonic()
        batch = self._micro_batch(0, 0)
        decoded = time.monotonic()
        for _ in range(2):
            passed = time.monotonic()
            with self.runtime.autocast():
                loss = objective_loss(
                    self.model, batch.clips, batch.hidden, batch.decoded, self.objective, batch.generator
                )
            loss.backward()
            self.model.zero_grad(set_to_none=True)
        now = time.monotonic()
        per_step = max(decoded - began, now - passed) * self.settings.accum
        spent = now - began
        steps = int((self.settings.minutes * 60 - spent) / per_step)
        return Progress(total_steps=max(1, steps), seconds=spent)

    def describe(self, videos: int) -> str:
        s, lr = self.settings, self.schedule.lr
        return (
            f"pretraining {self.spec.variant} on {videos} videos: {self.progress.total_steps} steps of "
            f"{s.batch_size}x{s.accum} clips, {s.mask} mask {s.mask_ratio:g}, decoder mask {s.decoder_mask_ratio:g}, "
            f"objective {s.objective}{f' (nce weight {s.nce_weight:g})' if s.objective == 'mae+nce' else ''}"
            f"{', tubelet embedding kept to change only' if s.tubelet_difference else ''}, "
            f"lr {lr:.3g} (= {s.lr:g} x {s.total_batch}/256), {self.runtime.describe()}"
        )

    # -- training ------------------------------------------------------------------------------
    def train(self, on_step: Callable[[StepReport], None], stop: threading.Event) -> PretrainReport:
        try:
            self._loop(on_step, stop)
        finally:
            self.prefetch.close()
        return self._finish(stopped=stop.is_set() and self.progress.step < self.progress.total_steps)

    def _loop(self, on_step: Callable[[StepReport], None], stop: threading.Event) -> None:
        s = self.settings
        began = last_save = time.monotonic()
        start_step, start_seconds = self.progress.step, self.progress.seconds
        budget = s.minutes * 60 if s.minutes is not None else None
        while self.progress.step < self.progress.total_steps and not stop.is_set():
            step = self.progress.step
            loss = self._step(step)
            now = time.monotonic()
            seconds = start_seconds + now - began
            self.progress.losses.append(loss)  # in place: copying a list per step is quadratic
            self.progress = replace(
                self.progress, step=step + 1, clips_seen=self.progress.clips_seen + s.total_batch, seconds=seconds
            )
            if budget is not None and seconds >= budget:  # out of time: the schedule ends here
                self.progress = replace(self.progress, total_steps=self.progress.step)
            elif budget is not None and not self.progress.refitted and self._paced(start_step, start_seconds, budget):
                self._refit(budget, start_step, start_seconds)
            on_step(self._report(loss, now - began, start_step))
            if now - last_save >= s.checkpoint_minutes * 60 and self.progress.step < self.progress.total_steps:
                self._checkpoint()
                last_save = time.monotonic()

    def _paced(self, start_step: int, start_seconds: float, budget: float) -> bool:
        """Enough steps timed in this session to fit the schedule to their pace."""
        steps, seconds = self.progress.step - start_step, self.progress.seconds - start_seconds
        return steps >= REFIT_MIN_STEPS and seconds >= REFIT_AFTER * budget

    def _refit(self, budget: float, start_step: int, start_seconds: float) -> None:
        planned = self.progress.total_steps
        self.progress = refit_to_pace(self.progress, budget, start_step, start_seconds)
        self.schedule = scaled_schedule(self.settings.lr, self.settings.total_batch, self.progress.total_steps)
        if self.progress.total_steps != planned:
            self.say(f"fitted to the pace of the steps so far: {self.progress.total_steps} steps (planned {planned})")

    def _step(self, step: int) -> float:
        batches = [self._micro_batch(step, m) for m in range(self.settings.accum)]
        lr = self.schedule.at(step)
        try:
            return train_step(
                self.model, self.optimizer, batches, lr, self.settings.clip_grad, self.runtime.autocast, self.objective
            )
        except NonFiniteLoss as exc:
            raise PretrainError(f"step {step + 1}: {exc}") from exc
        except torch.OutOfMemoryError as exc:
            raise self._memory_error() from exc
        except RuntimeError as exc:
            if "allocate" in str(exc) or "out of memory" in str(exc):
                raise self._memory_error() from exc
            raise

    def _memory_error(self) -> PretrainError:
        s = self.settings
        return PretrainError(
            f"not enough memory for a batch of {s.batch_size} {self.spec.variant} clips on "
            f"{self.runtime.device}: use a smaller --batch-size and a larger --accum (same total batch)"
        )

    def _micro_batch(self, step: int, micro: int) -> MicroBatch:
        s = self.settings
        first = (step * s.accum + micro) * s.batch_size
        frames = torch.from_numpy(self.prefetch.take(first))  # uint8 (B, T, S, S, 3)
        clips = frames.to(self.runtime.device).permute(0, 4, 1, 2, 3).float().div_(255)
        generator = torch.Generator().manual_seed(step_seed(s.seed, step * s.accum + micro))
        hidden, decoded = make_masks(self.masks, self.grid, s.batch_size, generator)
        device = self.runtime.device
        return MicroBatch(clips, hidden.to(device), decoded.to(device), generator)

    def _report(self, loss: float, elapsed: float, start_step: int) -> StepReport:
        done = self.progress.step - start_step
        per_step = elapsed / done
        left = (self.progress.total_steps - self.progress.step) * per_step
        if self.settings.minutes is not None:
            left = min(left, max(0.0, self.settings.minutes * 60 - self.progress.seconds))
        rate = done * self.settings.total_batch / elapsed if elapsed > 0 else 0.0
        return StepReport(self.progress.step, self.progress.total_steps, loss, elapsed, rate, left)

    # -- files ---------------------------------------------------------------------------------
    def _checkpoint(self) -> None:
        state = TrainingState(
            run_options(self.settings, self.spec),
            save_pretrain_state(self.model),
            self.optimizer.state_dict(),
            self.progress,
            torch.get_rng_state(),
        )
        save_checkpoint(self.path, state)

    def _finish(self, stopped: bool) -> PretrainReport:
        self._checkpoint()
        weights = save_encoder_weights(pretrain_dir(self.settings.data), encoder_state(self.model))
        curve = curve_path(self.path)
        losses = self.progress.losses
        s = self.settings
        save_curve(curve, losses, f"{self.spec.variant}, {s.mask} {s.mask_ratio:g}, batch {s.total_batch}")
        return PretrainReport(
            self.path,
            weights,
            curve,
            self.progress.step,
            self.progress.clips_seen,
            losses[0] if losses else None,
            losses[-1] if losses else None,
            self.progress.seconds,
            stopped,
        )
