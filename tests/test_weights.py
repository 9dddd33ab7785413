"""Weights resolution: local files, the hub cache, explicit random weights, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from checkpoints import distill_file

from encoder import load_videomae2
from encoder.errors import WeightsError
from encoder.videomae2 import VideoMAE2, variant_config
from encoder.videomae2_weights import resolve_videomae2_weights

ROOT = Path(__file__).resolve().parent.parent


def test_random_weights_are_identical_across_processes(tmp_path):
    script = (
        "import sys; from pathlib import Path;"
        "from encoder.videomae2_weights import resolve_videomae2_weights as r;"
        "print(r('vit-tiny', 'random', Path(sys.argv[1])).sha256)"
    )
    shas = [
        subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / name)], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout.strip()
        for name in ("a", "b")
    ]
    assert len(shas[0]) == 64 and shas[0] == shas[1]
    other_seed = resolve_videomae2_weights("vit-tiny", "random:1", tmp_path / "c")
    assert other_seed.sha256 != shas[0] and other_seed.source == "random:1"


def test_local_distilled_checkpoint_loads(tmp_path):
    source = VideoMAE2(variant_config("vit-tiny")).init_random_(3)
    path = tmp_path / "vit_tiny_k710.pth"
    torch.save(distill_file(source), path)
    model = load_videomae2("vit-tiny", weights=str(path), cache_dir=tmp_path / "cache")
    assert not model.training
    assert model.pretrained_cfg.source == str(path) and model.pretrained_cfg.preprocess.size == 64
    expected = source.state_dict()["blocks.1.mlp.fc1.weight"].half().float()
    assert torch.equal(model.state_dict()["blocks.1.mlp.fc1.weight"], expected)


def fake_hub_cache(hf_home: Path, repo: str, filename: str, payload: dict) -> Path:
    """The huggingface_hub cache layout: models--OWNER--NAME/{refs/main, snapshots/REV/FILE}."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(revision)
    target = repo_dir / "snapshots" / revision / filename
    target.parent.mkdir(parents=True)
    torch.save(payload, target)
    return target


def test_default_weights_come_from_the_hub_cache_offline(tmp_path, monkeypatch):
    source = VideoMAE2(variant_config("vit-s")).init_random_(4)
    cached = fake_hub_cache(
        tmp_path / "hf", "OpenGVLab/VideoMAE2", "distill/vit_s_k710_dl_from_giant.pth", distill_file(source)
    )
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    resolved = resolve_videomae2_weights("vit-s", None, tmp_path / "cache")
    assert resolved.source == "hf:OpenGVLab/VideoMAE2/distill/vit_s_k710_dl_from_giant.pth"
    assert resolved.path.samefile(cached)
    assert (resolved.preprocess.window_frames, resolved.preprocess.frame_interval) == (16, 4)
    model = load_videomae2("vit-s", cache_dir=tmp_path / "cache")
    assert torch.equal(model.state_dict()["fc_norm.weight"], source.state_dict()["fc_norm.weight"].half().float())


def test_unreachable_hub_without_cache_says_how_to_pass_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError, match=r"(?s)vit_s_k710_dl_from_giant\.pth.*--weights /path/to/vit_s_k710"):
        resolve_videomae2_weights("vit-s", "k710-distill", tmp_path / "cache")


def test_missing_local_file_lists_valid_sources(tmp_path):
    with pytest.raises(WeightsError, match=r"no such file.*pretrained tags: k710-distill, hybrid-pt"):
        resolve_videomae2_weights("vit-b", str(tmp_path / "nope.pth"), tmp_path)


def test_tiny_variant_has_no_default_weights(tmp_path):
    with pytest.raises(WeightsError, match=r"no published weights.*'random'"):
        resolve_videomae2_weights("vit-tiny", None, tmp_path)


def test_unreadable_checkpoint_names_the_file(tmp_path):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match=r"cannot read weights file .*broken.pth"):
        load_videomae2("vit-tiny", weights=str(bad), cache_dir=tmp_path)


def test_checksum_cache_notices_a_changed_file(tmp_path):
    path = tmp_path / "w.pth"
    torch.save({"a": torch.zeros(1)}, path)
    first = resolve_videomae2_weights("vit-tiny", str(path), tmp_path).sha256
    torch.save({"a": torch.ones(1)}, path)
    os.utime(path, ns=(1, 1))
    assert resolve_videomae2_weights("vit-tiny", str(path), tmp_path).sha256 != first
