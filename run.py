#!/usr/bin/env python3
"""Tubelet command line: index a video library, search it, inspect it.

    python run.py index ~/footage            # embed new and changed videos
    python run.py search --text "a dog"      # moments matching words
    python run.py search --video clip.mp4    # moments like this clip
    python run.py search --like 42           # more like indexed clip 42
    python run.py status                     # what is indexed, what failed
    python run.py serve                      # web UI and API on http://127.0.0.1:7860
    python run.py demo                       # index a generated library and search it

Exit codes: 0 success; 3 `index` finished but some files failed; 2 bad input or a refused
operation (message on stderr); 1 unexpected error; 141 the reader of stdout left early
(`run.py status | head`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_UNEXPECTED, EXIT_USER_ERROR, EXIT_SOME_FAILED = 0, 1, 2, 3
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from app.errors import USER_ERRORS  # heavy imports after argument parsing keeps --help fast
    from app.logs import LogLevelError, configure_logging, level_for

    try:
        configure_logging(level_for(args.verbose))
        return args.handler(args)
    except LogLevelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted: finished videos are saved; run the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `run.py status | head`: the reader has all it wanted
        _silence_stdout()
        return EXIT_BROKEN_PIPE


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so flushing it at exit raises no second BrokenPipeError."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (tests capture it)
    os.dup2(os.open(os.devnull, os.O_WRONLY), fd)


def build_parser() -> argparse.ArgumentParser:
    from app.moments import MAX_MOMENT_SECONDS  # a constant in a module of pure functions: no heavy import
    from app.query import DEFAULT_MIN_SCORE  # light (standard library only): the UI's default too

    parser = argparse.ArgumentParser(prog="run.py", description="Tubelet: search a video library for moments.")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    index = _command(sub, "index", cmd_index, "embed new and changed videos under PATHs")
    index.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    _encoder_options(index)
    index.add_argument("--retry-failed", action="store_true", help="try files that failed before again")
    index.add_argument(
        "--rebuild",
        action="store_true",
        help="discard every clip and vector and embed all videos again (e.g. new encoder)",
    )
    index.add_argument(
        "--keep-active",
        action="store_true",
        help="with another encoder: build its vector set but keep searching the active one until `run.py activate`",
    )
    index.add_argument(
        "--one-file-system", action="store_true", help="do not descend into other filesystems (mounts) under a PATH"
    )
    index.add_argument("--json", action="store_true", help="print one JSON report")
    index.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="decode and embed on Ray: a local Ray instance, or the cluster at ADDRESS (auto | HOST:PORT)",
    )
    index.add_argument("--ray-workers", type=positive_int, help="encoder actors on Ray (default: one per GPU, else 1)")

    watch = _command(sub, "watch", cmd_watch, "keep indexing new and changed videos under PATHs as they arrive")
    watch.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    _encoder_options(watch)
    _watch_options(watch)

    search = _command(sub, "search", cmd_search, "find moments by text, image, clip or clip id")
    search.add_argument("--text", help="describe what to find")
    search.add_argument("--image", type=Path, help="an example image")
    search.add_argument("--video", type=Path, help="an example video clip")
    search.add_argument("--start", type=float, help="query video start, seconds")
    search.add_argument("--end", type=float, help="query video end, seconds")
    search.add_argument("--like", type=int, metavar="CLIP_ID", help="more like this indexed clip")
    search.add_argument("--negative", metavar="TEXT", help="push away from this description")
    search.add_argument("-k", type=int, default=10, help="number of moments (default 10)")
    search.add_argument(
        "--min-score", type=float, default=DEFAULT_MIN_SCORE, help="calibrated score below which nothing matches"
    )
    search.add_argument(
        "--max-moment",
        type=float,
        metavar="S",
        help=f"longest moment, seconds: windows merge up to this (default {MAX_MOMENT_SECONDS:g})",
    )
    search.add_argument(
        "--group",
        choices=["clip", "video"],
        default="clip",
        help="flat list of moments (clip) or moments per video (video)",
    )
    search.add_argument(
        "--weight",
        action="append",
        default=[],
        metavar="PART=W",
        help="weight of a query part: video, appearance, text, image, negative",
    )
    search.add_argument("--path-prefix", metavar="FOLDER", help="only videos under this folder (whole path components)")
    search.add_argument("--path-glob", help="only videos whose path matches this pattern")
    search.add_argument("--min-duration", type=float, help="only videos at least this long (s)")
    search.add_argument("--max-duration", type=float, help="only videos at most this long (s)")
    search.add_argument("--indexed-after", help="only videos indexed at or after (ISO date/time)")
    recorded = (
        "only clips recorded (video's recording start + clip start) %s this ISO date or date-time, local "
        "time unless it has an offset; excludes videos whose recording time is unknown"
    )
    search.add_argument("--recorded-after", metavar="WHEN", help=recorded % "at or after")
    search.add_argument("--recorded-before", metavar="WHEN", help=recorded % "before")
    search.add_argument(
        "--sort",
        choices=["score", "time"],
        default="score",
        help="order of the moments kept (best k by score): by score (default) or by recording time, unknown last",
    )
    _runtime_options(search)
    search.add_argument("--json", action="store_true", help="print moments as JSON, best first")

    status = _command(sub, "status", cmd_status, "what is indexed, what failed")
    status.add_argument(
        "--check", action="store_true", help="verify catalog, index files and footage agree (exit 3 if not)"
    )
    status.add_argument(
        "--repair", action="store_true", help="rebuild index files and thumbnails from the catalog, then check"
    )
    status.add_argument("--json", action="store_true")

    activate = _command(
        sub, "activate", cmd_activate, "search the vector sets built for another encoder from now on (--keep-active)"
    )
    activate.add_argument("--drop-old", action="store_true", help="then delete the replaced sets' vectors")
    activate.add_argument("--json", action="store_true")

    drop = _command(sub, "drop-set", cmd_drop_set, "delete replaced (old) vector sets, or the new one being built")
    drop.add_argument("which", choices=["old", "new"], help="old: sets replaced by a switch; new: the unfinished one")
    drop.add_argument("--json", action="store_true")

    export = _command(sub, "export", cmd_export, "write a moment of an indexed video as its own MP4 file")
    export.add_argument(
        "clip_ids", nargs="+", type=int, metavar="CLIP_ID", help="a clip, or the clip_ids of one moment (search --json)"
    )
    export.add_argument("--out", type=Path, help="the MP4 to write (default: ./NAME_START-END.mp4)")
    export.add_argument("--context", type=float, default=0.0, help="seconds added before and after (default 0)")
    export.add_argument("--force", action="store_true", help="replace the output file if it exists")
    export.add_argument("--json", action="store_true", help="print what was written as JSON")

    serve = _command(sub, "serve", cmd_serve, "web UI and API on a local port")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=port_number, default=7860)
    serve.add_argument(
        "--auth",
        default=os.environ.get("TUBELET_AUTH"),
        help="USER:PASSWORD required to use the UI and API (env TUBELET_AUTH)",
    )
    serve.add_argument(
        "--root", type=Path, action="append", default=[], help="a folder the UI may index (repeatable); off when none"
    )
    serve.add_argument("--max-upload-mb", type=positive_int, default=500, help="largest upload accepted")
    serve.add_argument(
        "--watch",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="keep indexing new footage under these folders (default: the --root folders)",
    )
    _watch_options(serve)
    _runtime_options(serve)

    demo = _command(sub, "demo", cmd_demo, "index a folder (default: a generated library) and search it")
    demo.add_argument("folder", nargs="?", type=Path, help="videos to index (default: generate 6)")
    _encoder_options(demo)
    _pretrain_parsers(sub)
    return parser


def _pretrain_parsers(sub) -> None:
    pretrain = _command(
        sub, "pretrain", cmd_pretrain, "adapt the video encoder to your footage (VideoMAE v2 pretraining)"
    )
    pretrain.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="folders or videos to learn from (default: the indexed ones)",
    )
    pretrain.add_argument("--encoder", help="VideoMAE v2 variant to start from; default: the data dir's, else vit-s")
    pretrain.add_argument(
        "--weights", help="weights to start from (as for index; a pretraining checkpoint keeps its decoder)"
    )
    pretrain.add_argument("--window-frames", type=positive_int, help="frames per clip (default: the weights')")
    pretrain.add_argument("--frame-interval", type=positive_int, help="take every Nth frame (default: the weights')")
    budget = pretrain.add_mutually_exclusive_group(required=True)
    budget.add_argument("--steps", type=positive_int, help="optimizer steps to train")
    budget.add_argument("--minutes", type=positive_number, help="minutes to train (steps fitted to the time)")
    pretrain.add_argument("--batch-size", type=positive_int, default=4, help="clips per forward pass (default 4)")
    pretrain.add_argument("--accum", type=positive_int, default=1, help="forward passes per optimizer step")
    pretrain.add_argument(
        "--lr",
        type=positive_seconds,
        default=1e-3,
        help="base learning rate per 256 clips (default 1e-3), scaled by batch",
    )
    pretrain.add_argument("--mask", choices=["tube", "random"], default="tube", help="encoder masking (default tube)")
    pretrain.add_argument("--mask-ratio", type=float, default=0.9, help="share of tokens hidden (default 0.9)")
    pretrain.add_argument(
        "--decoder-mask-ratio", type=float, default=0.5, help="running-cell decoder masking; 0 = decode all hidden"
    )
    pretrain.add_argument(
        "--objective",
        choices=["mae", "mae+nce", "nce"],
        default="nce",
        help="nce (default): a clip-level contrastive term; mae: masked reconstruction (the official objective, "
        "and the one that trains the decoder `reconstruct` shows); mae+nce: both (bench/RESULTS.md)",
    )
    pretrain.add_argument(
        "--tubelet-difference",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep the tubelet embedding seeing only what changes between a tubelet's frames, so that what "
        "stands still cannot tell clips apart (default on; bench/RESULTS.md)",
    )
    pretrain.add_argument(
        "--nce-weight", type=number_at_least_zero, default=1.0, help="weight of the contrastive term (default 1)"
    )
    pretrain.add_argument("--seed", type=int, default=0, help="seeds data order, masks and a fresh decoder")
    pretrain.add_argument(
        "--clip-grad", type=number_at_least_zero, default=1.0, help="max gradient norm, 0 = off (default 1)"
    )
    pretrain.add_argument(
        "--checkpoint-minutes",
        type=number_at_least_zero,
        default=5.0,
        help="checkpoint this often (default 5; 0 = every step)",
    )
    pretrain.add_argument("--restart", action="store_true", help="discard an unfinished run and start over")
    pretrain.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    pretrain.add_argument(
        "--precision", default="auto", choices=["auto", "fp32", "bf16"], help="auto: bf16 where native, else fp32"
    )
    pretrain.add_argument("--json", action="store_true", help="print one JSON document at the end")

    reconstruct = _command(
        sub, "reconstruct", cmd_reconstruct, "picture what the pretrained model fills in for an indexed clip"
    )
    reconstruct.add_argument("clip_id", type=int, metavar="CLIP_ID")
    reconstruct.add_argument("--out", type=Path, required=True, help="the PNG to write")
    reconstruct.add_argument("--mask", choices=["tube", "random"], default="tube")
    reconstruct.add_argument("--mask-ratio", type=float, default=0.9)
    reconstruct.add_argument("--seed", type=int, default=0, help="seeds the mask")
    reconstruct.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")


def _command(sub, name: str, handler, help_text: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler)
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("TUBELET_DATA", "tubelet-data")),
        help="data dir (default ./tubelet-data, env TUBELET_DATA)",
    )
    parser.add_argument(
        "--catalog-url",
        default=os.environ.get("TUBELET_CATALOG_URL"),
        help="SQLAlchemy URL of the catalog (default: SQLite file in the data dir)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log what Tubelet does (-vv: debug); env TUBELET_LOG=debug|info|warning|error",
    )
    return parser


def _encoder_options(parser: argparse.ArgumentParser) -> None:
    # No `choices` from encoder.videomae2.VARIANTS: that would import torch for every command.
    # An unknown name is refused before any work, with the valid ones listed.
    # Encoder options default to None ("not given"): `index` then uses the encoders the data dir records
    # (indexer/encoder_choice.py), and the defaults below only for a new data dir.
    parser.add_argument(
        "--encoder", help="VideoMAE v2 variant, e.g. vit-s or vit-b; default: the data dir's, else vit-s"
    )
    parser.add_argument(
        "--weights",
        help="pretrained tag, hf:OWNER/REPO/FILE, a local checkpoint, 'default' (the variant's own) "
        "or 'random' (tests and trials only); default: the data dir's, else the variant's own",
    )
    parser.add_argument("--window-frames", type=positive_int, help="frames per clip (default: the weights')")
    parser.add_argument("--frame-interval", type=positive_int, help="take every Nth frame (default: the weights')")
    parser.add_argument(
        "--stride-frames", type=positive_int, help="source frames between clip starts (default: back to back)"
    )
    parser.add_argument(
        "--every-window",
        action="store_true",
        help="embed every clip window; by default a window no different from the last embedded one is skipped",
    )
    parser.add_argument(
        "--change-threshold",
        type=grey_levels,
        help="grey levels a window must differ by to be embedded (default: the data dir's, else 10)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=4, help="clips per encoder call")
    # The image-text tower (open_clip). The --clip-* spellings are the options' former names, kept working.
    parser.add_argument(
        "--no-image-text",
        "--no-clip",
        dest="no_image_text",
        action="store_true",
        help="skip image-text vectors (open_clip): no text or image search",
    )
    parser.add_argument(
        "--image-text-model",
        "--clip-model",
        dest="image_text_model",
        metavar="MODEL",
        help="open_clip architecture; default: the data dir's, else ViT-B-32-256",
    )
    parser.add_argument(
        "--image-text-weights",
        "--clip-weights",
        dest="image_text_weights",
        metavar="SRC",
        help="open_clip pretrained tag, hf:..., a local file, 'default' or 'random'; default: the data dir's",
    )
    parser.add_argument(
        "--image-text-frames",
        "--clip-frames",
        dest="image_text_frames",
        metavar="K",
        type=positive_int,
        help="frames of each clip averaged into its image-text vector; default: the data dir's, else 4",
    )
    _runtime_options(parser)


def _watch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--settle", type=seconds, default=5.0, metavar="S", help="index a file once unchanged this long (default 5)"
    )
    parser.add_argument(
        "--poll",
        type=positive_seconds,
        metavar="S",
        help="look for changes every S seconds instead of file-system events (network shares)",
    )
    parser.add_argument(
        "--rescan",
        type=positive_seconds,
        default=600.0,
        metavar="S",
        help="compare the folders with the index this often, in case an event was missed (default 600)",
    )


def seconds(text: str) -> float:
    """argparse type: a duration, 0 or more seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {text}")
    return value


def positive_seconds(text: str) -> float:
    value = seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def number_at_least_zero(text: str) -> float:
    """argparse type: a finite number, 0 or more (a learning rate, a norm, minutes)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def positive_number(text: str) -> float:
    value = number_at_least_zero(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def positive_int(text: str) -> int:
    """argparse type: 1 or more (a zero or negative frame count, batch or size has no meaning)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def grey_levels(text: str) -> float:
    """argparse type: a change threshold, 0 to 255 grey levels."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of grey levels, got {text!r}") from None
    if not 0 <= value <= 255:
        raise argparse.ArgumentTypeError(f"must be 0 to 255 grey levels, got {text}")
    return value


def port_number(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port, 1 to 65535, got {value}")
    return value


def _runtime_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument(
        "--runtime",
        default="auto",
        choices=["auto", "torch", "openvino"],
        help="what runs the encoders: auto = OpenVINO on a CPU where installed, PyTorch on CUDA",
    )


# -- settings, built once here and passed down ------------------------------------------------


def data_dir(args):
    from indexer.settings import DataDir

    return DataDir(root=args.data.absolute(), catalog_url=args.catalog_url)


def index_settings(args):
    """The run's settings: encoder flags given, else the encoders the data dir records."""
    from indexer.encoder_choice import EncoderFlags, choose_encoders, recorded_settings
    from indexer.settings import EncoderSettings, IndexSettings

    data = data_dir(args)
    base = IndexSettings(
        data=data,
        encoder=EncoderSettings(device=args.device, precision=args.precision, runtime=args.runtime),
        batch_size=args.batch_size,
        retry_failed=getattr(args, "retry_failed", False),
        rebuild=getattr(args, "rebuild", False),
        keep_active=getattr(args, "keep_active", False),
        one_file_system=getattr(args, "one_file_system", False),
    )
    flags = EncoderFlags(
        args.encoder,
        args.weights,
        args.window_frames,
        args.frame_interval,
        args.stride_frames,
        args.no_image_text,
        args.image_text_model,
        args.image_text_weights,
        args.image_text_frames,
        args.change_threshold,
        args.every_window,
    )
    return choose_encoders(base, flags, recorded_settings(data, args.device, args.precision, args.runtime))


# -- commands -----------------------------------------------------------------------------------


def cmd_index(args) -> int:
    from app.cli_output import print_index_report
    from indexer.scan import check_roots

    check_roots(args.paths)  # before any work: `index /proc` is refused at once
    settings = index_settings(args)
    report = run_index(settings, args.paths, embedding_engine(args, settings))
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print_index_report(report)
    return EXIT_SOME_FAILED if report.failures else EXIT_OK


def cmd_watch(args) -> int:
    """Runs until Ctrl+C (or SIGTERM): the first one stops after the video being indexed, a second abandons it."""
    import signal
    import threading

    from app.cli_output import print_watch_busy, print_watch_report
    from indexer.towers import resolve_towers
    from indexer.watch import Watch, watch_roots

    roots = watch_roots(args.paths)
    settings = index_settings(args)
    resolve_towers(settings)  # bad weights are refused now, not when the first file arrives
    stop = threading.Event()

    def on_signal(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        print("stopping after the current video (Ctrl+C again to abandon it)", file=sys.stderr, flush=True)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    engine = f"polling every {args.poll:g} s" if args.poll is not None else "file-system events"
    print(f"watching {', '.join(map(str, roots))} ({engine}; a file is indexed once unchanged for {args.settle:g} s)")
    print("Ctrl+C to stop", flush=True)
    Watch(watch_settings(args, roots), lambda: settings, print_watch_report, print_watch_busy).run(stop)
    print("stopped watching; every indexed video is saved", flush=True)
    return EXIT_OK


def watch_settings(args, roots):
    from indexer.watch import WatchSettings

    return WatchSettings(roots, args.settle, args.poll, args.rescan)


def run_index(settings, paths: list[Path], engine=None):
    from app.cli_output import progress_bar
    from indexer.pipeline import run_index as run

    return run(settings, paths, progress_bar, engine=engine)


def embedding_engine(args, settings):
    """The Ray engine when --ray is given, else None (the run's local engine)."""
    if args.ray is None:
        return None
    from indexer.ray_engine import RayEngine

    return RayEngine(settings.batch_size, args.ray or None, args.ray_workers)


def cmd_search(args) -> int:
    from app.cli_output import print_no_match, print_result
    from app.search import SearchService

    request = search_request(args)
    service = SearchService(data_dir(args), args.device, args.precision, runtime=args.runtime).load()
    result = service.search(request)
    options = request.options
    if args.json:
        items = result.videos if options.group == "video" else result.moments
        print(json.dumps([item.to_json() for item in items], indent=2))
        if result.no_match:
            print_no_match(result, options, file=sys.stderr)
    else:
        print_result(result, options)
    return EXIT_OK


def search_request(args):
    from app.query import QueryError, build_request

    weights = {}
    for item in args.weight:
        name, _, value = item.partition("=")
        try:
            weights[name] = float(value)
        except ValueError:
            raise QueryError(f"--weight takes PART=NUMBER, got {item!r}") from None
    return build_request(
        text=args.text,
        negative=args.negative,
        image=args.image,
        video=args.video,
        start=args.start,
        end=args.end,
        like=args.like,
        k=args.k,
        min_score=args.min_score,
        group=args.group,
        weights=weights,
        path_prefix=args.path_prefix,
        path_glob=args.path_glob,
        min_duration=args.min_duration,
        max_duration=args.max_duration,
        indexed_after=args.indexed_after,
        max_moment=args.max_moment,
        recorded_after=args.recorded_after,
        recorded_before=args.recorded_before,
        sort=args.sort,
    )


def cmd_status(args) -> int:
    from app.cli_output import print_check, print_status
    from app.status import library_status

    if args.check or args.repair:
        from indexer.check import check_library, repair_library

        repaired = repair_library(data_dir(args)).repaired if args.repair else []
        report = check_library(data_dir(args))
        report.repaired = repaired
        print(json.dumps(report.to_json(), indent=2)) if args.json else print_check(report)
        return EXIT_OK if report.ok else EXIT_SOME_FAILED
    status = library_status(data_dir(args))
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print_status(status)
    return EXIT_OK


def cmd_activate(args) -> int:
    from app.cli_output import print_switch
    from indexer.switch import activate

    report = activate(data_dir(args), drop_old=args.drop_old)
    print(json.dumps(report.to_json(), indent=2)) if args.json else print_switch(report)
    return EXIT_OK


def cmd_drop_set(args) -> int:
    from app.cli_output import print_switch
    from indexer.switch import drop_sets

    report = drop_sets(data_dir(args), args.which)
    print(json.dumps(report.to_json(), indent=2)) if args.json else print_switch(report)
    return EXIT_OK


def cmd_export(args) -> int:
    from app.export import ExportError, default_name, export, export_span
    from indexer.catalog import Catalog

    data = data_dir(args)
    if data.catalog_url is None and not (data.root / "catalog.db").exists():
        print(f"error: nothing is indexed in {data.root}", file=sys.stderr)
        return EXIT_USER_ERROR
    catalog = Catalog(data.catalog).open()
    try:
        span = export_span(catalog, data, args.clip_ids, args.context)
        done = export(span, args.out or Path(default_name(span)), force=args.force)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    finally:
        catalog.close()
    if args.json:
        print(json.dumps(done.to_json(), indent=2))
    else:
        how = "stream copy" if done.method == "copy" else "re-encoded to H.264"
        what = f"{done.start:.2f}-{done.end:.2f} s of {span.source.name}, {done.frames} frames, {how}"
        print(f"wrote {done.path} ({what})")
    return EXIT_OK


def cmd_serve(args) -> int:
    from app.server import ServeSettings, parse_auth, serve

    try:
        auth = parse_auth(args.auth)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    watch = None
    if args.watch is not None:
        from indexer.scan import RootError
        from indexer.watch import watch_roots

        if not (args.watch or args.root):
            raise RootError("serve --watch needs folders: --watch PATH ..., or --root DIR to watch the roots")
        watch = watch_settings(args, watch_roots(args.watch or args.root))
    serve(
        ServeSettings(
            data_dir(args),
            host=args.host,
            port=args.port,
            auth=auth,
            roots=tuple(r.absolute() for r in args.root),
            max_upload_mb=args.max_upload_mb,
            device=args.device,
            precision=args.precision,
            watch=watch,
            runtime=args.runtime,
        )
    )
    return EXIT_OK


def cmd_demo(args) -> int:
    from app.cli_output import print_index_report, print_result
    from app.demo import cut_segment, generate_demo_library
    from app.query import Query, SearchOptions
    from app.search import SearchService

    settings = index_settings(args)
    folder = args.folder or settings.data.root / "demo-library"
    if args.folder is None:
        print(f"Generating a demo library in {folder} ...")
        generate_demo_library(folder)
    report = run_index(settings, [folder])
    print_index_report(report)
    service = SearchService(settings.data, args.device, args.precision, runtime=args.runtime).load()
    source = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".mp4", ".mkv", ".mov", ".webm"))
    if not source:
        print("No .mp4/.mkv/.mov/.webm file in the folder to cut a query from.")
        return EXIT_OK
    query = cut_segment(source[len(source) // 2], settings.data.root / "demo-query.mp4", 2.5, 5.0)
    print(f"\nQuery: 2.5-5.0 s of {source[len(source) // 2]}, re-encoded as {query}")
    options = SearchOptions(k=5)
    print_result(service.search(Query(video=query), options=options), options)
    print(
        f'\nNext: python run.py search --data {settings.data.root} --text "a blue disc"  |  '
        f"--like CLIP_ID  |  python run.py status --data {settings.data.root}"
    )
    return EXIT_SOME_FAILED if report.failures else EXIT_OK


def pretrain_settings(args):
    from indexer.encoder_choice import EncoderFlags, choose_encoders, recorded_settings
    from indexer.pretrain import PretrainSettings
    from indexer.settings import EncoderSettings, IndexSettings

    data = data_dir(args)
    base = IndexSettings(data, EncoderSettings(device=args.device, precision=args.precision, runtime="torch"))
    flags = EncoderFlags(args.encoder, args.weights, args.window_frames, args.frame_interval)
    chosen = choose_encoders(base, flags, recorded_settings(data, args.device, args.precision, "torch"))
    return PretrainSettings(
        data,
        chosen.encoder,
        chosen.window_frames,
        chosen.frame_interval,
        paths=tuple(args.paths),
        steps=args.steps,
        minutes=args.minutes,
        batch_size=args.batch_size,
        accum=args.accum,
        lr=args.lr,
        mask=args.mask,
        mask_ratio=args.mask_ratio,
        decoder_mask_ratio=args.decoder_mask_ratio,
        objective=args.objective,
        nce_weight=args.nce_weight,
        tubelet_difference=args.tubelet_difference,
        seed=args.seed,
        clip_grad=args.clip_grad or None,
        checkpoint_minutes=args.checkpoint_minutes,
        restart=args.restart,
    )


def cmd_pretrain(args) -> int:
    """Ctrl+C (or SIGTERM) once: checkpoint after the current step and stop; twice: stop at once."""
    import signal
    import threading

    from app.pretrain_cli import PretrainProgress, print_pretrain_report
    from indexer.pretrain import run_pretrain

    stop = threading.Event()

    def on_signal(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        print("\nstopping after this step (Ctrl+C again to stop at once)", file=sys.stderr, flush=True)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    progress = PretrainProgress()

    def say(message: str) -> None:
        progress.close()
        print(message, file=sys.stderr, flush=True)

    try:
        report = run_pretrain(pretrain_settings(args), say, progress, stop)
    finally:
        progress.close()
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print_pretrain_report(report)
    if report.stopped:
        print(f"stopped at step {report.steps}: run the same command to continue", file=sys.stderr)
        return 130
    return EXIT_OK


def cmd_reconstruct(args) -> int:
    from app.reconstruct import reconstruct_clip

    done = reconstruct_clip(data_dir(args), args.clip_id, args.out, args.mask, args.mask_ratio, args.seed, args.device)
    print(f"wrote {done} (rows: original, masked input, reconstruction)")
    return EXIT_OK


if __name__ == "__main__":
    from indexer.memory import tune_malloc

    tune_malloc()  # before any thread starts: see indexer/memory.py
    sys.exit(main())
