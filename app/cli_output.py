"""Human-readable output for the CLI (JSON output is the records' own `to_json`)."""

from __future__ import annotations

import shutil
import sys
import time

from app.progress_text import progress_text
from indexer.progress import ProgressCounter
from indexer.recorded import local_text
from indexer.records import IndexReport, Moment


def progress_bar(total_s: float, stream=None) -> TerminalProgress:
    """The index run's progress line (app/progress_text.py) on a terminal's stderr, silent otherwise."""
    stream = stream or sys.stderr
    return TerminalProgress(ProgressCounter(total_s), stream, enabled=stream.isatty() and total_s > 0)


class TerminalProgress:
    """Redraws one line in place, at most every `interval_s`; the counter keeps the numbers."""

    def __init__(self, counter: ProgressCounter, stream, enabled: bool = True, interval_s: float = 0.5):
        self.counter, self.stream, self.enabled, self.interval_s = counter, stream, enabled, interval_s
        self._drawn_at: float | None = None

    def update(self, n: float) -> None:
        self.counter.update(n)
        self._draw()

    def set_postfix_str(self, s: str) -> None:
        self.counter.set_postfix_str(s)

    def close(self) -> None:
        if self.enabled and self._drawn_at is not None:
            self.stream.write("\r\x1b[K")  # the report printed next replaces the line
            self.stream.flush()

    def line(self) -> str:
        snapshot = self.counter.snapshot()
        current = f" · {snapshot.current}" if snapshot.current else ""
        return f"indexing: {progress_text(snapshot)}{current}"

    def _draw(self) -> None:
        now = time.monotonic()
        if not self.enabled or (self._drawn_at is not None and now - self._drawn_at < self.interval_s):
            return
        self._drawn_at = now
        width = shutil.get_terminal_size().columns - 1
        self.stream.write("\r" + self.line()[:width] + "\x1b[K")
        self.stream.flush()


def format_time(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:05.2f}" if hours else f"{minutes}:{secs:05.2f}"


def print_index_report(report: IndexReport) -> None:
    c = report.files
    vectors = ", ".join(f"{n} {name}" for name, n in report.vectors_embedded.items())
    print(
        f"{c.new} new, {c.changed} changed, {c.unchanged} unchanged, {c.moved} moved, "
        f"{c.deleted} deleted, {c.failed} failed, {c.skipped} skipped; "
        f"{report.clips_embedded} clips embedded ({vectors} vectors) in {report.seconds:.1f} s"
    )
    if report.windows_skipped:
        print(
            f"  {report.windows_skipped} windows skipped (no different from the last embedded one; "
            f"--every-window embeds them), about {report.seconds_saved:.1f} s saved"
        )
    for tower in report.activated:
        print(f"  switched: the {tower} tower now searches its new vector set (old one kept: `run.py drop-set old`)")
    for name, built in report.building.items():
        print(
            f"  building {name}: {built['vectors']} of {built['clips']} clips; searches use the active set until "
            + ("`run.py activate`" if built["vectors"] >= built["clips"] else "it is complete (run the same command)")
        )
    for warning in report.warnings:
        print(f"  warning: {warning.path}: {warning.error}")
    for failure in report.failures:
        print(f"  failed: {failure.path}: {failure.error}")


def print_no_match(result, options, file=None) -> None:
    """The "no (good) match" line, on `file` (default: stdout, looked up now, not at import)."""
    file = file or sys.stdout
    if result.best_score is None:
        print("No match: nothing indexed passes the filters.", file=file)
    else:
        print(
            f"No good match: the best score is {result.best_score:.2f}, below --min-score {options.min_score:g}.",
            file=file,
        )


SCORE_NOTE = (
    "score: calibrated z-score, standard deviations above the library's typical clip for this query "
    "(0 = typical, higher = closer); [...]: raw cosine similarity per query part"
)


def _moment_line(rank: int, m: Moment, dated: bool = False) -> str:
    span = f"{format_time(m.start)}-{format_time(m.end)}"
    peak = f"{format_time(m.peak_start)}-{format_time(m.peak_end)}"
    parts = " ".join(f"{k}={v:.3f}" for k, v in m.scores.items())
    return (
        f"{rank:3d}. {m.score:6.2f}  {span:>19}  {peak:>19}  clip {m.clip_id:<6d} {_when(m, dated)}{m.path}  [{parts}]"
    )


def _when(m: Moment, dated: bool) -> str:
    """The recorded column (wall clock, this machine's local time), when the result has one."""
    if not dated:
        return ""
    return f"{local_text(m.recorded.at) if m.recorded else '':<19}  "


def _header(dated: bool) -> str:
    """Column names over `_moment_line`'s columns: the moment, its best window (peak), that window's id."""
    recorded = f"{'recorded':<19}  " if dated else ""
    return f"{'#':>3}  {'score':>6}  {'moment':>19}  {'peak':>19}  {'clip':<12}{recorded}path"


def print_result(result, options) -> None:
    if result.no_match:
        print_no_match(result, options)
        return
    moments = [m for group in result.videos for m in group.moments[:3]] if options.group == "video" else result.moments
    dated = any(m.recorded for m in moments)
    print(SCORE_NOTE)
    print(_header(dated))
    if options.group == "video":
        for rank, group in enumerate(result.videos, 1):
            print(f"{rank:3d}. {group.score:6.2f}  {group.path}")
            for m in group.moments[:3]:
                print("     " + _moment_line(0, m, dated)[5:])
        return
    for rank, moment in enumerate(result.moments, 1):
        print(_moment_line(rank, moment, dated))


def print_status(status: dict) -> None:
    print(f"data dir: {status['data']}")
    if not status["indexed"]:
        print("nothing indexed yet: run `python run.py index PATH`")
        return
    videos = ", ".join(f"{n} {state}" for state, n in sorted(status["videos"].items())) or "none"
    print(f"videos: {videos}; clips: {status['clips']}; footage: {status['hours']:.2f} h")
    for name, tower in status["towers"].items():
        print(f"{name} tower: {_describe_tower(tower['identity'])}")
        print(f"  {tower['vectors']} vectors, index file {tower['index_problem'] or 'current'}")
        ran = tower.get("indexed_with") or "unknown"
        print(f"  runtime: last indexed with {ran}; search: {tower['search_runtime']}")
        for converted in tower.get("converted", []):
            print(f"  converted: {converted}")
    for vset in status.get("vector_sets", []):
        if vset["role"] != "active":
            print(_other_set_line(vset))
    if not all(tower["index_current"] for tower in status["towers"].values()):
        print("searching rebuilds index files from the catalog; `python run.py index` or `status --repair` saves them")
    for failure in status["failures"]:
        print(f"  failed: {failure['path']}: {failure['error']}")


def _other_set_line(vset: dict) -> str:
    """A vector set beside the active ones: one being built for another encoder, or one replaced by it."""
    covered = f"{vset['vectors']} of {vset['clips']} clips"
    if vset["role"] == "new":
        then = "`run.py activate` switches to it" if vset["complete"] else "`run.py index PATH` goes on building it"
        return f"new {vset['tower']} set {vset['name']} ({covered}; {then}): {_describe_tower(vset['identity'])}"
    return f"old {vset['tower']} set {vset['name']} ({covered}; `run.py drop-set old` frees it): " + (
        _describe_tower(vset["identity"])
    )


def _describe_tower(identity: dict) -> str:
    """What made a tower's vectors, in one line: kind, architecture, weights, checksum, sampling or frames."""
    model = identity.get("variant") or identity.get("model")
    how = f"sampling={identity['sampling']}" if "sampling" in identity else f"frames={identity.get('frames_per_clip')}"
    return f"{identity['tower']} {model} weights={identity['weights']} sha256={identity['sha256'][:12]} {how}"


def print_switch(report) -> None:
    """What `activate` / `drop-set` did (indexer/switch.py SwitchReport)."""
    for tower in report.activated:
        print(f"the {tower} tower now searches its new vector set")
    if report.dropped:
        print(f"dropped {', '.join(report.dropped)}: {report.vectors_dropped} vectors deleted")
    elif not report.activated:
        print("no such vector set: nothing dropped")


def print_check(report) -> None:
    for line in report.repaired:
        print(f"repaired: {line}")
    for line in report.problems:
        print(f"problem: {line}")
    for line in report.notes:
        print(f"note: {line}")
    print(
        "OK: catalog, index files and footage agree."
        if report.ok
        else "Problems found: `python run.py status --repair` rebuilds what derives from the catalog."
    )


def print_watch_report(report: IndexReport, paths) -> None:
    """One batch of a watch: when, how many paths went quiet, and the usual index summary."""
    print(f"{time.strftime('%H:%M:%S')} {len(paths)} changed path(s) settled: ", end="")
    print_index_report(report)
    sys.stdout.flush()


def print_watch_busy(message: str, waiting: int) -> None:
    print(f"busy: {message}; {waiting} changed path(s) wait and are retried", file=sys.stderr, flush=True)
