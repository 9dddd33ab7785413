"""Static spans of a compressed stream, told by packet sizes, decoded as one keyframe.

In a static H.264/HEVC scene every predicted frame is coded as "same as before": its packet holds a few
dozen bytes, while anything that moves or lights up costs kilobytes. Decoding every frame of a 720p hour
costs about as much as embedding it, so when skipping unchanged windows (indexer/change.py) a GOP (a
keyframe and the predicted frames up to the next one) whose predicted packets are all quiet is decoded
as its keyframe alone, and each of its frames is shown as that keyframe (`Still`). The change detector
then sees the GOP as static against the last embedded window, or not (the keyframe itself changed, e.g.
drift crossed the threshold): either way nothing that changed inside the GOP can be missed, because a
change inside it would have made its packets loud.

QUIET_BYTES_PER_KILOPIXEL is far below what a change the detector would see costs: at 720p a 20 x 20 px
object crossing a still scene took ~1 KB a frame; static P-frames took 30-80 bytes (libx264, crf 28).
Footage coded at a constant bitrate, or with heavy noise, has no quiet packets: every GOP is decoded.

Only streams whose packets come in presentation order are eligible (no B-frame reordering inside the
GOP); a GOP longer than MAX_BUFFERED packets is decoded as it comes (memory stays bounded).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

QUIET_BYTES_PER_KILOPIXEL = 0.25  # a predicted packet this small (per 1000 pixels) changes nothing visible
MIN_QUIET_BYTES = 48  # the floor: headers alone take ~20-30 bytes
MAX_BUFFERED = 600  # packets of one GOP held before deciding


@dataclass(frozen=True)
class Still:
    """A frame not decoded: shown as `source`, the decoded keyframe of its quiet GOP."""

    source: Any  # av.VideoFrame
    pts: int | None
    duration: int | None
    dts: int | None = None  # as a decoded frame has it (indexer.decode.DisplayClock reads both); None: use pts


def quiet_limit(width: int, height: int) -> int:
    return max(MIN_QUIET_BYTES, int(width * height / 1000 * QUIET_BYTES_PER_KILOPIXEL))


class QuietGops:
    """Frames of a demuxed stream, quiet GOPs as stills. `decode(packet)` decodes one packet (None drains);
    `reset()` readies the decoder again after a drain."""

    def __init__(self, decode: Callable[[Any], list], reset: Callable[[], None], limit: int):
        self.decode, self.reset, self.limit = decode, reset, limit
        self.stills = 0  # frames shown as their keyframe, not decoded

    def frames(self, packets: Iterable[Any]) -> Iterator[Any]:
        held: list = []  # the current GOP while it is still quiet
        for packet in packets:
            if packet.size == 0:
                continue  # the demuxer's final empty packet: the caller drains
            if packet.is_keyframe:
                yield from self._quiet(held)
                held = [packet]
            elif held and self._may_hold(held, packet):
                held.append(packet)
            else:
                yield from self._loud(held)
                held = []
                yield from self.decode(packet)
        yield from self._quiet(held)

    def _may_hold(self, held: list, packet) -> bool:
        in_order = packet.pts is not None and held[-1].pts is not None and packet.pts > held[-1].pts
        return in_order and packet.size <= self.limit and len(held) < MAX_BUFFERED

    def _loud(self, held: list) -> Iterator[Any]:
        for packet in held:
            yield from self.decode(packet)

    def _quiet(self, held: list) -> Iterator[Any]:
        """A whole quiet GOP: frames still in the decoder first, then its keyframe, then stills of it."""
        if not held:
            return
        if len(held) == 1:  # nothing to skip
            yield from self.decode(held[0])
            return
        yield from self._drain()
        frames = self.decode(held[0]) + self._drain()
        if len(frames) != 1:  # not one picture for one keyframe: decode it all, the plain way
            yield from frames
            yield from self._loud(held[1:])
            return
        key = frames[0]
        yield key
        for packet in held[1:]:
            self.stills += 1
            yield Still(key, packet.pts, packet.duration)

    def _drain(self) -> list:
        frames = self.decode(None)
        self.reset()
        return frames
