"""Indexing with another encoder builds a second vector set beside the active one, then switches to it.

The "two encoders" are the tiny towers with two random seeds, and a saved VideoMAE v2 state (what
`pretrain` writes as adapted weights). Searches must answer from the active set while the new one is
built, switch in one transaction, and then answer exactly as a data dir made with the new encoder alone.
"""

from __future__ import annotations

import json
import shutil
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from helpers import ENCODER, cli_in_process, settings
from sqlalchemy import event

from app.demo import synthesize_video
from app.query import Query
from app.search import SearchService
from encoder.videomae2 import VideoMAE2, variant_config
from indexer.catalog import Catalog, CatalogError
from indexer.pipeline import run_index
from indexer.records import IMAGE_SET, VIDEO_SET
from indexer.settings import DataDir, EncoderSettings, ImageTextSettings

pytestmark = pytest.mark.slow  # each test indexes a small library with two encoders

OTHER = [a if a != "random" else "random:1" for a in ENCODER]  # both towers, another seed


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(library of 3 one-clip videos, data dir indexed with the tiny random towers, adapted weights file)."""
    root = tmp_path_factory.mktemp("switch")
    for i in range(3):
        synthesize_video(root / "lib" / f"v{i}.mp4", seed=20 + i, seconds=2.0, width=160, height=120)
    run_index(settings(root / "data"), [root / "lib"])
    adapted = root / "adapted.pth"
    torch.save(VideoMAE2(variant_config("vit-tiny")).init_random_(5).state_dict(), adapted)
    return root / "lib", root / "data", adapted


@pytest.fixture
def copy(built, tmp_path):
    lib, data, adapted = built
    shutil.copytree(data, tmp_path / "data")
    return lib, tmp_path / "data", adapted


def answers(service: SearchService) -> list[list[tuple]]:
    """Text, clip and more-like-this answers, by (path, start, score): clip ids differ between data dirs."""
    service.ensure_ready()
    v0 = next(row for row in service.catalog.video_rows() if row.paths[0].endswith("v0.mp4"))
    like = service.catalog.timeline(v0.video_id)[0].clip_id
    queries = [Query(text="a red square"), Query(video=Path(v0.paths[0]), end=2.0), Query(like=like)]
    return [[(Path(m.path).name, m.start, round(m.score, 4)) for m in service.search(q).moments] for q in queries]


def fresh_answers(data: Path) -> list[list[tuple]]:
    service = SearchService(DataDir(data), "cpu", "fp32", runtime="torch").load()
    try:
        return answers(service)
    finally:
        service.catalog.close()


def status(data: Path) -> dict:
    return json.loads(cli_in_process("status", "--data", data, "--json").stdout)


def roles(data: Path) -> dict[str, tuple[str, int, bool]]:
    return {s["name"]: (s["role"], s["vectors"], s["complete"]) for s in status(data)["vector_sets"]}


class StopAfterOneVideo:
    """A cancel (Ctrl+C, the UI's stop) once the decode thread has taken its first video: only it is embedded."""

    def __init__(self):
        self.decode_polls = 0

    def __call__(self) -> bool:
        if threading.current_thread().name == "tubelet-decode":
            self.decode_polls += 1
        return self.decode_polls > 1


def test_search_answers_from_the_active_set_while_adapted_weights_build_the_new_one(copy, tmp_path):
    """The Bar's path: a cancelled run leaves the new set half built; searches, the service and `activate`
    ignore it; the same command resumes it and switches; nothing is wiped and nothing is mixed."""
    lib, data, adapted = copy
    service = SearchService(DataDir(data), "cpu", "fp32", runtime="torch").load()
    before = answers(service)
    asked = replace(settings(data), encoder=EncoderSettings("vit-tiny", str(adapted), "cpu", "fp32"))
    report = run_index(asked, [lib], should_stop=StopAfterOneVideo())
    assert report.cancelled and report.activated == []
    assert report.building == {"video.new": {"clips": 3, "vectors": 1}}  # the image tower is unchanged: no new set
    assert roles(data) == {"video": ("active", 3, True), "image": ("active", 3, True), "video.new": ("new", 1, False)}
    assert status(data)["towers"]["video"]["identity"]["weights"] == "random:0"
    assert not service.refresh() and answers(service) == before  # the service still answers from the active set
    assert fresh_answers(data) == before
    refused = cli_in_process("activate", "--data", data, expect=2)
    assert "covers 1 of 3 clips" in refused.stderr and roles(data)["video.new"] == ("new", 1, False)

    report = run_index(asked, [lib])  # the same command resumes: only the two clips left are embedded
    assert report.vectors_embedded == {"video": 0, "image": 0, "video.new": 2} and report.activated == ["video"]
    assert roles(data) == {"video": ("active", 3, True), "image": ("active", 3, True), "video.old.1": ("old", 3, True)}
    assert status(data)["towers"]["video"]["identity"]["weights"] == str(adapted)
    assert status(data)["towers"]["video"]["indexed_with"] == report.runtimes["video.new"]  # what made its vectors
    assert status(data)["clips"] == 3  # no clip was cut again

    alone = tmp_path / "alone"  # the same library indexed with the adapted weights only
    run_index(replace(asked, data=DataDir(alone)), [lib])
    after = answers(service)  # the service picked up the switch: new encoder, new vectors, old image set
    assert after == fresh_answers(alone) and after != before
    assert service.towers.video.weights.source == str(adapted)
    service.catalog.close()


def test_the_switch_is_one_transaction(copy):
    """A failure between the two renames leaves the active set active and the new set whole."""
    lib, data, _ = copy
    cli_in_process("index", "--data", data, lib, *OTHER, "--keep-active", "--json")
    catalog = Catalog(DataDir(data).catalog).open()
    active, new = catalog.vector_set(VIDEO_SET), catalog.vector_set("video.new")

    def fail_second_rename(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("UPDATE vector_sets SET name") and parameters[0] == VIDEO_SET:
            raise RuntimeError("crash between the renames")

    event.listen(catalog._engine, "before_cursor_execute", fail_second_rename)
    with pytest.raises(RuntimeError, match="crash between"):
        catalog.activate_new_set(VIDEO_SET)
    event.remove(catalog._engine, "before_cursor_execute", fail_second_rename)
    assert catalog.vector_set(VIDEO_SET) == active and catalog.vector_set("video.new") == new
    assert {v.name for v in catalog.vector_sets()} == {"video", "image", "video.new", "image.new"}
    assert catalog.activate_new_set(VIDEO_SET).id == new.id
    assert catalog.vector_set(VIDEO_SET).id == new.id and catalog.vector_set(f"video.old.{active.id}").id == active.id
    catalog.close()


def test_an_incomplete_new_set_is_refused_by_the_catalog(copy):
    _, data, _ = copy
    catalog = Catalog(DataDir(data).catalog).open()
    video = catalog.vector_set(VIDEO_SET)
    new = catalog.start_new_set(VIDEO_SET, {**video.identity, "weights": "other"}, video.dim)
    assert new.name == "video.new"
    with pytest.raises(CatalogError, match="covers 0 of 3 clips"):
        catalog.activate_new_set(VIDEO_SET)
    assert catalog.vector_set(VIDEO_SET) == video
    third = {**video.identity, "weights": "a third"}
    with pytest.raises(CatalogError, match=r"being built for .*weights=other.*3 clips to go.*drop-set new"):
        catalog.start_new_set(VIDEO_SET, third, video.dim)
    assert catalog.vector_set("video.new") == new  # an unfinished set is dropped only on request
    with pytest.raises(CatalogError, match="never dropped"):
        catalog.drop_sets([VIDEO_SET])
    assert catalog.drop_sets(["video.new"]) == 0 and catalog.start_new_set(VIDEO_SET, third, video.dim).key != new.key
    catalog.close()


def test_keep_active_then_activate_and_old_vectors_go_only_on_request(copy):
    lib, data, _ = copy
    other = [*OTHER, "--precision", "bf16"]  # so that status can tell which run made which set's vectors
    report = json.loads(cli_in_process("index", "--data", data, lib, *other, "--keep-active", "--json").stdout)
    assert report["activated"] == [] and report["vectors_embedded"]["video.new"] == 3
    assert roles(data)["video.new"] == ("new", 3, True) and roles(data)["video"] == ("active", 3, True)
    assert status(data)["towers"][IMAGE_SET]["identity"]["weights"] == "random:0"  # still the active encoders
    assert {name: t["indexed_with"] for name, t in status(data)["towers"].items()} == {
        "video": "cpu fp32",  # the fixture's run, not the last one
        "image": "cpu fp32",
    }

    switched = json.loads(cli_in_process("activate", "--data", data, "--json").stdout)
    assert switched == {"activated": ["video", "image"], "dropped": [], "vectors_dropped": 0}
    assert status(data)["towers"][IMAGE_SET]["identity"]["weights"] == "random:1"
    cli_in_process("index", "--data", data, lib, "--json")  # a plain run keeps the old sets
    assert {name: t["indexed_with"] for name, t in status(data)["towers"].items()} == {
        "video": "cpu bf16",  # the --keep-active run made the sets now active
        "image": "cpu bf16",
    }
    assert sorted(r for r, _, _ in roles(data).values()) == ["active", "active", "old", "old"]

    dropped = json.loads(cli_in_process("drop-set", "old", "--data", data, "--json").stdout)
    assert dropped["vectors_dropped"] == 6 and len(dropped["dropped"]) == 2
    assert roles(data) == {"video": ("active", 3, True), "image": ("active", 3, True)}


def test_indexing_with_an_old_encoder_again_revives_its_set(copy):
    lib, data, _ = copy
    cli_in_process("index", "--data", data, lib, *OTHER, "--json")
    back = json.loads(cli_in_process("index", "--data", data, lib, *ENCODER, "--json").stdout)
    assert back["activated"] == ["video", "image"]  # the old vectors were still right: nothing embedded
    assert back["vectors_embedded"] == {"video": 0, "image": 0, "video.new": 0, "image.new": 0}
    assert status(data)["towers"][VIDEO_SET]["identity"]["weights"] == "random:0"


def test_other_sampling_is_refused_and_rebuild_still_re_embeds_everything(copy):
    lib, data, _ = copy
    refused = cli_in_process("index", "--data", data, lib, *OTHER, "--stride-frames", "8", expect=2)
    assert "cuts clips differently" in refused.stderr and "--rebuild" in refused.stderr
    assert set(roles(data)) == {"video", "image"}
    rebuilt = json.loads(cli_in_process("index", "--data", data, lib, *OTHER, "--rebuild", "--json").stdout)
    assert rebuilt["vectors_embedded"] == {"video": 3, "image": 3} and rebuilt["activated"] == []
    assert set(roles(data)) == {"video", "image"}
    assert status(data)["towers"][VIDEO_SET]["identity"]["weights"] == "random:1"


def test_an_image_text_only_change_needs_no_video_work(copy):
    lib, data, _ = copy
    other_image = ImageTextSettings(True, "tubelet-tiny-clip", "random:1")
    report = run_index(replace(settings(data), image_text=other_image), [lib])
    assert report.vectors_embedded == {"video": 0, "image": 0, "image.new": 3} and report.activated == ["image"]
