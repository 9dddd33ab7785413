"""A camera writing one file after another into a watched folder: seconds from each file's last
write until a SearchService over the data dir searches its clips.

Each file (a generated 640x360 H.264 video) is written in 20 chunks 0.5 s apart, as a camera or a
copy over the network would; the watch runs with its defaults (settle 5 s, file-system events).
Tiny random-weight towers by default (`--encoder vit-s --weights ...` for real ones).

    .venv/bin/python bench/watch_latency.py [--files 2] [--seconds 30] [--encoder vit-tiny]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import describe_machine

from app.demo import synthesize_video
from app.query import QueryError
from app.search import SearchService
from indexer.records import VIDEO_SET
from indexer.settings import DataDir, EncoderSettings, ImageTextSettings, IndexSettings
from indexer.watch import Watch, WatchSettings, create_catalog


def write_like_a_camera(source: Path, target: Path, chunks: int = 20, pause: float = 0.5) -> None:
    content = source.read_bytes()
    step = len(content) // chunks + 1
    with open(target, "wb") as out:
        for start in range(0, len(content), step):
            out.write(content[start : start + step])
            out.flush()
            time.sleep(pause)


def searchable(service: SearchService, path: Path) -> bool:
    service.refresh()
    row = service.catalog.known_paths().get(str(path))
    if row is None or row.status != "indexed":
        return False
    clip_ids = {c.clip_id for c in service.catalog.timeline(row.video_id)}
    return bool(clip_ids) and clip_ids <= set(service.indexes[VIDEO_SET].ids.tolist())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--encoder", default="vit-tiny")
    parser.add_argument("--weights", default="random")
    parser.add_argument("--image-text-model", default="tubelet-tiny-clip")
    parser.add_argument("--image-text-weights", default="random")
    args = parser.parse_args()
    print(describe_machine())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        lib, data, source = root / "lib", DataDir(root / "data"), root / "source"
        lib.mkdir()
        source.mkdir()
        settings = IndexSettings(
            data,
            EncoderSettings(args.encoder, args.weights, "cpu", "fp32"),
            ImageTextSettings(True, args.image_text_model, args.image_text_weights),
        )
        create_catalog(data)  # before two threads could both create it (see create_catalog)
        stop = threading.Event()
        watch = threading.Thread(target=Watch(WatchSettings((lib,)), lambda: settings).run, args=(stop,))
        watch.start()
        first = synthesize_video(source / "first.mp4", 0, seconds=2, width=160, height=120)
        shutil.copy(first, lib / "first.mp4")  # so the data dir has an index to load
        service = None
        while service is None:
            try:
                service = SearchService(data, "cpu", "fp32").load()
            except QueryError:  # the first file is not indexed yet
                time.sleep(0.5)
        for i in range(args.files):
            clip = synthesize_video(source / f"{i}.mp4", i + 1, seconds=args.seconds, width=640, height=360)
            target = lib / f"cam-{i:04d}.mp4"
            write_like_a_camera(clip, target)
            last_write = time.monotonic()
            while not searchable(service, target):
                time.sleep(0.1)
            print(
                f"{target.name} ({args.seconds:g} s, 640x360): searchable {time.monotonic() - last_write:.1f} s "
                "after its last write"
            )
        stop.set()
        watch.join()


if __name__ == "__main__":
    main()
