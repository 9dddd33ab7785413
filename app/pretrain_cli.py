"""What `run.py pretrain` prints: the progress line (loss, speed, time left) and the closing summary."""

from __future__ import annotations

import shutil
import sys
import time

from app.progress_text import format_duration

QUIET_LINE_EVERY_S = 30.0  # not a terminal (a log file): one progress line this often, and the last one


def step_line(report) -> str:
    """E.g. `pretraining: step 12/100 · loss 0.8123 · 6.2 clips/s · about 1 min 20 s left`."""
    left = "" if report.seconds_left is None else f" · about {format_duration(report.seconds_left)} left"
    return (
        f"pretraining: step {report.step}/{report.total_steps} · loss {report.loss:.4f} · "
        f"{report.clips_per_s:.1f} clips/s{left}"
    )


class PretrainProgress:
    """Redraws one line on a terminal; elsewhere prints a line every QUIET_LINE_EVERY_S and at the end."""

    def __init__(self, stream=None, interval_s: float = 0.5):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval_s = interval_s if self.tty else QUIET_LINE_EVERY_S
        self._drawn_at: float | None = None
        self._open_line = False

    def __call__(self, report) -> None:
        now = time.monotonic()
        last = report.step >= report.total_steps
        if not last and self._drawn_at is not None and now - self._drawn_at < self.interval_s:
            return
        self._drawn_at = now
        if self.tty:
            width = shutil.get_terminal_size().columns - 1
            self.stream.write("\r" + step_line(report)[:width] + "\x1b[K")
            self._open_line = True
        else:
            self.stream.write(step_line(report) + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._open_line:
            self.stream.write("\n")
            self.stream.flush()
            self._open_line = False


def print_pretrain_report(report, stream=None) -> None:
    out = stream or sys.stdout
    first = "n/a" if report.first_loss is None else f"{report.first_loss:.4f}"
    final = "n/a" if report.final_loss is None else f"{report.final_loss:.4f}"
    print(
        f"{_count(report.steps, 'step')}, {_count(report.clips_seen, 'clip')} in {format_duration(report.seconds)}; "
        f"loss {first} -> {final}",
        file=out,
    )
    print(f"checkpoint:      {report.checkpoint}", file=out)
    print(f"loss curve:      {report.curve}", file=out)
    print(f"encoder weights: {report.encoder_weights}", file=out)
    print(f"  use them: run.py index PATH --weights {report.encoder_weights}", file=out)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
