"""What a search asks: query parts, filters, options, and the request holding all three. Plain records,
validated on creation."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from app.moments import MAX_MOMENT_SECONDS

MAX_K = 1000
MAX_TEXT = 1000  # characters; open_clip tokenizers truncate at 77 tokens anyway
MAX_GLOB = 1000  # characters; translating an fnmatch pattern is quadratic in its length
MAX_PREFIX = 4096  # characters, PATH_MAX
CLIP_ID_RANGE = (-(2**63), 2**63 - 1)  # SQLite's INTEGER: ids outside it cannot exist
MAX_SECONDS = 1e9  # start/end of a query range and durations (31 years): far past any footage, and in int64 PTS
GROUPS = ("clip", "video")
SORTS = ("score", "time")  # "time": the moments kept by score, in order of their recording time
DEFAULT_WEIGHTS = {"video": 1.0, "appearance": 1.0, "text": 1.0, "image": 1.0, "negative": 1.0}


class QueryError(ValueError):
    """A query that cannot be answered; the message is meant for the user."""


def require_finite(name: str, value, minimum: float | None = None, maximum: float | None = None) -> None:
    """A number a query can use: not bool, not nan or infinite, and within `minimum`/`maximum` when given."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise QueryError(f"{name} must be a finite number, got {value}")
    if minimum is not None and value < minimum:
        raise QueryError(f"{name} must be {minimum:g} or more, got {value}")
    if maximum is not None and value > maximum:
        raise QueryError(f"{name} must be at most {maximum:g}, got {value}")


def require_whole(name: str, value, low: int, high: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise QueryError(f"{name} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise QueryError(f"{name} must be between {low} and {high}, got {value}")


@dataclass(frozen=True)
class Query:
    text: str | None = None  # words -> image-text tower (text side)
    image: Path | None = None  # an example image -> image-text tower (image side)
    video: Path | None = None  # an example clip -> VideoMAE v2 (motion) and the image-text tower (appearance)
    start: float | None = None  # seconds into `video`
    end: float | None = None
    like: int | None = None  # an indexed clip id ("more like this")
    negative: str | None = None  # "not this": image-text text vector whose similarity is subtracted

    def __post_init__(self):
        require_finite("start", self.start, maximum=MAX_SECONDS)
        require_finite("end", self.end, maximum=MAX_SECONDS)
        require_whole("like", self.like, *CLIP_ID_RANGE)
        if self.video is not None and self.like is not None:
            raise QueryError("give either a video or a clip id (--like), not both")
        if not any((self.text, self.image, self.video, self.like is not None)):
            raise QueryError("nothing to search for: give text, an image, a video or a clip id")
        if (self.start is not None or self.end is not None) and self.video is None:
            raise QueryError("start/end apply to a video query only")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise QueryError(f"end ({self.end}) must be after start ({self.start})")
        if self.start is not None and self.start < 0:
            raise QueryError(f"start must not be negative, got {self.start}")
        for name in ("text", "negative"):
            value = getattr(self, name)
            if value is not None and (not value.strip() or len(value) > MAX_TEXT):
                raise QueryError(f"{name} must be 1 to {MAX_TEXT} characters")


@dataclass(frozen=True)
class Filters:
    """Restrict the searched clips; applied inside the vector search, before top-k."""

    path_prefix: str | None = None  # a video path is under this folder (whole components: records.in_folder)
    path_glob: str | None = None  # a video path matches this fnmatch pattern
    min_duration: float | None = None  # seconds, video duration
    max_duration: float | None = None
    indexed_after: datetime | None = None  # video indexed at or after (UTC)
    # A clip recorded (video's recording start + clip start, naive UTC) at or after / strictly before. A video
    # whose recording start is unknown has no clip in any such range.
    recorded_after: datetime | None = None
    recorded_before: datetime | None = None

    def active(self) -> bool:
        return any(v is not None for v in vars(self).values())

    def __post_init__(self):
        require_finite("min_duration", self.min_duration, maximum=MAX_SECONDS)
        require_finite("max_duration", self.max_duration, maximum=MAX_SECONDS)
        for name, limit in (("path_glob", MAX_GLOB), ("path_prefix", MAX_PREFIX)):
            value = getattr(self, name)
            if value is not None and len(value) > limit:
                raise QueryError(f"{name} must be at most {limit} characters, got {len(value)}")
        if self.min_duration is not None and self.max_duration is not None and self.max_duration < self.min_duration:
            raise QueryError("max duration must not be below min duration")
        after, before = self.recorded_after, self.recorded_before
        if after is not None and before is not None and before <= after:
            raise QueryError(f"recorded before ({before} UTC) must be later than recorded after ({after} UTC)")


# No cut-off by default: the best k moments, however weak (scores are z-scores, so any fixed cut depends on the
# library). The CLI's --min-score and the UI's "Minimum score" both start from this.
DEFAULT_MIN_SCORE: float | None = None


@dataclass(frozen=True)
class SearchOptions:
    k: int = 10  # moments (or videos with --group video) to return
    min_score: float | None = DEFAULT_MIN_SCORE  # below this fused score: no match
    group: str = "clip"  # "clip": a flat list of moments; "video": moments grouped per video
    weights: dict[str, float] = field(default_factory=dict)  # per query part, over DEFAULT_WEIGHTS
    max_moment: float = MAX_MOMENT_SECONDS  # seconds: the longest moment merged windows may make
    sort: str = "score"  # one of SORTS; applied after the score cut-off (k, min_score)

    def __post_init__(self):
        require_whole("k", self.k, 1, MAX_K)
        require_finite("max_moment", self.max_moment, maximum=MAX_SECONDS)
        if self.max_moment is None or self.max_moment <= 0:
            raise QueryError(f"max_moment must be more than 0 seconds, got {self.max_moment}")
        require_finite("min_score", self.min_score)
        if self.group not in GROUPS:
            raise QueryError(f"group must be one of {', '.join(GROUPS)}, got {self.group!r}")
        if self.sort not in SORTS:
            raise QueryError(f"sort must be one of {', '.join(SORTS)}, got {self.sort!r}")
        unknown = set(self.weights) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise QueryError(f"unknown weight {', '.join(sorted(unknown))}; valid: {', '.join(DEFAULT_WEIGHTS)}")
        for part, value in self.weights.items():  # nan would make every score nan; a negative one inverts a part
            require_finite(f"weight {part}", value, minimum=0)

    def weight(self, part: str) -> float:
        return self.weights.get(part, DEFAULT_WEIGHTS[part])


@dataclass(frozen=True)
class SearchRequest:
    """One search: what the CLI, the web UI and the API build and `SearchService.search` answers."""

    query: Query
    filters: Filters = Filters()
    options: SearchOptions = SearchOptions()


def build_request(
    *,
    text: str | None = None,
    negative: str | None = None,
    image: Path | None = None,
    video: Path | None = None,
    start: float | None = None,
    end: float | None = None,
    like: int | None = None,
    k: int = 10,
    min_score: float | None = DEFAULT_MIN_SCORE,
    group: str = "clip",
    weights: dict[str, float] | None = None,
    path_prefix: str | None = None,
    path_glob: str | None = None,
    min_duration: float | None = None,
    max_duration: float | None = None,
    indexed_after: str | None = None,
    max_moment: float | None = None,
    recorded_after: str | None = None,
    recorded_before: str | None = None,
    sort: str = "score",
) -> SearchRequest:
    """A request from typed field values (times as ISO text), each checked by its record."""
    query = Query(text=text, image=image, video=video, start=start, end=end, like=like, negative=negative)
    filters = Filters(
        path_prefix,
        path_glob,
        min_duration,
        max_duration,
        parse_time(indexed_after),
        parse_time(recorded_after, "--recorded-after"),
        parse_time(recorded_before, "--recorded-before"),
    )
    longest = MAX_MOMENT_SECONDS if max_moment is None else max_moment
    options = SearchOptions(k, min_score, group, weights or {}, max_moment=longest, sort=sort)
    return SearchRequest(query, filters, options)


def parse_time(text: str | None, name: str = "--indexed-after") -> datetime | None:
    """ISO date or date-time (local time unless it says otherwise; a date is its midnight) -> naive UTC, as
    stored."""
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text).astimezone(UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):  # OverflowError: 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise QueryError(f"{name} takes an ISO date such as 2026-11-01 or 2026-11-01T08:00, got {text!r}") from None
