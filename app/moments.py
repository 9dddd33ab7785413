"""Turn ranked clip windows into moments. Pure functions.

Windows are taken best first. A window that touches or overlaps a moment already formed in the
same video extends it (and may bridge two); any other window starts a new moment. Taking stops
before the (k+1)-th moment would start, so exactly the windows that rank above the k-th moment's
peak are merged: a long action that scores well throughout becomes one moment, an isolated good
window stays short, whatever the library's size.
"""

from __future__ import annotations

from dataclasses import dataclass

GAP = 0.05  # seconds: windows closer than this touch (back-to-back windows touch exactly)


@dataclass(frozen=True)
class ScoredClip:
    clip_id: int
    video_id: int
    start: float
    end: float
    score: float


def merge_moments(ranked: list[ScoredClip], k: int) -> list[list[ScoredClip]]:
    """Up to k moments, each a list of clips in time order, best moment first."""
    moments: list[list[ScoredClip]] = []
    for clip in ranked:
        touching = [m for m in moments if m[0].video_id == clip.video_id and any(_touch(c, clip) for c in m)]
        if not touching:
            if len(moments) == k:
                break
            moments.append([clip])
            continue
        merged = sorted([clip] + [c for m in touching for c in m], key=lambda c: (c.start, c.end))
        moments = [m for m in moments if not any(m is t for t in touching)] + [merged]
    return sorted(moments, key=lambda m: best(m).score, reverse=True)


def _touch(a: ScoredClip, b: ScoredClip) -> bool:
    return b.start <= a.end + GAP and a.start <= b.end + GAP


def best(moment: list[ScoredClip]) -> ScoredClip:
    return max(moment, key=lambda c: c.score)
