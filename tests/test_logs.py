"""The entry point's handling of its output: logging configured once (-v / -vv / TUBELET_LOG, one
stderr line per record), and a reader that closes the pipe early."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
from helpers import ROOT, cli_in_process

from app.logs import LogLevelError, StderrHandler, configure_logging, level_for


@pytest.mark.parametrize(
    ("verbose", "env", "level"),
    [
        (0, {}, logging.WARNING),
        (1, {}, logging.INFO),
        (2, {}, logging.DEBUG),
        (3, {}, logging.DEBUG),
        (0, {"TUBELET_LOG": "debug"}, logging.DEBUG),
        (0, {"TUBELET_LOG": " Info "}, logging.INFO),
        (1, {"TUBELET_LOG": "error"}, logging.INFO),  # -v wins over the environment
    ],
)
def test_level_comes_from_verbose_then_the_environment(verbose, env, level):
    assert level_for(verbose, env) == level


def test_an_unknown_level_lists_the_valid_ones():
    with pytest.raises(LogLevelError, match=r"TUBELET_LOG must be one of debug, info, warning, error, got 'loud'"):
        level_for(0, {"TUBELET_LOG": "loud"})


def test_configuring_twice_keeps_one_handler_and_shows_only_tubelet_at_info(capsys):
    configure_logging(logging.WARNING)
    configure_logging(logging.INFO)
    try:
        assert sum(isinstance(h, StderrHandler) for h in logging.getLogger().handlers) == 1
        logging.getLogger("indexer.store").info("rebuilt the video index")
        logging.getLogger("httpx").info("HTTP Request: GET /")  # another library stays at WARNING
        err = capsys.readouterr().err
        assert err == "INFO indexer.store: rebuilt the video index\n"
    finally:
        configure_logging(logging.WARNING)


def test_the_cli_refuses_a_bad_level_and_takes_verbose(tmp_path, monkeypatch):
    monkeypatch.setenv("TUBELET_LOG", "loud")
    done = cli_in_process("status", "--data", tmp_path, expect=2)
    assert "error: TUBELET_LOG must be one of" in done.stderr
    cli_in_process("status", "--data", tmp_path, "-v", expect=0)  # -v wins over the bad variable
    assert logging.getLogger("app").level == logging.INFO
    monkeypatch.delenv("TUBELET_LOG")
    cli_in_process("status", "--data", tmp_path, expect=0)
    assert logging.getLogger("app").level == logging.WARNING


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path):
    """`run.py status | head -1`: the pipe closes before the status is written."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "status", "--data", str(tmp_path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before anything is written
    stderr = proc.stderr.read().decode()
    assert proc.wait(60) == 141
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
