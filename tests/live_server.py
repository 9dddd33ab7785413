"""A real `run.py serve` process on a free loopback port, for browser and API tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_server(data: Path, *extra: str, timeout: float = 120.0):
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "GRADIO_ANALYTICS_ENABLED": "False"}
    log = open(data / f"serve-{port}.log", "w")  # noqa: SIM115 (closed in the finally, after the server stops)
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "run.py"),
            "serve",
            "--data",
            str(data),
            "--port",
            str(port),
            "--precision",
            "fp32",
            *extra,
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {(data / f'serve-{port}.log').read_text()}")
            try:
                urllib.request.urlopen(url + "gradio_api/info", timeout=2)
                break
            except OSError as exc:
                if getattr(exc, "code", None) in (401, 403):
                    break  # up, but behind auth
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
