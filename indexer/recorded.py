"""When a video was recorded: its recording start, from container tags or a camera's file name. Pure.

Times are kept as naive UTC, like every other time in the catalog:
- tags (MP4/QuickTime `creation_time`, `com.apple.quicktime.creationdate`, Matroska `DATE_RECORDED`...) state
  UTC ("...Z") or an offset; a tag without either is taken as UTC, as FFmpeg writes them;
- file names (`VID_20240101_120000.mp4`, `2024-01-01 12.00.00.mov`...) hold the camera's wall clock with no
  zone: it is taken as the local time of the machine that indexes, and converted to UTC.
Tags win over the file name (a copy or a rename keeps the tags). Values outside PLAUSIBLE_SINCE..now+1 day
(a camera's unset clock: 1904, 1970, 1980; a future date; eight random digits) count as unknown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

PLAUSIBLE_SINCE = datetime(1990, 1, 1)  # before this, a stated time is a default, not a recording
CLOCK_SLACK = timedelta(days=1)  # a camera clock a little ahead of the indexing machine's
SOURCES = ("metadata", "filename")

# Tag names, best first. QuickTime's creationdate is the camera's own clock with its offset; creation_time is
# often rewritten by editors and converters to when the file was written.
TAG_NAMES = ("com.apple.quicktime.creationdate", "date_recorded", "creation_time", "date")

# A date and a time of day, each with or without separators, between non-digits. A phone may append
# milliseconds (Pixel: PXL_20240101_120000123). Whether it is a plausible date is checked afterwards.
FILE_NAME_TIME = re.compile(
    r"(?<!\d)(?P<year>(?:19|20)\d\d)(?P<ds>[-_.]?)(?P<month>\d\d)(?P=ds)(?P<day>\d\d)"
    r"(?:[T_ -]|[ _]at[ _]|)"
    r"(?P<hour>\d\d)(?P<ts>[-_.:]?)(?P<minute>\d\d)(?P=ts)(?P<second>\d\d)(?:\d{3})?(?!\d)"
)
TAG_TIME = re.compile(
    r"\s*(?P<date>\d{4}-\d\d-\d\d)[T ](?P<time>\d\d:\d\d(?::\d\d(?:\.\d+)?)?)\s*"
    r"(?P<zone>Z|UTC|[+-]\d\d:?\d\d)?\s*"
)


@dataclass(frozen=True)
class Recorded:
    """A wall-clock time (naive UTC) and where it came from: "metadata" (tags) or "filename"."""

    at: datetime
    source: str

    def shifted(self, seconds: float) -> Recorded:
        """The wall-clock time `seconds` into the recording."""
        return replace(self, at=self.at + timedelta(seconds=seconds))

    def to_json(self) -> str:
        return self.at.isoformat(timespec="seconds") + "Z"


def recording_start(tags: Iterable[Mapping[str, str]], file_name: str, now: datetime | None = None) -> Recorded | None:
    """The recording start from tag dicts (container first, then streams) or the file name; None if unknown.
    `now` (naive UTC) bounds plausible times; the current time by default."""
    latest = (now or datetime.now(UTC).replace(tzinfo=None)) + CLOCK_SLACK
    at = time_from_tags(tags, latest)
    if at is not None:
        return Recorded(at, "metadata")
    at = time_from_file_name(file_name, latest)
    return None if at is None else Recorded(at, "filename")


def time_from_tags(tags: Iterable[Mapping[str, str]], latest: datetime) -> datetime | None:
    by_name: dict[str, str] = {}
    for mapping in tags:
        for key, value in mapping.items():
            by_name.setdefault(key.lower(), value)
    for name in TAG_NAMES:
        at = parse_tag_time(by_name.get(name, ""))
        if at is not None and _plausible(at, latest):
            return at
    return None


def parse_tag_time(text: str) -> datetime | None:
    """An ISO 8601 date and time as tags state it -> naive UTC; None if it is not one. Without a zone it is
    UTC (FFmpeg's own `creation_time` form is "2024-01-01T12:00:00.000000Z")."""
    match = TAG_TIME.fullmatch(text or "")
    if match is None:
        return None
    zone = match["zone"] or "Z"
    zone = "+00:00" if zone in ("Z", "UTC") else zone
    try:
        stamp = datetime.fromisoformat(f"{match['date']}T{match['time']}{zone}")
    except ValueError:  # 2024-02-30, 25:00
        return None
    return stamp.astimezone(UTC).replace(tzinfo=None)


def time_from_file_name(name: str, latest: datetime) -> datetime | None:
    """The first plausible camera-style date and time in a file name (local time) -> naive UTC."""
    for match in FILE_NAME_TIME.finditer(name):
        parts = (match[p] for p in ("year", "month", "day", "hour", "minute", "second"))
        try:
            local = datetime(*map(int, parts))
            at = local.astimezone(UTC).replace(tzinfo=None)  # naive = this machine's local time
        except (ValueError, OverflowError):  # month 13, 25 h
            continue
        if _plausible(at, latest):
            return at
    return None


def _plausible(at: datetime, latest: datetime) -> bool:
    return PLAUSIBLE_SINCE <= at <= latest


def local_text(at: datetime) -> str:
    """A naive-UTC time as this machine's local wall clock, for people: "2024-01-01 12:00:05"."""
    return at.replace(tzinfo=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")
