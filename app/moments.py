"""Turn ranked clip windows into moments. Pure functions.

Windows are taken best first; the first window of a moment is its peak. A later window of the same
video that touches or overlaps a moment joins it (and may bridge two) only if

  * its score stays within `join_margin(peak)` of the moment's peak score: at most MAX_DROP below it,
    and never more than DROP_FRACTION of the peak's height above the library's typical clip (z = 0),
  * and the moment, with it, spans at most `max_length` seconds (MAX_MOMENT_SECONDS by default).

Scores are calibrated (fused z-scores, see app/search.py): standard deviations above the library's
typical clip for this query. One standard deviation is the unit that separates a hit from an ordinary
clip, so a window a whole unit below the peak is told apart from it by the same yardstick and belongs
to a moment of its own (MAX_DROP = 1.0). A weak peak (z = 1.2) would still absorb windows barely above
typical with a fixed drop alone, so the drop also stays within a quarter of the peak's height
(DROP_FRACTION = 0.25: a joined window keeps 75 % of the peak's distance above typical); a peak at or
below typical joins only windows scoring as high as itself. Without these rules a continuous scene
(one street camera, one shot) scored well throughout and became one moment as long as the file.

A window that touches a moment but may not join starts a moment of its own, like any other window (so
every window taken is in exactly one moment; a video's last window, which overlaps the one before it, may
make a moment overlapping another). Taking stops before the (k+1)-th moment would start, so the k moments
returned are the k best, best first, whatever the library's size.
"""

from __future__ import annotations

from dataclasses import dataclass

GAP = 0.05  # seconds: windows closer than this touch (back-to-back windows touch exactly)
MAX_DROP = 1.0  # z units: a joined window scores at most this far below the moment's peak
DROP_FRACTION = 0.25  # ... and at most this fraction of the peak's own score below it
MAX_MOMENT_SECONDS = 30.0  # default longest moment (SearchOptions.max_moment, `search --max-moment`)


@dataclass(frozen=True)
class ScoredClip:
    clip_id: int
    video_id: int
    start: float
    end: float
    score: float


def join_margin(peak: float) -> float:
    """How far below a moment's peak score a window may score and still join it."""
    return min(MAX_DROP, DROP_FRACTION * max(peak, 0.0))


def merge_moments(ranked: list[ScoredClip], k: int, max_length: float = MAX_MOMENT_SECONDS) -> list[list[ScoredClip]]:
    """Up to k moments, each a list of clips in time order, best moment first."""
    moments: list[list[ScoredClip]] = []
    for clip in ranked:
        touching = [m for m in moments if m[0].video_id == clip.video_id and any(_touch(c, clip) for c in m)]
        joined = _joined(clip, touching, max_length)
        if joined:
            merged = sorted([clip] + [c for m in joined for c in m], key=lambda c: (c.start, c.end))
            moments = [m for m in moments if not any(m is j for j in joined)] + [merged]
        elif len(moments) == k:
            break
        else:
            moments.append([clip])
    return sorted(moments, key=lambda m: best(m).score, reverse=True)


def _joined(clip: ScoredClip, touching: list[list[ScoredClip]], max_length: float) -> list[list[ScoredClip]]:
    """The touching moments `clip` joins (bridging them): the best one first, then each other that still
    keeps the merged moment within the margin of its peak and the length cap. Windows come best first,
    so `clip` scores lowest of all and is the one window to check against the margin."""
    joined: list[list[ScoredClip]] = []
    for moment in sorted(touching, key=lambda m: best(m).score, reverse=True):
        candidate = [*joined, moment]
        peak = best(candidate[0]).score
        start = min(clip.start, *(c.start for m in candidate for c in m))
        end = max(clip.end, *(c.end for m in candidate for c in m))
        if clip.score >= peak - join_margin(peak) and end - start <= max_length + 1e-9:
            joined = candidate
    return joined


def _touch(a: ScoredClip, b: ScoredClip) -> bool:
    return b.start <= a.end + GAP and a.start <= b.end + GAP


def best(moment: list[ScoredClip]) -> ScoredClip:
    return max(moment, key=lambda c: c.score)
