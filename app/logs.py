"""Logging, configured once at the entry point (run.py); library code only calls logging.getLogger.

Tubelet's own loggers (app.*, indexer.*, encoder.*) log at WARNING by default, INFO with `-v`, DEBUG
with `-vv`; `TUBELET_LOG=debug|info|warning|error` sets the level when no `-v` is given. Other
libraries (Gradio, httpx, huggingface_hub) stay at WARNING whatever the level, so `-v` shows what
Tubelet does, not their request logs. Records go to stderr, one line each.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

PACKAGES = ("app", "indexer", "encoder")
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
FORMAT = "%(levelname)s %(name)s: %(message)s"


class LogLevelError(ValueError):
    """TUBELET_LOG names no level; the message lists the valid ones."""


def level_for(verbose: int, env: Mapping[str, str] = os.environ) -> int:
    """The level of Tubelet's loggers: -v counts first, then TUBELET_LOG, else WARNING."""
    if verbose:
        return logging.INFO if verbose == 1 else logging.DEBUG
    name = env.get("TUBELET_LOG", "").strip().lower()
    if not name:
        return logging.WARNING
    if name not in LEVELS:
        raise LogLevelError(f"TUBELET_LOG must be one of {', '.join(LEVELS)}, got {name!r}")
    return LEVELS[name]


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record is emitted (a redirected stderr included)."""

    def __init__(self):
        super().__init__()
        self.setFormatter(logging.Formatter(FORMAT))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass  # always sys.stderr


def configure_logging(level: int) -> None:
    """One stderr handler on the root logger (replacing the one a previous call installed)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, StderrHandler)]:
        root.removeHandler(handler)
    root.addHandler(StderrHandler())
    root.setLevel(logging.WARNING)
    for package in PACKAGES:
        logging.getLogger(package).setLevel(level)
