"""Search filters decided from catalog rows: a folder filter matches whole path components."""

from __future__ import annotations

import pytest

from app.query import Filters
from app.search import _video_passes
from indexer.catalog import VideoRow
from indexer.records import in_folder


@pytest.mark.parametrize(
    ("path", "folder", "inside"),
    [
        ("/cams/front/a.mp4", "/cams/front", True),
        ("/cams/front/a.mp4", "/cams/front/", True),
        ("/cams/front/deep/a.mp4", "/cams", True),
        ("/cams/frontdoor/a.mp4", "/cams/front", False),  # a string prefix, not the folder
        ("/cams/front.mp4", "/cams/front", False),
        ("/cams/front.mp4", "/cams/front.mp4", True),  # the file itself
        ("/a.mp4", "/", True),
    ],
)
def test_a_folder_covers_whole_path_components(path, folder, inside):
    assert in_folder(path, folder) is inside


def test_the_path_prefix_filter_is_a_folder():
    front = VideoRow(1, ("/cams/front/a.mp4",), 10.0, None)
    frontdoor = VideoRow(2, ("/cams/frontdoor/b.mp4",), 10.0, None)
    filters = Filters(path_prefix="/cams/front")
    assert [v.video_id for v in (front, frontdoor) if _video_passes(v, filters)] == [1]
