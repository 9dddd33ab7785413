"""Converting a tower for OpenVINO sends nothing anywhere: no usage telemetry, no client id in the home dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("openvino")

ROOT = Path(__file__).resolve().parent.parent

# A fresh interpreter: the opt-out has to be in place before openvino is first imported.
CONVERT = """
import os, sys, threading, time
forks = []
os.register_at_fork(before=lambda: forks.append(1))
from encoder.factory import resolve_video_encoder
spec = resolve_video_encoder("vit-tiny", "random", sys.argv[1] + "/weights")
spec.load("cpu", "fp32", "openvino", sys.argv[1] + "/runtime")  # converts: the cache is empty
import openvino.tools.ovc.telemetry_utils as telemetry
time.sleep(1)  # the telemetry sender works in background threads
print(telemetry.tm.__name__, len(forks), sorted(t.name for t in threading.enumerate()))
"""


def test_converting_a_tower_forks_nothing_and_writes_nothing_outside_the_data_dir(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    off_switches = ("CI", "TF_BUILD", "JENKINS_URL")  # the variables that turn openvino-telemetry off by itself
    env = {k: v for k, v in os.environ.items() if k not in off_switches}
    env |= {"HOME": str(home), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", CONVERT, str(tmp_path / "data")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    module, forks, threads = done.stdout.strip().splitlines()[-1].split(" ", 2)
    assert module == "openvino.tools.ovc.telemetry_stub"
    assert forks == "0"
    assert threads == "['MainThread']"
    assert list(home.iterdir()) == []  # openvino-telemetry would have written ~/intel/openvino_ga_cid
    assert any((tmp_path / "data" / "runtime").glob("*.xml"))  # and the conversion did happen
