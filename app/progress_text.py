"""The one progress line of an index run, shown by the CLI (stderr) and the web UI's Index tab.

Amounts of video and time left are durations ("1 min 20 s"), never clock-like "1:20.00", which
read as a position in a video.
"""

from __future__ import annotations

from indexer.progress import ProgressSnapshot


def format_duration(seconds: float) -> str:
    """`42 s`, `1 min 20 s`, `2 h 05 min`: rounded to what a reader can use."""
    total = max(0, round(seconds))
    if total < 60:
        return f"{total} s"
    if total < 3600:
        minutes, secs = divmod(total, 60)
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(round(total / 60), 60)
    return f"{hours} h {minutes:02d} min"


def progress_text(snapshot: ProgressSnapshot, status: str = "running") -> str:
    """E.g. `37% · 55 s of 2 min 30 s of video embedded · about 1 min 30 s left`.

    `status` is the run's: running | done | cancelled | failed.
    """
    if not snapshot.planned:
        return "0% · scanning and planning" if status == "running" else f"{status} before indexing started"
    if snapshot.total_s == 0:
        return "100% · nothing new to index" if status in ("running", "done") else f"{status} · nothing to index"
    amount = f"{format_duration(snapshot.done_s)} of {format_duration(snapshot.total_s)} of video embedded"
    if status == "done":
        return f"100% · {format_duration(snapshot.total_s)} of video embedded in {format_duration(snapshot.elapsed_s)}"
    percent = int(snapshot.fraction * 100)  # rounded down: 100% only once every second is embedded
    if status != "running":
        return f"{status} at {percent}% · {amount}"
    if snapshot.fraction >= 1:
        return f"100% · {amount} · saving the index"
    eta = snapshot.eta_seconds()
    left = f"about {format_duration(max(eta, 1.0))} left" if eta is not None else "estimating time left"
    return f"{percent}% · {amount} · {left}"
