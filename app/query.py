"""What a search asks: query parts, filters, options. Plain records, validated on creation."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

MAX_K = 1000
MAX_TEXT = 1000  # characters; CLIP tokenizers truncate at 77 tokens anyway
GROUPS = ("clip", "video")
DEFAULT_WEIGHTS = {"video": 1.0, "appearance": 1.0, "text": 1.0, "image": 1.0, "negative": 1.0}


class QueryError(ValueError):
    """A query that cannot be answered; the message is meant for the user."""


@dataclass(frozen=True)
class Query:
    text: str | None = None  # words -> CLIP text tower
    image: Path | None = None  # an example image -> CLIP image tower
    video: Path | None = None  # an example clip -> VideoMAE v2 (motion) and CLIP (appearance)
    start: float | None = None  # seconds into `video`
    end: float | None = None
    like: int | None = None  # an indexed clip id ("more like this")
    negative: str | None = None  # "not this": CLIP text whose similarity is subtracted

    def __post_init__(self):
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

    path_prefix: str | None = None  # a video path starts with this
    path_glob: str | None = None  # a video path matches this fnmatch pattern
    min_duration: float | None = None  # seconds, video duration
    max_duration: float | None = None
    indexed_after: datetime | None = None  # video indexed at or after (UTC)

    def active(self) -> bool:
        return any(v is not None for v in vars(self).values())

    def __post_init__(self):
        if self.min_duration is not None and self.max_duration is not None \
                and self.max_duration < self.min_duration:
            raise QueryError("max duration must not be below min duration")


@dataclass(frozen=True)
class SearchOptions:
    k: int = 10  # moments (or videos with --group video) to return
    min_score: float | None = None  # below this fused score: no match
    group: str = "clip"  # "clip": a flat list of moments; "video": moments grouped per video
    weights: dict[str, float] = field(default_factory=dict)  # per query part, over DEFAULT_WEIGHTS

    def __post_init__(self):
        if not 1 <= self.k <= MAX_K:
            raise QueryError(f"k must be between 1 and {MAX_K}, got {self.k}")
        if self.group not in GROUPS:
            raise QueryError(f"group must be one of {', '.join(GROUPS)}, got {self.group!r}")
        unknown = set(self.weights) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise QueryError(f"unknown weight {', '.join(sorted(unknown))}; valid: {', '.join(DEFAULT_WEIGHTS)}")

    def weight(self, part: str) -> float:
        return self.weights.get(part, DEFAULT_WEIGHTS[part])


def parse_time(text: str | None) -> datetime | None:
    """ISO date or date-time (local time unless it says otherwise) -> naive UTC, as stored."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise QueryError(f"--indexed-after takes an ISO date such as 2026-11-01 or 2026-11-01T08:00, "
                         f"got {text!r}") from None
    return moment.astimezone(timezone.utc).replace(tzinfo=None)
