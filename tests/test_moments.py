"""Merging ranked windows into moments."""

from app.moments import ScoredClip, merge_moments


def clip(cid, video, start, score, length=2.0):
    return ScoredClip(cid, video, start, start + length, score)


def ids(moments):
    return [[c.clip_id for c in m] for m in moments]


def test_adjacent_hits_of_one_video_merge_into_one_moment():
    ranked = [clip(2, 1, 2.0, 0.9), clip(3, 1, 4.0, 0.8), clip(9, 2, 0.0, 0.7), clip(1, 1, 0.0, 0.6)]
    assert ids(merge_moments(ranked, k=2)) == [[1, 2, 3], [9]]


def test_taking_stops_before_the_k_plus_first_moment():
    ranked = [clip(2, 1, 2.0, 0.9), clip(9, 2, 0.0, 0.8), clip(5, 3, 0.0, 0.7), clip(3, 1, 4.0, 0.6)]
    assert ids(merge_moments(ranked, k=2)) == [[2], [9]]  # clip 3 ranks below the third moment


def test_a_window_can_bridge_two_moments():
    ranked = [clip(1, 1, 0.0, 0.9), clip(3, 1, 4.0, 0.8), clip(2, 1, 2.0, 0.7)]
    assert ids(merge_moments(ranked, k=5)) == [[1, 2, 3]]


def test_gaps_and_other_videos_do_not_merge():
    ranked = [clip(1, 1, 0.0, 0.9), clip(3, 1, 6.0, 0.8), clip(7, 2, 2.0, 0.7)]
    assert ids(merge_moments(ranked, k=5)) == [[1], [3], [7]]


def test_overlapping_windows_merge():
    ranked = [clip(1, 1, 0.0, 0.9, length=2.0), clip(2, 1, 1.0, 0.8, length=2.0)]
    [moment] = merge_moments(ranked, k=5)
    assert (moment[0].start, max(c.end for c in moment)) == (0.0, 3.0)
