"""Find candidate files under the library roots.

What is a video is decided by probing (indexer/decode.py), not by name: every file is probed,
whatever its extension, and one that cannot be indexed is reported with the reason. Names only
spare the probe for obvious non-media files (images, documents, subtitles, archives) and hidden
files, which are skipped and counted.

The walk is iterative (a tree thousands of directories deep is fine), visits each directory once
by (device, inode) whatever symlinks lead to it, never enters a pseudo filesystem (/proc, /sys,
/dev: /proc/*/root leads back to the whole disk) and, with `one_file_system`, stays on each root's
filesystem. A root is a folder or a single file; a file root is a root of that one file.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from indexer.decode import file_kind
from indexer.files import inode_key
from indexer.records import Failure, ScannedFile

NON_MEDIA_EXTENSIONS = frozenset(
    [
        ".jpg",
        ".jpeg",
        ".png",
        ".bmp",
        ".tif",
        ".tiff",
        ".webp",
        ".heic",
        ".heif",
        ".svg",
        ".ico",
        ".raw",
        ".dng",
        ".cr2",
        ".nef",
        ".psd",
        ".txt",
        ".md",
        ".rst",
        ".json",
        ".yaml",
        ".yml",
        ".xml",
        ".csv",
        ".tsv",
        ".html",
        ".htm",
        ".pdf",
        ".doc",
        ".docx",
        ".xls",
        ".xlsx",
        ".ppt",
        ".srt",
        ".vtt",
        ".ass",
        ".ssa",
        ".sub",
        ".idx",
        ".nfo",
        ".log",
        ".ini",
        ".cfg",
        ".py",
        ".sh",
        ".js",
        ".css",
        ".db",
        ".sqlite",
        ".wal",
        ".shm",
        ".zip",
        ".tar",
        ".gz",
        ".bz2",
        ".xz",
        ".7z",
        ".rar",
        ".iso",
        ".exe",
        ".dll",
        ".so",
        ".pth",
        ".pt",
        ".safetensors",
        ".faiss",
        ".lock",
    ]
)
PSEUDO_FILESYSTEMS = (Path("/proc"), Path("/sys"), Path("/dev"))  # kernel views, never footage


class RootError(ValueError):
    """A path that cannot be a library root; the message is meant for the user."""


@dataclass
class ScanResult:
    files: list[ScannedFile] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)  # unreadable entries, FIFOs, devices, sockets
    skipped: int = 0  # non-media by name, hidden entries, links to the catalog, dirs on other or pseudo filesystems


def pseudo_devices() -> set[int]:
    """Device ids of the pseudo filesystems mounted here (a link or bind mount can lead into them)."""
    devices = set()
    for path in PSEUDO_FILESYSTEMS:
        try:
            devices.add(os.stat(path).st_dev)
        except OSError:
            continue
    return devices


def check_root(root: Path, pseudo: set[int] | None = None) -> os.stat_result | None:
    """The root's stat, or None when it does not exist; RootError for what can never be a root."""
    try:
        info = os.stat(root)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RootError(f"cannot index {root}: {exc.strerror}") from None
    if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
        raise RootError(f"cannot index {root}: is not a regular file or directory ({file_kind(info.st_mode)})")
    named_or_real = (Path(os.path.abspath(root)), Path(os.path.realpath(root)))  # /proc/self/root is "/"
    if any(path == p or p in path.parents for p in PSEUDO_FILESYSTEMS for path in named_or_real) or info.st_dev in (
        pseudo_devices() if pseudo is None else pseudo
    ):
        raise RootError(
            f"cannot index {root}: it is on a pseudo filesystem ({', '.join(map(str, PSEUDO_FILESYSTEMS))} "
            "hold kernel views, not footage)"
        )
    return info


def check_roots(roots: list[Path]) -> None:
    """Refuse, before any work, roots that can never be indexed (see check_root)."""
    pseudo = pseudo_devices()
    for root in roots:
        check_root(Path(os.path.abspath(root)), pseudo)


def scan_roots(
    roots: list[Path], exclude: list[Path] = (), one_file_system: bool = False, exclude_files: list[Path] = ()
) -> ScanResult:
    """Walk each root (following symlinks, each directory once), in a stable order. Directories in
    `exclude` are not entered; files in `exclude_files` (the catalog's) are skipped by whatever name
    links to them."""
    result = ScanResult()
    walk = _Walk(
        result,
        {inode_key(p) for p in exclude} - {None},
        pseudo_devices(),
        one_file_system,
        {inode_key(p) for p in exclude_files} - {None},
    )
    for root in roots:
        root = Path(os.path.abspath(root))
        info = check_root(root, walk.pseudo)
        if info is None:
            result.failures.append(Failure(str(root), "no such file or directory"))
        elif stat.S_ISREG(info.st_mode):
            walk.add_file(root, root)  # a single file is a root of one file, not of its folder
        else:
            walk.tree(root, info.st_dev)
    return result


@dataclass
class _Walk:
    result: ScanResult
    excluded: set[tuple[int, int]]  # (device, inode) of directories never entered (the data dir)
    pseudo: set[int]  # devices of pseudo filesystems
    one_file_system: bool
    excluded_files: set[tuple[int, int]] = field(default_factory=set)  # (device, inode) never opened
    seen_dirs: set[tuple[int, int]] = field(default_factory=set)
    seen_files: set[str] = field(default_factory=set)

    def tree(self, root: Path, root_device: int) -> None:
        """Depth-first in name order, with an explicit stack of open levels (no recursion limit)."""
        stack = [iter(self._entries(root, root_device))]
        while stack:
            entry = next(stack[-1], None)
            if entry is None:
                stack.pop()
            elif entry.name.startswith("."):
                self.result.skipped += 1
            elif _is_dir(entry):
                stack.append(iter(self._entries(Path(entry.path), root_device)))
            else:
                self.add_file(Path(entry.path), root)

    def _entries(self, directory: Path, root_device: int) -> list[os.DirEntry]:
        try:
            info = os.stat(directory)
            key = (info.st_dev, info.st_ino)
            if key in self.seen_dirs or key in self.excluded:
                return []  # a symlink loop, a directory reached twice, or the data dir itself
            self.seen_dirs.add(key)
            if info.st_dev in self.pseudo or (self.one_file_system and info.st_dev != root_device):
                self.result.skipped += 1
                return []
            with os.scandir(directory) as entries:
                return sorted(entries, key=lambda e: e.name)
        except OSError as exc:
            self.result.failures.append(Failure(str(directory), f"cannot list directory: {exc.strerror}"))
            return []

    def add_file(self, path: Path, root: Path) -> None:
        if path.suffix.lower() in NON_MEDIA_EXTENSIONS:
            self.result.skipped += 1
            return
        try:
            info = path.stat()
        except OSError as exc:
            self.result.failures.append(Failure(str(path), f"cannot read file: {exc.strerror}"))
            return
        if str(path) in self.seen_files:
            return
        self.seen_files.add(str(path))
        if (info.st_dev, info.st_ino) in self.excluded_files:  # a link to the catalog: opening it would
            self.result.skipped += 1  # drop this process's SQLite locks (see DataDir.catalog_files)
            return
        if not stat.S_ISREG(info.st_mode):  # opening a FIFO blocks; a device never ends
            self.result.failures.append(Failure(str(path), f"not a regular file ({file_kind(info.st_mode)}); skipped"))
            return
        self.result.files.append(ScannedFile(path, info.st_size, info.st_mtime_ns, root))


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:
        return False
