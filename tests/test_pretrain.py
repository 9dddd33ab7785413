"""`run.py pretrain` and `run.py reconstruct`: resume after SIGKILL, the JSON document, adapted weights
that `index` loads, bad footage, the reconstruction picture (tiny variant, random weights, CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import ENCODER, ROOT, cli_in_process

from app.demo import synthesize_video
from app.reconstruct import MASK_GREY, ROWS, GridLayout, shown_frames
from encoder.pretrain_optim import scaled_schedule
from indexer.pretrain_clips import CROP_SCALES, apply_crop, sample_crop
from indexer.pretrain_files import checkpoint_path, load_checkpoint
from indexer.settings import DataDir

TINY = ["--encoder", "vit-tiny", "--weights", "random", "--precision", "fp32", "--device", "cpu"]


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pretrain-library")
    for seed in (1, 2):
        synthesize_video(folder / f"v{seed}.mp4", seed, seconds=3.0, width=96, height=80)
    return folder


def pretrain(data: Path, *args, expect: int = 0) -> subprocess.CompletedProcess:
    return cli_in_process("pretrain", "--data", data, *args, expect=expect)


def test_schedule_warms_up_then_decays_to_the_scaled_minimum():
    schedule = scaled_schedule(1e-3, total_batch=64, total_steps=100)  # official: lr x 64 / 256
    assert schedule.lr == pytest.approx(2.5e-4)
    assert schedule.warmup_steps == 10
    assert schedule.at(0) == pytest.approx(2.5e-7)  # warmup_lr 1e-6 scaled
    assert schedule.at(9) == pytest.approx(2.5e-4)
    assert schedule.at(10) == pytest.approx(2.5e-4)
    assert schedule.at(55) < schedule.at(20)
    assert schedule.at(99) == pytest.approx(2.5e-6, rel=0.05)  # min_lr 1e-5 scaled


def test_a_minutes_budget_is_refitted_to_the_pace_the_steps_really_took():
    """The first fit (its timing took 6 s) planned 1000 steps; the 20 steps since took 30 s (1.5 s a step, not
    the timed 0.6 s), so the schedule is made to end with the 600 s budget: 20 + (600 - 36) / 1.5 steps."""
    from indexer.pretrain_files import Progress, refit_to_pace

    refitted = refit_to_pace(Progress(step=20, total_steps=1000, seconds=36.0), 600.0, 0, 6.0)
    assert (refitted.step, refitted.total_steps, refitted.refitted) == (20, 396, True)
    resumed = Progress(step=120, total_steps=200, seconds=700.0)  # a resumed session past its time: one more
    assert refit_to_pace(resumed, 600.0, 100, 690.0).total_steps == 121


def test_multi_scale_crop_uses_the_official_scales_and_stays_inside():
    rng = np.random.default_rng(0)
    sides = {int(80 * s) for s in CROP_SCALES}
    for _ in range(50):
        crop = sample_crop(rng, 80, 120)
        assert crop.height in sides and crop.width in sides
        assert 0 <= crop.top <= 80 - crop.height and 0 <= crop.left <= 120 - crop.width
    frames = [np.zeros((80, 120, 3), np.uint8)] * 3
    frames[0] = frames[0].copy()
    frames[0][:, :60] = 255  # left half white: a flip moves it right
    crop = sample_crop(np.random.default_rng(1), 80, 120)
    out = apply_crop(frames, crop, 64)
    assert out.shape == (3, 64, 64, 3) and out.dtype == np.uint8


@pytest.mark.slow
def test_resume_after_sigkill_gives_the_weights_of_an_uninterrupted_run(library, tmp_path):
    args = [library, *TINY, "--steps", "8", "--batch-size", "1", "--checkpoint-minutes", "0", "--seed", "3"]
    pretrain(tmp_path / "whole", *args)

    killed = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(ROOT / "run.py"), "pretrain", "--data", str(killed), *map(str, args)]
    child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    saved = None
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and child.poll() is None:
            saved = load_checkpoint(checkpoint_path(DataDir(killed)))
            if saved is not None and saved.progress.step >= 2:
                break
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert saved is not None and 2 <= saved.progress.step < 8, "killed before the end, after a checkpoint"

    resumed = pretrain(killed, *args)
    assert "resuming from" in resumed.stderr and "same optimizer, schedule and data order" in resumed.stderr
    whole = load_checkpoint(checkpoint_path(DataDir(tmp_path / "whole")))
    again = load_checkpoint(checkpoint_path(DataDir(killed)))
    assert again.progress.step == whole.progress.step == 8
    assert again.progress.losses == whole.progress.losses
    assert whole.model.keys() == again.model.keys()
    for key, value in whole.model.items():
        assert torch.equal(value, again.model[key]), key


@pytest.mark.slow
def test_json_document_and_adapted_weights_index(library, tmp_path):
    data = tmp_path / "data"
    done = pretrain(data, library, *TINY, "--steps", "2", "--batch-size", "2", "--json")
    report = json.loads(done.stdout)
    keys = {"checkpoint", "encoder_weights", "steps", "clips_seen", "first_loss", "final_loss", "seconds"}
    assert set(report) == keys
    assert (report["steps"], report["clips_seen"]) == (2, 4)
    assert report["checkpoint"] == str(data.absolute() / "pretrain" / "checkpoint.pth")
    assert (data / "pretrain" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the curve beside it
    assert "has no decoder: the decoder starts fresh" in done.stderr
    weights = report["encoder_weights"]
    assert not any(k.startswith(("decoder.", "mask_token", "encoder_to_decoder")) for k in torch.load(weights))

    flags = ["--encoder", "vit-tiny", "--weights", weights, "--no-image-text", "--json"]
    indexed = json.loads(cli_in_process("index", "--data", tmp_path / "adapted", library, *flags).stdout)
    assert indexed["clips_embedded"] > 0 and not indexed["failures"]


def test_the_contrastive_objective_with_the_tubelet_kept_to_change(library, tmp_path):
    """`--objective nce --tubelet-difference`: said in the plan, and kept in the weights file written (the
    kernel sums to zero over each tubelet's frames, and is not all zeros)."""
    data = tmp_path / "data"
    recipe = ["--objective", "nce", "--tubelet-difference"]
    done = pretrain(data, library, *TINY, "--steps", "2", "--batch-size", "2", *recipe, "--json")
    assert "objective nce, tubelet embedding kept to change only" in done.stderr
    weight = torch.load(json.loads(done.stdout)["encoder_weights"])["patch_embed.proj.weight"]
    assert weight.sum(dim=2).abs().max() < 1e-6 < weight.abs().max()


@pytest.mark.slow
def test_bad_footage_is_skipped_with_a_warning(library, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.mp4").write_bytes((library / "v1.mp4").read_bytes())
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    done = pretrain(tmp_path / "data", folder, *TINY, "--steps", "1", "--batch-size", "1")
    assert f"skipping {folder / 'broken.mp4'}:" in done.stderr
    assert "1 step, 1 clip in" in done.stdout

    (folder / "good.mp4").unlink()
    refused = pretrain(tmp_path / "data2", folder, *TINY, "--steps", "1", expect=2)
    assert "no decodable video to pretrain on" in refused.stderr


@pytest.mark.slow
def test_reconstruct_writes_the_grid_and_says_how_to_get_a_checkpoint(library, tmp_path):
    from PIL import Image

    data = tmp_path / "data"
    cli_in_process("index", "--data", data, library, *ENCODER, "--no-image-text")
    missing = cli_in_process("reconstruct", "1", "--data", data, "--out", tmp_path / "r.png", expect=2)
    assert "no pretraining checkpoint with a decoder" in missing.stderr and "run.py pretrain --data" in missing.stderr

    pretrain(data, "--steps", "1", "--batch-size", "1", "--precision", "fp32", "--objective", "nce")
    untrained = cli_in_process("reconstruct", "1", "--data", data, "--out", tmp_path / "r.png", expect=2)
    assert "trained with --objective nce, which does not train the decoder" in untrained.stderr
    assert "--objective mae" in untrained.stderr and not (tmp_path / "r.png").exists()

    pretrain(data, "--steps", "1", "--batch-size", "1", "--precision", "fp32", "--objective", "mae", "--restart")
    cli_in_process("reconstruct", "1", "--data", data, "--out", tmp_path / "r.png", "--mask-ratio", "0.75")
    picture = np.asarray(Image.open(tmp_path / "r.png").convert("RGB"))
    layout = GridLayout(size=64, columns=len(shown_frames(16)))
    assert picture.shape[:2] == layout.shape
    tiles = [[_tile(picture, layout, r, c) for c in range(layout.columns)] for r in range(len(ROWS))]
    grey = np.mean([(t == MASK_GREY).all(axis=-1).mean() for t in tiles[1]])
    assert grey == pytest.approx(0.75, abs=0.01)  # 12 of 16 patches hidden per time slice
    visible = ~(tiles[1][0] == MASK_GREY).all(axis=-1)
    assert np.array_equal(tiles[2][0][visible], tiles[0][0][visible])  # visible patches pasted back
    assert not np.array_equal(tiles[2][0], tiles[0][0])  # the hidden ones are the model's


def _tile(picture: np.ndarray, layout: GridLayout, row: int, column: int) -> np.ndarray:
    top, left = layout.origin(row, column)
    return picture[top : top + layout.tile, left : left + layout.tile]


@pytest.mark.slow
def test_web_ui_shows_the_reconstruction_of_a_result_card(browser, library, tmp_path):
    from live_server import live_server

    data = tmp_path / "data"
    cli_in_process("index", "--data", data, library, *ENCODER, "--precision", "fp32")
    with live_server(data) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(url)
        page.fill("#query-text textarea", "a yellow disc")
        page.click("#search-button")
        page.wait_for_selector("#moments .thumbnail-item img", timeout=60_000)
        page.locator("#moments .thumbnail-item").first.click()
        page.wait_for_selector("#player video", timeout=60_000)
        page.click("#reconstruct-button")  # no checkpoint yet: the toast says how to make one
        page.wait_for_selector("text=run.py pretrain", timeout=60_000)
        assert "/" + data.name not in page.content()  # the server path is not shown

        pretrain(data, "--steps", "1", "--batch-size", "1", "--precision", "fp32", "--objective", "mae")
        page.click("#reconstruct-button")
        image = page.wait_for_selector("#reconstruction img", timeout=60_000)
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image)
        size = image.evaluate("img => [img.naturalHeight, img.naturalWidth]")
        assert tuple(size) == GridLayout(size=64, columns=4).shape
        page.close()


@pytest.mark.slow
def test_too_little_memory_is_a_clear_error(library, tmp_path, monkeypatch):
    import indexer.pretrain

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 987654321 bytes")

    monkeypatch.setattr(indexer.pretrain, "train_step", out_of_memory)
    refused = pretrain(tmp_path / "data", library, *TINY, "--steps", "1", "--batch-size", "2", expect=2)
    assert "not enough memory for a batch of 2 vit-tiny clips on cpu" in refused.stderr
    assert "smaller --batch-size and a larger --accum" in refused.stderr
