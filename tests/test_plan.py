"""Change planning: what an index run embeds, moves, keeps and deletes."""

from __future__ import annotations

from pathlib import Path

from indexer.catalog import KnownPath
from indexer.plan import plan_changes
from indexer.records import ScannedFile

ROOT = Path("/lib")


def scanned(name: str, size: int = 100, mtime: int = 1) -> ScannedFile:
    return ScannedFile(ROOT / name, size, mtime, ROOT)


def known(name: str, video_id: int, fp: str, size: int = 100, mtime: int = 1, status: str = "indexed"):
    return str(ROOT / name), KnownPath(str(ROOT / name), video_id, size, mtime, fp, status, None)


def plan(files, known_paths, contents: dict[str, str], retry_failed=False):
    """`contents`: file name -> fingerprint it would hash to (hashing is counted)."""
    hashed = []

    def fingerprint(f):
        hashed.append(f.path.name)
        return contents[f.path.name]

    by_path = dict(known_paths)
    videos = {k.fingerprint: (k.video_id, k.status) for k in by_path.values()}
    return plan_changes(files, [ROOT], by_path, videos, fingerprint, retry_failed), hashed


def test_unchanged_files_are_not_even_read():
    result, hashed = plan([scanned("a.mp4")], [known("a.mp4", 1, "fa")], {})
    assert [f.path.name for f in result.unchanged] == ["a.mp4"] and hashed == [] and not result.embed


def test_touched_file_with_same_content_is_unchanged():
    result, hashed = plan([scanned("a.mp4", mtime=2)], [known("a.mp4", 1, "fa")], {"a.mp4": "fa"})
    assert hashed == ["a.mp4"] and len(result.unchanged) == 1 and len(result.touched) == 1
    assert not result.embed


def test_new_and_changed_files_are_embedded():
    result, _ = plan(
        [scanned("a.mp4", size=101), scanned("b.mp4")], [known("a.mp4", 1, "fa")], {"a.mp4": "fa2", "b.mp4": "fb"}
    )
    assert [(t.file.path.name, t.fingerprint, t.reason) for t in result.embed] == [
        ("a.mp4", "fa2", "changed"),
        ("b.mp4", "fb", "new"),
    ]
    assert result.changed_count == 1 and not result.deleted


def test_rename_is_a_move_not_an_embedding():
    result, _ = plan([scanned("renamed.mp4")], [known("a.mp4", 1, "fa")], {"renamed.mp4": "fa"})
    assert [(f.path.name, vid) for f, vid in result.moved] == [("renamed.mp4", 1)]
    assert result.vacated == ["/lib/a.mp4"] and not result.deleted and not result.embed


def test_copy_of_known_content_adds_a_path():
    result, _ = plan([scanned("a.mp4"), scanned("copy.mp4")], [known("a.mp4", 1, "fa")], {"copy.mp4": "fa"})
    assert [(f.path.name, vid) for f, vid in result.copies] == [("copy.mp4", 1)] and not result.moved


def test_missing_file_is_deleted_only_under_scanned_roots():
    other = (str(Path("/elsewhere/x.mp4")), KnownPath("/elsewhere/x.mp4", 2, 1, 1, "fx", "indexed", None))
    result, _ = plan([], [known("a.mp4", 1, "fa"), other], {})
    assert result.deleted == ["/lib/a.mp4"]


def test_known_failures_are_reported_not_retried_unless_asked():
    entry = known("bad.mp4", 3, "fbad", status="failed")
    result, _ = plan([scanned("bad.mp4")], [entry], {})
    assert [f.path.name for f, _ in result.known_failed] == ["bad.mp4"] and not result.embed
    result, _ = plan([scanned("bad.mp4")], [entry], {}, retry_failed=True)
    assert [(t.file.path.name, t.reason) for t in result.embed] == [("bad.mp4", "retry")]


def test_two_renames_of_one_content_move_once_and_copy_once():
    result, _ = plan([scanned("x.mp4"), scanned("y.mp4")], [known("a.mp4", 1, "fa")], {"x.mp4": "fa", "y.mp4": "fa"})
    assert len(result.moved) == 1 and len(result.copies) == 1 and not result.deleted
