"""Merging ranked windows into moments: windows near the peak's score join it, up to a length cap."""

import pytest

from app.moments import MAX_MOMENT_SECONDS, ScoredClip, join_margin, merge_moments


def clip(cid, video, start, score, length=2.0):
    return ScoredClip(cid, video, start, start + length, score)


def ids(moments):
    return [[c.clip_id for c in m] for m in moments]


def span(moment):
    return moment[0].start, max(c.end for c in moment)


def ranked(clips):
    return sorted(clips, key=lambda c: c.score, reverse=True)


def test_adjacent_hits_near_the_peak_merge_into_one_moment():
    hits = [clip(2, 1, 2.0, 4.0), clip(3, 1, 4.0, 3.8), clip(9, 2, 0.0, 3.5), clip(1, 1, 0.0, 3.2)]
    assert ids(merge_moments(hits, k=2)) == [[1, 2, 3], [9]]


def test_taking_stops_before_the_k_plus_first_moment():
    hits = [clip(2, 1, 2.0, 0.9), clip(9, 2, 0.0, 0.8), clip(5, 3, 0.0, 0.7), clip(3, 1, 4.0, 0.6)]
    assert ids(merge_moments(hits, k=2)) == [[2], [9]]  # clip 3 ranks below the third moment


def test_a_window_can_bridge_two_moments():
    hits = [clip(1, 1, 0.0, 0.9), clip(3, 1, 4.0, 0.8), clip(2, 1, 2.0, 0.7)]
    assert ids(merge_moments(hits, k=5)) == [[1, 2, 3]]


def test_gaps_and_other_videos_do_not_merge():
    hits = [clip(1, 1, 0.0, 0.9), clip(3, 1, 6.0, 0.8), clip(7, 2, 2.0, 0.7)]
    assert ids(merge_moments(hits, k=5)) == [[1], [3], [7]]


def test_overlapping_windows_merge():
    hits = [clip(1, 1, 0.0, 0.9, length=2.0), clip(2, 1, 1.0, 0.8, length=2.0)]
    [moment] = merge_moments(hits, k=5)
    assert span(moment) == (0.0, 3.0)


def test_the_margin_is_one_z_unit_at_most_and_a_quarter_of_a_weak_peak():
    assert [join_margin(p) for p in (8.0, 4.0, 1.2, 0.0, -1.5)] == [1.0, 1.0, pytest.approx(0.3), 0.0, 0.0]


def test_a_window_far_below_the_peak_starts_a_moment_of_its_own():
    hits = [clip(1, 1, 0.0, 4.0), clip(2, 1, 2.0, 3.1), clip(3, 1, 4.0, 2.9)]  # 0.9 and 1.1 below the peak
    assert ids(merge_moments(hits, k=5)) == [[1, 2], [3]]


def test_a_weak_peak_joins_only_windows_within_a_quarter_of_its_score():
    hits = [clip(1, 1, 2.0, 1.2), clip(2, 1, 0.0, 0.95), clip(3, 1, 4.0, 0.85)]  # margin 0.3: down to 0.9
    assert ids(merge_moments(hits, k=5)) == [[2, 1], [3]]  # in time order


def test_a_bridge_joins_only_the_moment_whose_peak_it_is_near():
    hits = [clip(1, 1, 0.0, 4.0), clip(3, 1, 4.0, 2.0), clip(2, 1, 2.0, 1.9)]  # 2.1 below 1's peak, 0.1 below 3's
    assert ids(merge_moments(hits, k=5)) == [[1], [2, 3]]


def test_a_window_overlapping_a_moment_it_may_not_join_is_a_moment_of_its_own():
    hits = [clip(1, 1, 0.0, 4.0), clip(2, 1, 1.0, 2.0), clip(7, 2, 0.0, 1.0)]  # 2 overlaps 1's time
    assert ids(merge_moments(hits, k=2)) == [[1], [2]]  # every window taken is in one moment


def continuous_scene(windows: int, peak_at: int, length: float = 2.0) -> list[ScoredClip]:
    """Back-to-back windows of one video whose score falls slowly away from one peak (a street camera)."""
    return ranked([clip(i, 1, i * length, 5.0 - 0.01 * abs(i - peak_at), length) for i in range(windows)])


def test_a_continuous_scene_is_cut_at_the_default_cap_around_its_peak():
    moments = merge_moments(continuous_scene(40, peak_at=20), k=1)  # 80 s, every window within the margin
    [first] = moments
    start, end = span(first)
    assert end - start == MAX_MOMENT_SECONDS and start <= 40.0 < end  # holds the peak window 40-42 s
    assert max(first, key=lambda c: c.score).clip_id == 20


def test_no_moment_grows_beyond_max_length():
    moments = merge_moments(continuous_scene(20, peak_at=3), k=10, max_length=7.0)
    assert all(span(m)[1] - span(m)[0] <= 7.0 for m in moments)
    assert 3 in ids(moments)[0] and sorted(c for m in ids(moments) for c in m) == list(range(20))  # all tiled
    peaks = [max(c.score for c in m) for m in moments]
    assert peaks == sorted(peaks, reverse=True)  # best first


def test_a_single_window_longer_than_the_cap_is_still_a_moment():
    assert ids(merge_moments([clip(1, 1, 0.0, 3.0, length=10.0)], k=3, max_length=5.0)) == [[1]]
