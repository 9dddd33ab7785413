"""Index progress in seconds of video: planned up front, advanced per embedded window, never past the total,
one text for the CLI line and the UI bar; and the UI items of issue 13 (min-score default, empty state)."""

from __future__ import annotations

import io
import re
import time
import warnings
from pathlib import Path

import pytest
from helpers import settings

from app.demo import synthesize_video
from app.progress_text import format_duration, progress_text
from indexer.decode import probe
from indexer.pipeline import run_index
from indexer.progress import ProgressCounter, ProgressSnapshot, VideoSeconds

CLOCK_LIKE = re.compile(r"\d:\d\d")  # "0:00.00", "1:20": reads as a position in a video, not a duration


class Recorder:
    """A Progress that keeps every update (the pipeline's receiver in a test)."""

    def __init__(self, total: float):
        self.total, self.updates, self.closed = total, [], False

    def update(self, n: float) -> None:
        self.updates.append(n)

    def set_postfix_str(self, s: str) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("progress-footage")
    synthesize_video(root / "short.mp4", seed=1, seconds=3.0, width=160, height=120)
    synthesize_video(root / "longer.mp4", seed=2, seconds=5.0, width=160, height=120)
    return root


def test_counter_grows_monotonically_and_never_passes_its_total():
    now = [100.0]
    counter = ProgressCounter(10.0, clock=lambda: now[0])
    seen = []
    for step in [3.0, 0.0, -1.0, 4.0, 5.0, 2.0]:  # overshoots by 3 s, and a negative step
        now[0] += 1
        counter.update(step)
        seen.append(counter.snapshot().done_s)
    assert seen == [3.0, 3.0, 3.0, 7.0, 10.0, 10.0]
    assert counter.snapshot().fraction == 1.0 and counter.snapshot().elapsed_s == 6.0


def test_video_seconds_clamp_each_video_and_top_it_up_when_it_finishes():
    counter = ProgressCounter(8.0)
    seconds = VideoSeconds({"a": 3.0, "b": 5.0}, counter)
    assert seconds.total_s == 8.0
    seconds.reached("a", 2.1)
    seconds.reached("a", 1.0)  # an earlier window embedded later: no step back
    seconds.reached("a", 3.4)  # past the stated duration: counts 3.0 at most
    assert counter.snapshot().done_s == pytest.approx(3.0)
    seconds.reached("b", 2.0)
    seconds.finished("b")  # decoded shorter than stated, or failed: all of it is done
    seconds.finished("b")
    assert counter.snapshot().done_s == pytest.approx(8.0) and counter.snapshot().fraction == 1.0


def test_eta_is_a_duration_from_the_observed_rate():
    assert ProgressSnapshot(200.0, 0.0, 5.0).eta_seconds() is None  # no rate yet
    snapshot = ProgressSnapshot(200.0, 40.0, 20.0)  # 2 s of video per second: 160 s left take 80 s
    assert snapshot.eta_seconds() == pytest.approx(80.0)
    text = progress_text(snapshot)
    assert text == "20% · 40 s of 3 min 20 s of video embedded · about 1 min 20 s left"
    assert not CLOCK_LIKE.search(text)
    assert progress_text(ProgressSnapshot(200.0, 0.0, 3.0)) == (
        "0% · 0 s of 3 min 20 s of video embedded · estimating time left"
    )
    assert [format_duration(s) for s in (0, 42.4, 80, 3599.4, 7530)] == [
        "0 s",
        "42 s",
        "1 min 20 s",
        "59 min 59 s",
        "2 h 06 min",
    ]


def test_texts_of_each_stage_of_a_run():
    assert progress_text(ProgressSnapshot()) == "0% · scanning and planning"
    assert progress_text(ProgressSnapshot(0.0), "done") == "100% · nothing new to index"
    assert progress_text(ProgressSnapshot(90.0, 90.0, 30.0), "done") == "100% · 1 min 30 s of video embedded in 30 s"
    assert progress_text(ProgressSnapshot(90.0, 89.9, 30.0)).startswith("99% ·")  # 100% only once all is embedded
    assert progress_text(ProgressSnapshot(90.0, 30.0, 30.0), "cancelled") == (
        "cancelled at 33% · 30 s of 1 min 30 s of video embedded"
    )


@pytest.mark.slow  # two index runs
def test_pipeline_plans_seconds_of_video_and_advances_per_window(footage, tmp_path):
    bars: list[Recorder] = []

    def factory(total):
        bars.append(Recorder(total))
        return bars[-1]

    report = run_index(settings(tmp_path / "data"), [footage], factory)
    stated = sum(probe(p).duration for p in footage.glob("*.mp4"))
    (bar,) = bars
    assert bar.total == pytest.approx(stated)  # seconds of video, not bytes
    assert all(n > 0 for n in bar.updates) and bar.closed
    assert len(bar.updates) >= report.clips_embedded  # a step per embedded window, not per video
    assert sum(bar.updates) == pytest.approx(stated)  # ends exactly at the total, never past it

    bars.clear()
    rerun = run_index(settings(tmp_path / "data"), [footage], factory)  # nothing new
    assert rerun.files.unchanged == 2 and bars[0].total == 0 and bars[0].updates == []


@pytest.mark.slow  # two index runs
def test_a_no_op_ui_run_ends_done_at_100_percent(footage, tmp_path):
    from app.jobs import IndexJobs
    from app.ui import progress_html

    jobs = IndexJobs(lambda: settings(tmp_path / "data"), [footage])
    first = jobs.start(str(footage)) and jobs.wait(120)
    assert first.status == "done" and first.fraction == 1.0
    again = jobs.start(str(footage)) and jobs.wait(120)
    assert again.status == "done" and again.progress.total_s == 0
    page = progress_html(again)
    assert 'value="1.000"' in page and "100% · nothing new to index" in page and "· 0%" not in page


def test_cli_and_ui_show_the_same_progress_text():
    from app.cli_output import TerminalProgress
    from app.jobs import JobState
    from app.ui import progress_html

    counter = ProgressCounter(200.0)
    counter.update(40.0)
    snapshot = counter.snapshot()
    line = TerminalProgress(counter, TTY()).line()
    text = progress_text(snapshot)
    assert line.startswith(f"indexing: {text[:30]}")
    assert text[:30] in progress_html(JobState("running", "/footage", progress=snapshot))


def test_cli_bar_on_a_terminal_never_warns_and_ends_at_100(monkeypatch):
    from app.cli_output import progress_bar

    stderr = TTY()
    monkeypatch.setattr("sys.stderr", stderr)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bar = progress_bar(10.0)
        bar.update(6.0)
        time.sleep(0.2)  # past tqdm's redraw interval (the bar this replaced warned on its redraw)
        bar.update(4.25)  # more than planned (a file longer than it said): held at the total
        bar.close()
    assert [str(w.message) for w in caught] == []
    assert "TqdmWarning" not in stderr.getvalue() and "clamping" not in stderr.getvalue()
    assert bar.counter.snapshot().done_s == 10.0
    assert "indexing: 60% · 6 s of 10 s of video embedded" in stderr.getvalue()


def test_ui_min_score_starts_where_the_cli_does(tmp_path):
    import gradio as gr

    import run
    from app.query import QueryError
    from app.search import SearchService
    from app.ui import SearchForm, build_ui
    from indexer.settings import DataDir

    cli = run.search_request(run.build_parser().parse_args(["search", "--text", "a dog", "-k", "12"]))
    demo = build_ui(SearchService(DataDir(tmp_path), "cpu", "fp32"), None, DataDir(tmp_path))
    (widget,) = [b for b in demo.blocks.values() if getattr(b, "label", None) == "Minimum score"]
    # Gradio's frontend shows and sends 0 for a Number left empty: that would be a cut-off the CLI does not make
    assert not (isinstance(widget, gr.Number) and widget.value is None)
    assert (float(widget.value) if widget.value not in (None, "") else None) == cli.options.min_score
    tables = [b for b in demo.blocks.values() if isinstance(b, gr.Dataframe)]
    assert [t.elem_id for t in tables] == ["library", "recent"]
    assert [t.interactive for t in tables] == [False, False]  # selectable (timeline), never editable

    with gr.Blocks():
        form = SearchForm(*(gr.Textbox() for _ in range(17)))
    untouched = {form.text: "a dog", form.k: 12, form.min_score: widget.value, form.min_dur: 0, form.max_dur: 0}
    assert form.request(untouched) == cli  # the UI's untouched filters ask what the CLI's defaults ask
    with pytest.raises(QueryError, match="min_score must be a number, got 'high'"):
        form.request({**untouched, form.min_score: "high"})


def test_empty_state_says_what_the_index_tab_offers(tmp_path):
    from app.jobs import IndexJobs
    from app.search import SearchService
    from app.ui import Handlers
    from indexer.settings import DataDir

    data = DataDir(tmp_path / "data")
    service = SearchService(data, "cpu", "fp32")
    no_roots = Handlers(service, IndexJobs(lambda: settings(tmp_path / "data"), []), data).search(None)[1]
    assert "Index* tab" not in no_roots and "--root DIR" in no_roots and "python run.py index PATH" in no_roots
    assert Handlers(service, None, data).search(None)[1] == no_roots
    with_roots = Handlers(service, IndexJobs(lambda: settings(tmp_path / "data"), [tmp_path]), data).search(None)[1]
    assert "*Index* tab" in with_roots
