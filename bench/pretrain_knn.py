"""What pretraining buys for retrieval: leave-one-out k-NN accuracy on the generated motion library.

    .venv/bin/python bench/pretrain_knn.py --baseline                          # random init, tiny + small
    .venv/bin/python bench/pretrain_knn.py --encoder vit-tiny --pretrain "--minutes 6"
    .venv/bin/python bench/pretrain_knn.py --encoder vit-tiny --weights PATH   # any encoder file
    .venv/bin/python bench/pretrain_knn.py --masking --pretrain "--minutes 4"  # tube/random x 0.75/0.9

Every number goes through the product's own path: the library (`bench/motion_library.py`) is indexed with
`run.py index` (in this process, every window, no image-text tower) into a fresh data dir, and the clip
vectors are read back from that data dir's catalog. `--pretrain ARGS` first runs `run.py pretrain LIBRARY
ARGS --json` (a fresh data dir, random init of `--encoder` unless ARGS name weights) and then indexes with
the `encoder_weights` it printed.

- k-NN: each clip's class is the majority of its k = 5 nearest clips by cosine (ties: the larger summed
  similarity), never counting clips of its own video; accuracy over all clips, chance 1/8.
- forward vs reversed: the same vote, restricted to the three families played both ways (right/left,
  rotate cw/ccw, put on/take off): each clip's neighbours are taken among the clips of its own family
  (other videos only) and vote on "reversed or not"; chance 1/2.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from machine import describe_machine  # noqa: E402
from motion_library import make_library  # noqa: E402

import run  # noqa: E402

OUT = ROOT / "bench" / "out"


@dataclass(frozen=True)
class Scores:
    knn: float  # 8-class leave-one-video-out k-NN accuracy
    reversal: float  # forward vs reversed accuracy within the paired families
    clips: int

    def line(self) -> str:
        return f"k-NN {self.knn:.3f}  fwd/rev {self.reversal:.3f}  ({self.clips} clips)"


def call(*args, ok: tuple[int, ...] = (0,)) -> str:
    """`run.py ARGS` in this process; its stdout, or an error with its stderr (exit codes in `ok` pass)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run.main([str(a) for a in args])
    if code not in ok:
        raise RuntimeError(f"run.py {' '.join(map(str, args))} exited {code}:\n{err.getvalue()[-3000:]}")
    return out.getvalue()


def clip_vectors(data: Path) -> tuple[np.ndarray, list[str]]:
    """Stored video-tower vectors of a data dir and each clip's file name, in clip id order."""
    from indexer.catalog import Catalog
    from indexer.records import VIDEO_SET

    catalog = Catalog(f"sqlite:///{data / 'catalog.db'}").open()
    try:
        vset = catalog.vector_set(VIDEO_SET)
        ids, vectors = catalog.load_vectors(vset.id, vset.dim)
        rows = catalog.clip_rows([int(i) for i in ids])
    finally:
        catalog.close()
    return vectors, [Path(rows[int(i)].path).name for i in ids]


def knn_vote(sim: np.ndarray, labels: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    """Predicted label per row: majority of the k most similar allowed columns (ties: summed similarity)."""
    sim = np.where(allowed, sim, -np.inf)
    top = np.argsort(-sim, axis=1)[:, :k]
    predicted = np.empty(len(sim), dtype=labels.dtype)
    for row, cols in enumerate(top):
        votes: dict = {}
        for col in cols:
            count, total = votes.get(labels[col], (0, 0.0))
            votes[labels[col]] = (count + 1, total + sim[row, col])
        predicted[row] = max(votes, key=lambda label: votes[label])
    return predicted


def score(vectors: np.ndarray, names: list[str], labels: dict[str, dict], k: int = 5) -> Scores:
    x = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sim = x @ x.T
    video = np.array(names)
    other_video = video[:, None] != video[None, :]
    classes = np.array([labels[n]["class"] for n in names])
    knn = float((knn_vote(sim, classes, other_video, k) == classes).mean())
    family = np.array([labels[n]["family"] or "" for n in names])
    paired = family != ""
    flags = np.array([labels[n]["reversed"] for n in names])
    same_family = other_video & (family[:, None] == family[None, :])
    sub = np.ix_(paired, paired)
    predicted = knn_vote(sim[sub], flags[paired], same_family[sub], k)
    return Scores(knn, float((predicted == flags[paired]).mean()), len(names))


def evaluate(library: Path, labels: dict, encoder: str, weights: str, work: Path) -> Scores:
    data = Path(tempfile.mkdtemp(prefix="knn-", dir=work))
    call(
        "index", "--data", data, library, "--encoder", encoder, "--weights", weights,
        "--no-image-text", "--every-window", "--json",
    )  # fmt: skip
    vectors, names = clip_vectors(data)
    return score(vectors, names, labels)


def pretrain(library: Path, encoder: str, args: str, work: Path) -> dict:
    """`run.py pretrain LIBRARY --data NEW --encoder E --weights random ARGS --json`: its JSON document."""
    data = Path(tempfile.mkdtemp(prefix="pretrain-", dir=work))
    extra = shlex.split(args)
    weights = [] if "--weights" in extra else ["--weights", "random"]
    started = time.perf_counter()
    out = call("pretrain", library, "--data", data, "--encoder", encoder, *weights, *extra, "--json")
    document = json.loads(out[out.index("{") :])
    document["wall_s"] = round(time.perf_counter() - started, 1)
    return document


def report(tag: str, scores: Scores, extra: str = "") -> None:
    print(f"{tag:<44} {scores.line()}  load {os.getloadavg()[0]:.1f}{extra}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--library", type=Path, default=OUT / "motion", help="made here when absent")
    parser.add_argument("--per-class", type=int, default=24)
    parser.add_argument("--encoder", default="vit-tiny")
    parser.add_argument("--variants", nargs="+", default=["vit-tiny"], help="for --baseline")
    parser.add_argument("--baseline", action="store_true", help="random init of each of --variants")
    parser.add_argument("--weights", help="evaluate this encoder weights file")
    parser.add_argument("--pretrain", metavar="ARGS", help="run `run.py pretrain` with ARGS, then evaluate")
    parser.add_argument("--masking", action="store_true", help="--pretrain at tube/random x 0.75/0.9")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="random-init seeds for --baseline")
    args = parser.parse_args(argv)

    print(describe_machine(), flush=True)
    print(f"load average at start: {os.getloadavg()}", flush=True)
    labels = make_library(args.library, args.per_class)
    work = Path(tempfile.mkdtemp(prefix="pretrain-knn-"))
    if args.baseline:
        for variant in args.variants:
            for seed in args.seeds:
                report(f"{variant} random:{seed}", evaluate(args.library, labels, variant, f"random:{seed}", work))
    if args.weights:
        report(f"{args.encoder} {args.weights}", evaluate(args.library, labels, args.encoder, args.weights, work))
    runs = [args.pretrain] if args.pretrain and not args.masking else []
    if args.masking:
        runs = [f"{args.pretrain} --mask {m} --mask-ratio {r}" for m in ("tube", "random") for r in (0.75, 0.9)]
    for extra in runs:
        document = pretrain(args.library, args.encoder, extra, work)
        scores = evaluate(args.library, labels, args.encoder, document["encoder_weights"], work)
        summary = {key: document.get(key) for key in ("steps", "clips_seen", "first_loss", "final_loss", "seconds")}
        report(f"{args.encoder} pretrain {extra}", scores, f"  {json.dumps(summary)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
