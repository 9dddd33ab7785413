"""Without network, missing hub weights are an error within seconds that names every way forward.

Nothing here reaches the real network: the CLI runs in a network namespace with none (`unshare -rn`), or,
where that is not allowed, against a hub endpoint on a closed local port; the rest is offline mode.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import ROOT

from encoder.errors import WeightsError
from encoder.offline import HubFile, HubUnreachableError, unreachable_reason
from encoder.videomae2_weights import resolve_videomae2_weights
from indexer.settings import DataDir, EncoderSettings, IndexSettings
from indexer.towers import resolve_towers

VIDEO_FILE = "distill/vit_s_k710_dl_from_giant.pth"
IMAGE_TEXT_REPO = "laion/CLIP-ViT-B-32-256x256-DataComp-s34B-b86K"
WAYS_FORWARD = [
    f"hf download OpenGVLab/VideoMAE2 {VIDEO_FILE}",
    f"hf download {IMAGE_TEXT_REPO} open_clip_model.safetensors",
    "HF_HOME",
    "--weights /path/to/vit_s_k710_dl_from_giant.pth",
    "--image-text-weights /path/to/open_clip_model.safetensors",
    "--weights random --image-text-weights random",
    "--no-image-text",
    "Offline and air-gapped machines",
]


def test_a_closed_hub_port_is_unreachable_at_once():
    assert "Connection refused" in unreachable_reason("http://127.0.0.1:1")


def test_both_towers_missing_weights_are_named_in_one_error(tmp_path, monkeypatch):
    """Base behaviour: the first tower's error alone, naming neither random weights nor --no-image-text."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnreachableError) as caught:
        resolve_towers(IndexSettings(DataDir(tmp_path / "data"), EncoderSettings()))
    message = str(caught.value)
    assert "HF_HUB_OFFLINE is set" in message
    assert [way for way in WAYS_FORWARD if way not in message] == []


def test_one_tower_missing_suggests_only_its_own_options(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError) as caught:
        resolve_videomae2_weights("vit-s", None, tmp_path / "cache")
    message = str(caught.value)
    assert "--weights random (finds copies" in message and "--image-text-weights" not in message
    assert "--no-image-text" not in message  # no help for the video tower


def test_weights_fixed_by_recorded_vectors_are_offered_only_the_cache():
    """`search` and `serve` take no weights options: the message must not offer them."""
    offline = HubUnreachableError((HubFile("OpenGVLab/VideoMAE2", VIDEO_FILE, "--weights"),), "no network")
    message = str(offline.for_recorded_vectors())
    assert f"hf download OpenGVLab/VideoMAE2 {VIDEO_FILE}" in message and "HF_HOME" in message
    assert "no other file can stand in" in message
    assert "/path/to/" not in message and "random" not in message


def can_unshare_network() -> bool:
    try:
        return subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=30).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


# Imports before the clock: the bound is on finding out that the hub is gone, not on loading torch.
TIMED_MAIN = """
import json, sys, time
import run, indexer.pipeline, encoder.image_text, open_clip, huggingface_hub.file_download
start = time.monotonic()
code = run.main(sys.argv[1:])
print(json.dumps({"code": code, "seconds": time.monotonic() - start}))
"""


@pytest.mark.slow
def test_index_without_network_fails_within_seconds_naming_every_way_forward(tmp_path):
    """Base behaviour: ~33 s of huggingface_hub retries for the first tower, then a message without them."""
    (tmp_path / "lib").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_ENDPOINT")}
    env.update(HF_HOME=str(tmp_path / "hf"), PYTHONPATH=str(ROOT))
    prefix = ["unshare", "-rn"] if can_unshare_network() else []
    if not prefix:
        env["HF_ENDPOINT"] = "http://127.0.0.1:1"  # a closed local port: refused, never the real hub
    command = [*prefix, sys.executable, "-c", TIMED_MAIN, "index", str(tmp_path / "lib"), "--data", str(tmp_path / "d")]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    timing = json.loads(done.stdout.strip().splitlines()[-1])
    assert timing["code"] == 2, done.stderr
    assert "the Hugging Face hub cannot be reached" in done.stderr
    assert [way for way in WAYS_FORWARD if way not in done.stderr] == []
    assert timing["seconds"] < 15, done.stderr
