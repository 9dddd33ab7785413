"""Helpers shared by the test modules (no test module imports another).

`cli` runs `run.py` in a child process: for the tests where a separate process is the point
(crashes, locks between processes, memory, start-up imports). `cli_in_process` calls the same
`run.main` in this process, which spares ~5 s of imports per call; `index` and `search` use it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from indexer.settings import DataDir, EncoderSettings, ImageTextSettings, IndexSettings

ROOT = Path(__file__).resolve().parent.parent
# Random weights of the tiny registered variants stand in for pretrained ones (no hub here).
ENCODER = [
    "--encoder",
    "vit-tiny",
    "--weights",
    "random",
    "--image-text-model",
    "tubelet-tiny-clip",
    "--image-text-weights",
    "random",
]


def cli(*args, expect: int | None = 0) -> subprocess.CompletedProcess:
    """`run.py ARGS` in a child process; asserts its exit code unless `expect` is None."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if expect is not None:
        assert done.returncode == expect, done.stderr + done.stdout
    return done


def cli_in_process(*args, expect: int | None = 0) -> subprocess.CompletedProcess:
    """The same CLI, called in this process (stdout and stderr captured)."""
    import run

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run.main([str(a) for a in args])
    if expect is not None:
        assert code == expect, err.getvalue() + out.getvalue()
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def index(data: Path, *paths, expect: int = 0) -> dict:
    return json.loads(cli_in_process("index", "--data", data, *paths, *ENCODER, "--json", expect=expect).stdout)


def search(data: Path, *args) -> list[dict]:
    return json.loads(cli_in_process("search", "--data", data, *args, "--json").stdout)


def overlaps(hit: dict, start: float, end: float) -> bool:
    return hit["start"] < end and hit["end"] > start


def peak_overlaps(hit: dict, start: float, end: float) -> bool:
    """The moment's best window shares time with [start, end)."""
    return hit["peak_start"] < end and hit["peak_end"] > start


def settings(data: Path) -> IndexSettings:
    """In-process index settings with the tiny test towers on the CPU in fp32."""
    return IndexSettings(
        DataDir(data),
        EncoderSettings("vit-tiny", "random", "cpu", "fp32"),
        ImageTextSettings(True, "tubelet-tiny-clip", "random"),
    )


def can_unshare() -> bool:
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
    return probe.returncode == 0


def in_mount_namespace(script: str) -> subprocess.CompletedProcess:
    """Run a shell script in a private mount namespace (to make a data dir read-only or tiny)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PY": sys.executable}
    return subprocess.run(
        ["unshare", "--mount", "bash", "-ec", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


needs_unshare = pytest.mark.skipif(
    not shutil.which("unshare") or not can_unshare(),
    reason="needs `unshare --mount` (root) to make a read-only or full data dir",
)


def open_at_once(url: str, openers: int) -> tuple[list, list[str]]:
    """`openers` threads open the catalog at `url` at the same moment: (the open catalogs, errors)."""
    from indexer.catalog import Catalog

    barrier, errors, catalogs = threading.Barrier(openers), [], []

    def open_one():
        barrier.wait()
        try:
            catalogs.append(Catalog(url).open())
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=open_one) for _ in range(openers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return catalogs, errors
