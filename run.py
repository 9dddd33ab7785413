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
        "--one-file-system", action="store_true", help="do not descend into other filesystems (mounts) under a PATH"
    )
    index.add_argument("--json", action="store_true", help="print one JSON report")

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
    _runtime_options(serve)

    demo = _command(sub, "demo", cmd_demo, "index a folder (default: a generated library) and search it")
    demo.add_argument("folder", nargs="?", type=Path, help="videos to index (default: generate 6)")
    _encoder_options(demo)
    return parser


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
    parser.add_argument("--encoder", default="vit-s", help="VideoMAE v2 variant, e.g. vit-s (default) or vit-b")
    parser.add_argument(
        "--weights",
        help="pretrained tag, hf:OWNER/REPO/FILE, a local checkpoint, "
        "or 'random' (tests only); default: the variant's own",
    )
    parser.add_argument("--window-frames", type=positive_int, help="frames per clip (default: the weights')")
    parser.add_argument("--frame-interval", type=positive_int, help="take every Nth frame (default: the weights')")
    parser.add_argument(
        "--stride-frames", type=positive_int, help="source frames between clip starts (default: back to back)"
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
        default="ViT-B-32-256",
        help="open_clip architecture",
    )
    parser.add_argument(
        "--image-text-weights",
        "--clip-weights",
        dest="image_text_weights",
        metavar="SRC",
        help="open_clip pretrained tag, hf:..., a local file or 'random'",
    )
    parser.add_argument(
        "--image-text-frames",
        "--clip-frames",
        dest="image_text_frames",
        metavar="K",
        type=positive_int,
        default=4,
        help="frames of each clip averaged into its image-text vector",
    )
    _runtime_options(parser)


def positive_int(text: str) -> int:
    """argparse type: 1 or more (a zero or negative frame count, batch or size has no meaning)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def port_number(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port, 1 to 65535, got {value}")
    return value


def _runtime_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])


# -- settings, built once here and passed down ------------------------------------------------


def data_dir(args):
    from indexer.settings import DataDir

    return DataDir(root=args.data.absolute(), catalog_url=args.catalog_url)


def index_settings(args):
    from indexer.settings import EncoderSettings, ImageTextSettings, IndexSettings

    return IndexSettings(
        data=data_dir(args),
        encoder=EncoderSettings(args.encoder, args.weights, args.device, args.precision),
        image_text=ImageTextSettings(
            not args.no_image_text, args.image_text_model, args.image_text_weights, args.image_text_frames
        ),
        window_frames=args.window_frames,
        frame_interval=args.frame_interval,
        stride_frames=args.stride_frames,
        batch_size=args.batch_size,
        retry_failed=getattr(args, "retry_failed", False),
        rebuild=getattr(args, "rebuild", False),
        one_file_system=getattr(args, "one_file_system", False),
    )


# -- commands -----------------------------------------------------------------------------------


def cmd_index(args) -> int:
    from app.cli_output import print_index_report
    from indexer.scan import check_roots

    check_roots(args.paths)  # before any work: `index /proc` is refused at once
    report = run_index(index_settings(args), args.paths)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print_index_report(report)
    return EXIT_SOME_FAILED if report.failures else EXIT_OK


def run_index(settings, paths: list[Path]):
    from app.cli_output import progress_bar
    from indexer.pipeline import run_index as run

    return run(settings, paths, progress_bar)


def cmd_search(args) -> int:
    from app.cli_output import print_no_match, print_result
    from app.search import SearchService

    request = search_request(args)
    service = SearchService(data_dir(args), args.device, args.precision).load()
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


def cmd_serve(args) -> int:
    from app.server import ServeSettings, parse_auth, serve

    try:
        auth = parse_auth(args.auth)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    serve(
        ServeSettings(
            data_dir(args),
            args.host,
            args.port,
            auth,
            tuple(r.absolute() for r in args.root),
            args.max_upload_mb,
            args.device,
            args.precision,
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
    service = SearchService(settings.data, args.device, args.precision).load()
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


if __name__ == "__main__":
    from indexer.memory import tune_malloc

    tune_malloc()  # before any thread starts: see indexer/memory.py
    sys.exit(main())
