"""Text-search latency in the web UI (a real browser) against the API, on one `run.py serve` process.

Indexes a library once (generated videos or ../shared/videos; tiny random-weight encoders unless
encoder flags are given), starts `run.py serve` on a free loopback port, then for each round:
  UI:  Debian chromium via Playwright loads the page, types the query, clicks Search and waits until
       every result card is rendered with its thumbnail loaded (img.complete, naturalWidth > 0);
  API: gradio_client calls the /search endpoint with the same query and k.
Prints the machine line, per-round times, medians and the UI / API ratio; --waterfall adds one UI round's
network timeline (where the time goes), --cold the first search of a freshly started server (UI, then API,
each on a server of its own: it includes loading the models unless the server loaded them at start).

    .venv/bin/python bench/ui_latency.py [--input generated|shared] [--rounds 7]
        [--waterfall] [--cold] [--encoder vit-s --weights PATH --clip-model ViT-B-32-256 --clip-weights PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import describe_machine

from app.demo import generate_demo_library

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--encoder", "vit-tiny", "--weights", "random", "--clip-model", "tubelet-tiny-clip", "--clip-weights", "random"]
CHROMIUM = Path("/usr/bin/chromium")
UI_K = 12  # the Search tab's "Moments" default: the API is asked for as many
SHARED = ROOT.parent / "shared" / "videos"
CARDS_RENDERED = """n => {
  const imgs = [...document.querySelectorAll('#moments .thumbnail-item img')];
  return imgs.length === n && imgs.every(i => i.complete && i.naturalWidth > 0);
}"""


def library(kind: str) -> Path:
    if kind == "shared":
        if not SHARED.is_dir():
            raise SystemExit(f"no shared footage at {SHARED}")
        return SHARED
    folder = ROOT / "bench" / "out" / "ui-latency-videos"  # made once, kept: the same footage every run
    return generate_demo_library(folder, count=12, seconds=8.0)[0].parent


def index(data: Path, videos: Path, encoder: list[str]) -> None:
    command = [sys.executable, str(ROOT / "run.py"), "index", "--data", str(data), str(videos), *encoder, "--json"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode not in (0, 3):  # 3: some files failed (the shared set has two broken ones on purpose)
        raise SystemExit(f"index failed ({done.returncode}): {done.stderr[-2000:]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(data: Path, timeout: float = 180.0):
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    log_path = data / f"serve-{port}.log"
    with open(log_path, "w") as log:
        command = [sys.executable, str(ROOT / "run.py"), "serve", "--data", str(data), "--port", str(port)]
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"server exited: {log_path.read_text()[-2000:]}")
                try:
                    urllib.request.urlopen(url + "gradio_api/info", timeout=2)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def ui_round(page, url: str, query: str, cards: int) -> float:
    """Seconds from the Search click until `cards` result cards show their thumbnails (a fresh page each round,
    so no card of an earlier round counts)."""
    page.goto(url)
    page.wait_for_selector("#query-text textarea")
    page.fill("#query-text textarea", query)
    start = time.perf_counter()
    page.click("#search-button")
    page.wait_for_function(CARDS_RENDERED, arg=cards, polling="raf", timeout=120_000)
    return time.perf_counter() - start


def waterfall(browser, url: str, query: str, cards: int) -> list[str]:
    """One UI round's network timeline in seconds after the click, on a page of its own: where the time goes
    (the front end before the event is sent, the server's answer on the queue's event stream, the thumbnails)."""
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.goto(url)
    page.wait_for_selector("#query-text textarea")
    page.fill("#query-text textarea", query)
    events: list[tuple[float, str]] = []
    clock = {"start": time.perf_counter()}

    def note(kind: str):
        return lambda r: events.append((time.perf_counter() - clock["start"], f"{kind} {r.method} {r.url[-100:]}"))

    page.on("request", note("sent"))
    page.on("requestfinished", note("done"))
    clock["start"] = time.perf_counter()
    page.click("#search-button")
    page.wait_for_function(CARDS_RENDERED, arg=cards, polling="raf", timeout=120_000)
    events.append((time.perf_counter() - clock["start"], "cards rendered"))
    page.close()
    return [f"  {t:7.3f} s  {what}" for t, what in sorted(events)]


def api_round(client, query: str, k: int) -> tuple[float, int]:
    start = time.perf_counter()
    hits = client.predict(text=query, k=k, api_name="/search")
    return time.perf_counter() - start, len(hits)


def first_searches(data: Path, query: str, cards: int) -> tuple[float, float]:
    """(UI, API) seconds of the first search after a server starts, each on a server of its own: as soon as the
    page (or the client) is ready, as a user who opens the UI and searches would meet it."""
    from gradio_client import Client
    from playwright.sync_api import sync_playwright

    with server(data) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        ui = ui_round(browser.new_page(viewport={"width": 1280, "height": 1400}), url, query, cards)
        browser.close()
    with server(data) as url:
        api, _ = api_round(Client(url, verbose=False, download_files=False), query, UI_K)
    return ui, api


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", choices=["generated", "shared"], default="generated")
    parser.add_argument("--data", type=Path, help="a data dir to reuse, indexed into if empty (default: a temp dir)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--query", default="a yellow disc on blue stripes")
    parser.add_argument("--waterfall", action="store_true", help="print one UI round's network timeline")
    parser.add_argument("--cold", action="store_true", help="also time the first search of a fresh server")
    parser.add_argument("--encoder", help="VideoMAE v2 variant (with the flags below: real encoders)")
    parser.add_argument("--weights")
    parser.add_argument("--clip-model")
    parser.add_argument("--clip-weights")
    args = parser.parse_args()
    encoder = TINY
    if args.encoder:
        pairs = [("--encoder", args.encoder), ("--weights", args.weights)]
        pairs += [("--clip-model", args.clip_model), ("--clip-weights", args.clip_weights)]
        encoder = [part for flag, value in pairs if value for part in (flag, value)]
    print(describe_machine(), flush=True)
    from gradio_client import Client
    from playwright.sync_api import sync_playwright

    scratch = Path(tempfile.mkdtemp(prefix="tubelet-ui-latency-"))
    try:
        data = args.data or scratch / "data"
        if not (data / "catalog.db").is_file():
            started = time.perf_counter()
            index(data, library(args.input), encoder)
            print(f"indexed {args.input} footage in {time.perf_counter() - started:.1f} s", flush=True)
        with server(data) as url, sync_playwright() as p:
            client = Client(url, verbose=False, download_files=False)
            _, cards = api_round(client, args.query, UI_K)  # warm-up: the first query loads the text tower
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            ui_round(page, url, args.query, cards)  # warm-up: browser caches, Gradio's front end
            ui, api = [], []
            for r in range(args.rounds):
                ui.append(ui_round(page, url, args.query, cards))
                api.append(api_round(client, args.query, UI_K)[0])
                print(f"round {r + 1}: UI {ui[-1]:.3f} s, API {api[-1]:.3f} s ({cards} moments)", flush=True)
            if args.waterfall:
                print("one UI round, network timeline after the click:")
                print("\n".join(waterfall(browser, url, args.query, cards)))
            browser.close()
        if args.cold:
            cold_ui, cold_api = first_searches(data, args.query, cards)
            print(f"first search of a fresh server: UI {cold_ui:.3f} s, API {cold_api:.3f} s")
        ui_median, api_median = statistics.median(ui), statistics.median(api)
        print(f"text search, {cards} moments, {args.rounds} rounds, medians:")
        print(f"  UI (browser, click to thumbnails shown) {ui_median:.3f} s")
        print(f"  API (gradio_client /search)             {api_median:.3f} s")
        print(f"  UI / API                                 {ui_median / api_median:.2f}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
