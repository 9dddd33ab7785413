"""Decide what an index run must do, by comparing a scan with the catalog. Pure.

- same path, same size and mtime                         -> unchanged (nothing read)
- same path, new size/mtime, same fingerprint             -> unchanged (metadata touched)
- same path, new fingerprint                              -> changed (embed; old content dropped
                                                             when no other path has it)
- new path, fingerprint of a video whose path vanished    -> moved (path update, no embedding)
- new path, fingerprint of a video still present          -> copy (second path, no embedding)
- new path, unknown fingerprint                           -> new (embed)
- known path under a scanned root, not found              -> deleted
Files known to have failed are not retried unless asked (`retry_failed`) or changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from indexer.catalog import KnownPath
from indexer.records import ScannedFile


@dataclass(frozen=True)
class EmbedTask:
    file: ScannedFile
    fingerprint: str
    reason: str  # "new" | "changed" | "retry" | "pending"


@dataclass
class Plan:
    unchanged: list[ScannedFile] = field(default_factory=list)
    touched: list[ScannedFile] = field(default_factory=list)  # unchanged content, new metadata
    moved: list[tuple[ScannedFile, int]] = field(default_factory=list)  # (file, video id)
    copies: list[tuple[ScannedFile, int]] = field(default_factory=list)
    relinked: list[tuple[ScannedFile, int]] = field(default_factory=list)  # changed to known content
    embed: list[EmbedTask] = field(default_factory=list)
    known_failed: list[tuple[ScannedFile, KnownPath]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # paths no longer present
    vacated: list[str] = field(default_factory=list)  # old paths of moved files

    @property
    def changed_count(self) -> int:
        return sum(t.reason == "changed" for t in self.embed) + len(self.relinked)


def plan_changes(
    scanned: list[ScannedFile],
    roots: list[Path],
    known: dict[str, KnownPath],
    videos: dict[str, tuple[int, str]],
    fingerprint: Callable[[ScannedFile], str],
    retry_failed: bool = False,
) -> Plan:
    """`known`: path -> KnownPath; `videos`: fingerprint -> (video id, status)."""
    plan = Plan()
    present = {str(f.path) for f in scanned}
    inside = under_roots(roots)
    missing = {p for p in known if p not in present and inside(p)}
    paths_of: dict[int, set[str]] = {}
    for p, k in known.items():
        paths_of.setdefault(k.video_id, set()).add(p)

    for f in scanned:
        k = known.get(str(f.path))
        if k and (k.size, k.mtime_ns) == (f.size, f.mtime_ns):
            _classify_same(plan, f, k, retry_failed)
            continue
        fp = fingerprint(f)
        if k and k.fingerprint == fp:
            _classify_same(plan, f, k, retry_failed, touched=True)
        elif fp in videos and videos[fp][1] != "pending":
            _classify_known_content(plan, f, k, videos[fp][0], paths_of, missing)
        else:
            plan.embed.append(EmbedTask(f, fp, "changed" if k else "new"))
    plan.deleted = sorted(missing - set(plan.vacated))
    return plan


def _classify_same(plan: Plan, f: ScannedFile, k: KnownPath, retry_failed: bool, touched: bool = False) -> None:
    if k.status == "failed" and not retry_failed:
        plan.known_failed.append((f, k))
    elif k.status in ("failed", "pending"):
        plan.embed.append(EmbedTask(f, k.fingerprint, "retry" if k.status == "failed" else "pending"))
    else:
        plan.unchanged.append(f)
    if touched:
        plan.touched.append(f)


def _classify_known_content(
    plan: Plan, f: ScannedFile, k: KnownPath | None, video_id: int, paths_of: dict[int, set[str]], missing: set[str]
) -> None:
    if k is not None:  # this path's content was replaced by content indexed elsewhere
        plan.relinked.append((f, video_id))
        return
    gone = sorted((paths_of.get(video_id, set()) & missing) - set(plan.vacated))
    if gone:
        plan.moved.append((f, video_id))
        plan.vacated.append(gone[0])
    else:
        plan.copies.append((f, video_id))


def under_roots(roots: list[Path]) -> Callable[[str], bool]:
    """A test for "this path is one of `roots` or lies under one": a set look-up per ancestor, so checking
    every known path against many roots (a watch indexes a batch of single files) stays linear."""
    names = {str(r) for r in roots}

    def inside(path: str) -> bool:
        p = Path(path)
        return str(p) in names or any(str(parent) in names for parent in p.parents)

    return inside
