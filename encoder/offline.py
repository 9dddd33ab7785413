"""When weights must come from the Hugging Face hub and it cannot be reached: find out fast, say what to do.

huggingface_hub retries a request five times with back-off (about 30 s per file) before it gives up
on a machine without network. One TCP connect to the hub (or to the proxy that reaches it), bounded
by a few seconds, tells the same thing at once; the hub's own retries are kept for a network that is
there but flaky. The error names every way forward, for every tower whose weights are missing, in
one message (README: "Offline and air-gapped machines").
"""

from __future__ import annotations

import os
import socket
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from encoder.errors import WeightsError

DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_SECONDS = 3.0  # a reachable hub answers a TCP connect in well under a second


@dataclass(frozen=True)
class HubFile:
    """A weights file on the hub, and the option that takes a local copy of it instead."""

    repo: str
    filename: str
    flag: str  # --weights | --image-text-weights


class HubUnreachableError(WeightsError):
    """Weights that only the hub has, while the hub cannot be reached."""

    def __init__(self, missing: tuple[HubFile, ...], reason: str, recorded: bool = False):
        self.missing, self.reason, self.recorded = missing, reason, recorded
        super().__init__(offline_message(missing, reason, recorded))

    def joined(self, other: HubUnreachableError) -> HubUnreachableError:
        """One error for the files of both (a run with two towers says everything at once)."""
        return HubUnreachableError(self.missing + other.missing, self.reason, self.recorded)

    def for_recorded_vectors(self) -> HubUnreachableError:
        """The same, where the weights are fixed by vectors already made (search, serve): only the
        cache can provide them, no option can name others."""
        return HubUnreachableError(self.missing, self.reason, recorded=True)


def hub_endpoint() -> str:
    """The hub's address, read at call time (huggingface_hub reads HF_ENDPOINT at import)."""
    return os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT


def offline_mode() -> bool:
    """HF_HUB_OFFLINE, as huggingface_hub understands it."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def unreachable_reason(endpoint: str | None = None, timeout: float = PROBE_SECONDS) -> str | None:
    """None when a TCP connection to the hub (or its proxy) opens within `timeout` seconds; else why not.
    Name resolution is bounded too: the connect runs in a daemon thread that is left behind if it hangs."""
    host, port = _address(endpoint or hub_endpoint())
    failure: list[OSError] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as exc:
            failure.append(exc)

    thread = threading.Thread(target=connect, name="hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return f"no answer from {host}:{port} within {timeout:g} s"
    if failure:
        exc = failure[0]
        return f"cannot connect to {host}:{port}: {exc.strerror or exc}"
    return None


def _address(endpoint: str) -> tuple[str, int]:
    """Where a request to `endpoint` first connects: the proxy for it when one is set, else the hub."""
    url = urlsplit(endpoint)
    proxy = urllib.request.getproxies().get(url.scheme)
    if proxy and not urllib.request.proxy_bypass(url.hostname or ""):
        proxied = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        return proxied.hostname or "", proxied.port or 80
    return url.hostname or "", url.port or (443 if url.scheme == "https" else 80)


def offline_message(missing: tuple[HubFile, ...], reason: str, recorded: bool = False) -> str:
    hf_home = os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))
    files = "".join(f"\n  {f.flag}: {f.filename} from {f.repo} (https://huggingface.co/{f.repo})" for f in missing)
    downloads = "; ".join(f"`hf download {f.repo} {f.filename}`" for f in missing)
    local = ", ".join(f"{f.flag} /path/to/{Path(f.filename).name}" for f in missing)
    flags = {f.flag for f in missing}
    random = " ".join(f"{flag} random" for flag in ("--weights", "--image-text-weights") if flag in flags)
    ways = [
        f"download once where the hub is reachable ({downloads}), then copy that HF_HOME cache here "
        f"(this machine's: {hf_home}) or point HF_HOME at the copy"
    ]
    if recorded:
        ways.append("this data dir's vectors were made with exactly these weights: no other file can stand in")
    else:
        ways.append(f"or pass the downloaded files: {local}")
        ways.append(f"or try Tubelet without pretrained weights: {random} (finds copies of a clip, not meaning)")
        if "--image-text-weights" in flags:
            ways.append("or skip the image-text tower (no text or image search): --no-image-text")
    steps = "".join(f"\n  - {way}" for way in ways)
    return (
        f"the Hugging Face hub cannot be reached ({reason}) and these weights are not in the local cache:"
        f"{files}\nWays forward (README: 'Offline and air-gapped machines'):{steps}"
    )
