"""When each video was recorded (issue 13 item 10): the parser, the probe, the catalog's schema 4 -> 5 migration,
the recording-time filters (inside the vector search), `--sort time`, and the time shown by the CLI, JSON,
API and UI.

The module runs in Europe/Berlin (UTC+1 in winter and spring), so a file name's local time and a tag's UTC
differ by an hour and a mix-up shows."""

from __future__ import annotations

import shutil
import sqlite3
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from helpers import cli_in_process, index, search

from app.demo import synthesize_video
from app.query import Filters, QueryError, build_request
from app.search import SearchService, by_recording_time, recorded_in_range
from app.ui import Handlers, form_request
from indexer.catalog import Catalog, VideoRow
from indexer.decode import probe
from indexer.recorded import Recorded, parse_tag_time, recording_start, time_from_file_name
from indexer.records import Moment
from indexer.settings import DataDir

NOW = datetime(2026, 12, 1, 12, 0)  # naive UTC, the parser's "now" in its unit tests
TAGGED_AT = "2024-03-05T06:00:00.000000Z"  # creation_time of tagged.mp4: 07:00 in Berlin
NAMED = "VID_20240101_120000.mp4"  # 12:00 Berlin = 11:00 UTC


@pytest.fixture(scope="module", autouse=True)
def berlin():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TZ", "Europe/Berlin")
        time.tzset()
        yield
    time.tzset()


def _parse_name(name: str) -> datetime | None:
    return time_from_file_name(name, NOW)


# -- the parser ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, local",
    [
        ("20240101_120000.mp4", "2024-01-01 12:00:00"),  # Samsung and most Android cameras
        ("VID_20240101_120000.mp4", "2024-01-01 12:00:00"),
        ("PXL_20240101_120000123.mp4", "2024-01-01 12:00:00"),  # Pixel: milliseconds appended
        ("2024-01-01T12-00-00.mkv", "2024-01-01 12:00:00"),
        ("2024-01-01 12.00.00.mov", "2024-01-01 12:00:00"),  # Dropbox camera uploads
        ("2024-01-01 12-00-00.mkv", "2024-01-01 12:00:00"),  # OBS
        ("Screen Recording 2024-01-01 at 12.00.00.mov", "2024-01-01 12:00:00"),  # macOS
        ("20240101120000_0001.MP4", "2024-01-01 12:00:00"),  # dash cams
        ("2024-07-01_08-30-15_front.mp4", "2024-07-01 08:30:15"),  # summer: UTC+2
    ],
)
def test_camera_file_names_give_their_local_time_as_utc(name, local):
    offset = 2 if "07-01" in name else 1  # Berlin: CEST in July, CET in January
    assert _parse_name(name) == datetime.fromisoformat(local) - timedelta(hours=offset)


@pytest.mark.parametrize(
    "name",
    [
        "holiday.mp4",
        "1080p_20240101.mp4",  # a date without a time of day
        "19700101_000000.mp4",  # an unset clock
        "19040101_000000.mov",
        "20991231_235959.mp4",  # the future
        "20241301_120000.mp4",  # month 13
        "20240230_120000.mp4",  # 30 February
        "20240101_256000.mp4",  # 25:60
        "cam-12345678901234567.mp4",  # a long number
        "a_120000_20240101.mp4",  # time before date
        "20240101_1200001.mp4",  # a seventh time digit
    ],
)
def test_junk_file_names_give_no_time(name):
    assert _parse_name(name) is None


def test_tags_state_utc_or_an_offset():
    assert parse_tag_time("2024-01-01T12:00:00.000000Z") == datetime(2024, 1, 1, 12)
    assert parse_tag_time("2024-01-01T12:00:00+0100") == datetime(2024, 1, 1, 11)  # QuickTime creationdate
    assert parse_tag_time("2024-01-01T12:00:00-05:00") == datetime(2024, 1, 1, 17)
    assert parse_tag_time("2024-01-01 12:00:00 UTC") == datetime(2024, 1, 1, 12)
    assert parse_tag_time("2024-01-01 12:00:00") == datetime(2024, 1, 1, 12)  # no zone: UTC, as FFmpeg writes
    for junk in ("2024", "2024-01-01", "yesterday", "", "2024-02-30T00:00:00Z", "2024-01-01T25:00:00Z"):
        assert parse_tag_time(junk) is None, junk


def test_tags_win_over_the_file_name_and_implausible_tags_are_skipped():
    container = {"creation_time": "2024-03-05T06:00:00.000000Z"}
    assert recording_start([container], NAMED, NOW) == Recorded(datetime(2024, 3, 5, 6), "metadata")
    apple = {"com.apple.quicktime.creationdate": "2024-03-05T08:00:00+0100", "creation_time": "2024-03-09T00:00:00Z"}
    assert recording_start([apple], "x.mov", NOW) == Recorded(datetime(2024, 3, 5, 7), "metadata")
    stream = {"DATE_RECORDED": "2024-03-05T06:00:00Z"}  # Matroska, on a stream, any case
    assert recording_start([{}, stream], "x.mkv", NOW) == Recorded(datetime(2024, 3, 5, 6), "metadata")
    unset = {"creation_time": "1970-01-01T00:00:00.000000Z"}  # a camera without a clock: the name decides
    assert recording_start([unset], NAMED, NOW) == Recorded(datetime(2024, 1, 1, 11), "filename")
    assert recording_start([{"creation_time": "2027-01-01T00:00:00Z"}], "x.mp4", NOW) is None  # after NOW + 1 day
    assert recording_start([{"encoder": "Lavf62"}], "holiday.mp4", NOW) is None


def test_recorded_shifts_and_prints_as_utc():
    recorded = Recorded(datetime(2024, 3, 5, 6), "metadata").shifted(61.9)
    assert recorded == Recorded(datetime(2024, 3, 5, 6, 1, 1, 900000), "metadata")
    assert recorded.to_json() == "2024-03-05T06:01:01Z"


# -- probe, index, migration --------------------------------------------------------------------


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    lib = tmp_path_factory.mktemp("recorded-library")
    synthesize_video(lib / "tagged.mp4", 0, seconds=4, width=160, height=120, metadata={"creation_time": TAGGED_AT})
    synthesize_video(lib / NAMED, 1, seconds=4, width=160, height=120)
    synthesize_video(lib / "plain.mp4", 2, seconds=4, width=160, height=120)
    return lib


@pytest.fixture(scope="module")
def indexed(library, tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("recorded-data")
    index(data, library)
    return data


def test_probe_reads_creation_time_written_by_pyav(library):
    assert probe(library / "tagged.mp4").recorded == Recorded(datetime(2024, 3, 5, 6), "metadata")
    assert probe(library / NAMED).recorded == Recorded(datetime(2024, 1, 1, 11), "filename")
    assert probe(library / "plain.mp4").recorded is None


def _videos(data: Path) -> dict[str, tuple]:
    with sqlite3.connect(data / "catalog.db") as conn:
        rows = conn.execute(
            "SELECT p.path, v.recorded_at, v.recorded_source FROM videos v JOIN paths p ON p.video_id = v.id"
        ).fetchall()
    return {Path(path).name: (at, source) for path, at, source in rows}


def _vectors(data: Path) -> list[tuple]:
    with sqlite3.connect(data / "catalog.db") as conn:
        return conn.execute("SELECT set_id, clip_id, data FROM vectors ORDER BY set_id, clip_id").fetchall()


@pytest.mark.slow  # the indexed library
def test_index_stores_the_recording_start_and_its_source(indexed):
    assert _videos(indexed) == {
        "tagged.mp4": ("2024-03-05 06:00:00.000000", "metadata"),
        NAMED: ("2024-01-01 11:00:00.000000", "filename"),
        "plain.mp4": (None, "unknown"),
    }


# The videos table as Tubelet with schema 4 (commit 555622a) creates it.
SCHEMA_4_VIDEOS = (
    "CREATE TABLE videos (\n\tid INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, \n\tfingerprint VARCHAR(64) NOT NULL, "
    "\n\tsize BIGINT NOT NULL, \n\tstatus VARCHAR(16) NOT NULL, \n\terror TEXT, \n\tcodec VARCHAR(32), "
    "\n\twidth INTEGER, \n\theight INTEGER, \n\tfps FLOAT, \n\tduration FLOAT, \n\tframes INTEGER, "
    "\n\tindexed_at DATETIME, \n\tUNIQUE (fingerprint)\n)"
)


@pytest.mark.slow  # the indexed library
def test_a_schema_4_catalog_is_migrated_keeping_its_vectors_and_the_next_index_fills_recording_times(
    indexed, library, tmp_path
):
    data = tmp_path / "data"
    shutil.copytree(indexed, data)
    with sqlite3.connect(data / "catalog.db") as conn:  # back to exactly what schema 4 made
        conn.execute("ALTER TABLE videos DROP COLUMN recorded_at")
        conn.execute("ALTER TABLE videos DROP COLUMN recorded_source")
        conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
        conn.execute("DROP TABLE alembic_version")  # schema 4 predates Alembic
        assert conn.execute("SELECT sql FROM sqlite_master WHERE name = 'videos'").fetchone()[0] == SCHEMA_4_VIDEOS
    vectors = _vectors(data)

    catalog = Catalog(DataDir(data).catalog).open()
    assert catalog.get_meta("schema_version") == "5"
    catalog.close()
    assert _vectors(data) == vectors
    assert {source for _, source in _videos(data).values()} == {None}  # not looked at yet
    hits = search(data, "--text", "a disc", "-k", "20")
    assert {Path(h["path"]).name for h in hits} == {NAMED, "tagged.mp4", "plain.mp4"}  # searchable at once
    assert all(hit["recorded_at"] is None for hit in hits)

    report = index(data, library)
    assert report["clips_embedded"] == 0 and set(report["vectors_embedded"].values()) == {0}
    assert report["files"]["unchanged"] == 3
    assert _videos(data) == _videos(indexed)
    assert _vectors(data) == vectors


# -- filters and sorting ------------------------------------------------------------------------


def _runs(items) -> list:
    """`items` with each run of equal neighbours collapsed to one: the order of videos in a list of moments."""
    out: list = []
    for item in items:
        if not out or out[-1] != item:
            out.append(item)
    return out


def _clip_ids(hits: list[dict]) -> set[int]:
    return {clip_id for hit in hits for clip_id in hit["clip_ids"]}


def _clips_by_video(data: Path) -> dict[str, list[tuple[int, float]]]:
    with sqlite3.connect(data / "catalog.db") as conn:
        rows = conn.execute(
            "SELECT p.path, c.id, c.start FROM clips c JOIN paths p ON p.video_id = c.video_id ORDER BY c.id"
        ).fetchall()
    clips: dict[str, list[tuple[int, float]]] = {}
    for path, clip_id, start in rows:
        clips.setdefault(Path(path).name, []).append((clip_id, round(start, 3)))
    return clips


@pytest.mark.slow  # the indexed library
def test_each_video_has_two_windows(indexed):
    assert {name: [s for _, s in clips] for name, clips in _clips_by_video(indexed).items()} == {
        "tagged.mp4": [0.0, 1.867],
        NAMED: [0.0, 1.867],
        "plain.mp4": [0.0, 1.867],
    }


@pytest.mark.slow  # the indexed library
def test_recorded_filters_return_exactly_the_clips_inside_the_range(indexed):
    clips = _clips_by_video(indexed)
    tagged, named = [c for c, _ in clips["tagged.mp4"]], [c for c, _ in clips[NAMED]]
    everything = ["--text", "a disc", "-k", "100"]
    # tagged.mp4 starts at 07:00:00 Berlin; its second window at 07:00:01.867.
    assert _clip_ids(search(indexed, *everything, "--recorded-after", "2024-03-05T07:00:01")) == {tagged[1]}
    assert _clip_ids(search(indexed, *everything, "--recorded-after", "2024-03-05T07:00:00")) == set(tagged)
    assert _clip_ids(search(indexed, *everything, "--recorded-before", "2024-03-05T07:00:01")) == {
        tagged[0],
        *named,
    }
    # A date is its midnight, local time; an offset is honoured; unknown (plain.mp4) is never inside.
    assert _clip_ids(search(indexed, *everything, "--recorded-after", "2024-01-01", "--recorded-before", "2024-01-02"))
    assert _clip_ids(search(indexed, *everything, "--recorded-before", "2024-01-02")) == set(named)
    assert _clip_ids(search(indexed, *everything, "--recorded-after", "2024-01-01T11:00:01+00:00")) == {
        named[1],
        *tagged,
    }
    assert _clip_ids(search(indexed, *everything, "--recorded-after", "1990-01-01")) == {*tagged, *named}
    done = cli_in_process("search", "--data", indexed, *everything, "--recorded-after", "2030-01-01")
    assert "No match: nothing indexed passes the filters." in done.stdout


def test_recorded_range_is_checked():
    with pytest.raises(QueryError, match="--recorded-before takes an ISO date"):
        build_request(text="x", recorded_before="last tuesday")
    with pytest.raises(QueryError, match="must be later than"):
        build_request(text="x", recorded_after="2024-01-02", recorded_before="2024-01-01")
    with pytest.raises(QueryError, match="sort must be one of score, time"):
        build_request(text="x", sort="name")


def test_recorded_in_range_per_clip_and_unknown_excluded():
    import numpy as np

    videos = [
        VideoRow(1, ("/a.mp4",), 60.0, None, datetime(2024, 1, 1, 12)),
        VideoRow(2, ("/b.mp4",), 60.0, None, None),
        VideoRow(7, ("/c.mp4",), 60.0, None, datetime(2024, 1, 2)),
    ]
    clip_videos = np.array([1, 1, 1, 2, 7], dtype=np.int64)
    starts = np.array([0.0, 30.0, 59.0, 0.0, 0.0])
    filters = Filters(recorded_after=datetime(2024, 1, 1, 12, 0, 30), recorded_before=datetime(2024, 1, 2))
    assert recorded_in_range(videos, clip_videos, starts, filters).tolist() == [False, True, True, False, False]
    assert recorded_in_range(videos, clip_videos, starts, Filters(recorded_before=datetime(2030, 1, 1))).tolist() == [
        True,
        True,
        True,
        False,
        True,
    ]


def _moment(clip_id: int, score: float, at: datetime | None) -> Moment:
    recorded = Recorded(at, "metadata") if at else None
    return Moment(1, "/a.mp4", 0.0, 1.0, score, clip_id, (clip_id,), {}, None, 0.0, 1.0, recorded)


def test_sort_by_time_puts_unknown_times_last_in_score_order():
    moments = [
        _moment(1, 3.0, None),
        _moment(2, 2.0, datetime(2024, 5, 1)),
        _moment(3, 1.5, None),
        _moment(4, 1.0, datetime(2023, 5, 1)),
    ]
    assert [m.clip_id for m in by_recording_time(moments)] == [4, 2, 1, 3]


@pytest.mark.slow  # the indexed library
def test_sort_time_keeps_the_best_k_by_score_then_orders_them_by_recording_time(indexed):
    by_score = search(indexed, "--text", "a disc", "-k", "2")
    by_time = search(indexed, "--text", "a disc", "-k", "2", "--sort", "time")
    assert {h["clip_id"] for h in by_time} == {h["clip_id"] for h in by_score}  # the same cut-off
    known = [h["recorded_at"] for h in by_time if h["recorded_at"]]
    assert known == sorted(known) and [h["recorded_at"] is None for h in by_time] == sorted(
        h["recorded_at"] is None for h in by_time
    )
    everything = search(indexed, "--text", "a disc", "-k", "20", "--sort", "time")
    assert _runs([Path(h["path"]).name for h in everything]) == [NAMED, "tagged.mp4", "plain.mp4"]
    grouped = search(indexed, "--text", "a disc", "-k", "20", "--sort", "time", "--group", "video")
    assert [Path(g["path"]).name for g in grouped] == [NAMED, "tagged.mp4", "plain.mp4"]


# -- what results show --------------------------------------------------------------------------


@pytest.mark.slow  # the indexed library
def test_json_and_cli_show_each_moments_wall_clock_time(indexed):
    hits: dict[str, dict] = {}  # each video's earliest moment (a video may answer with several)
    for hit in sorted(search(indexed, "--text", "a disc", "-k", "20"), key=lambda h: h["start"]):
        hits.setdefault(Path(hit["path"]).name, hit)
    assert (
        hits["tagged.mp4"]["start"] == 0.0
        and hits[NAMED]["start"] == 0.0
        and hits["tagged.mp4"]["recorded_at"] == "2024-03-05T06:00:00Z"
    )
    assert hits["tagged.mp4"]["recorded_source"] == "metadata"
    assert hits[NAMED]["recorded_at"] == "2024-01-01T11:00:00Z" and hits[NAMED]["recorded_source"] == "filename"
    assert hits["plain.mp4"]["recorded_at"] is None and hits["plain.mp4"]["recorded_source"] is None
    after = search(indexed, "--text", "a disc", "-k", "20", "--recorded-after", "2024-03-05T07:00:01")
    assert [(h["start"], h["recorded_at"]) for h in after] == [(1.867, "2024-03-05T06:00:01Z")]

    lines = cli_in_process("search", "--data", indexed, "--text", "a disc", "-k", "20", "--sort", "time").stdout
    by_name: dict[str, str] = {}  # each video's first line: by time, its earliest moment
    for line in lines.splitlines()[2:]:
        by_name.setdefault(Path(line.split("  [")[0].split()[-1]).name, line)
    assert "  2024-03-05 07:00:00  " in by_name["tagged.mp4"]  # local time, Berlin
    assert "  2024-01-01 12:00:00  " in by_name[NAMED]
    assert "2024" not in by_name["plain.mp4"].split("plain.mp4")[0]


@pytest.mark.slow  # the indexed library
def test_api_and_ui_cards_show_the_time_and_take_the_range(indexed):
    service = SearchService(DataDir(indexed)).load()
    handlers = Handlers(service, None, DataDir(indexed))
    hits = handlers.api_search(text="a disc", k=20, recorded_after="2024-03-05T07:00:01", sort="time")
    assert [(h["start"], h["recorded_at"], h["recorded_source"]) for h in hits] == [
        (1.867, "2024-03-05T06:00:01Z", "metadata")
    ]
    request = form_request(
        text="a disc", k=20, recorded_after=" 2024-01-01 ", recorded_before="2024-03-06 ", sort="time"
    )
    assert request == build_request(
        text="a disc", k=20, recorded_after="2024-01-01", recorded_before="2024-03-06", sort="time"
    )
    cards, status, moments, _, _ = handlers.search(request)
    assert status == f"{len(moments)} moments, best first."
    recorded = [m["recorded_at"] for m in moments]
    assert recorded == sorted(recorded) and _runs(Path(m["path"]).name for m in moments) == [NAMED, "tagged.mp4"]
    starts = {Path(m["path"]).name: m["start"] for m in reversed(moments)}  # each video's earliest moment
    assert starts == {NAMED: 0.0, "tagged.mp4": 0.0}  # so its card shows the recording start itself
    firsts: dict[str, str] = {}
    for _, caption in cards:
        name, *_, when = caption.split(" · ")
        firsts.setdefault(name, when)
    assert firsts == {NAMED: "2024-01-01 12:00:00", "tagged.mp4": "2024-03-05 07:00:00"}
    service.catalog.close()


def test_search_help_names_the_recording_filters(capsys):
    import run

    with pytest.raises(SystemExit):
        run.main(["search", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--recorded-after WHEN" in text and "--recorded-before WHEN" in text and "--sort {score,time}" in text
    assert "excludes videos whose recording time is unknown" in text
