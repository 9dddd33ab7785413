"""Find candidate files under the library roots.

What is a video is decided by probing (indexer/decode.py), not by name: every file is probed,
whatever its extension, and one that cannot be indexed is reported with the reason. Names only
spare the probe for obvious non-media files (images, documents, subtitles, archives) and hidden
files, which are skipped and counted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from indexer.records import Failure, ScannedFile

NON_MEDIA_EXTENSIONS = frozenset(
    ".jpg .jpeg .png .bmp .tif .tiff .webp .heic .heif .svg .ico .raw .dng .cr2 .nef .psd "
    ".txt .md .rst .json .yaml .yml .xml .csv .tsv .html .htm .pdf .doc .docx .xls .xlsx .ppt "
    ".srt .vtt .ass .ssa .sub .idx .nfo .log .ini .cfg .py .sh .js .css .db .sqlite .wal .shm "
    ".zip .tar .gz .bz2 .xz .7z .rar .iso .exe .dll .so .pth .pt .safetensors .faiss .lock".split()
)


@dataclass
class ScanResult:
    files: list[ScannedFile] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)  # unreadable entries
    skipped: int = 0  # non-media by name, hidden files


def scan_roots(roots: list[Path], exclude: list[Path] = ()) -> ScanResult:
    """Walk each root (following symlinks, each directory once), in a stable order."""
    result = ScanResult()
    excluded = {p.resolve() for p in exclude}
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[str] = set()
    for root in roots:
        root = Path(os.path.abspath(root))
        if root.is_file():
            _add_file(root, root.parent, result, seen_files)
            continue
        if not root.is_dir():
            result.failures.append(Failure(str(root), "no such file or directory"))
            continue
        _walk(root, root, result, excluded, seen_dirs, seen_files)
    return result


def _walk(directory: Path, root: Path, result: ScanResult, excluded: set, seen_dirs: set,
          seen_files: set) -> None:
    try:
        stat = directory.stat()
        if (stat.st_dev, stat.st_ino) in seen_dirs or directory.resolve() in excluded:
            return  # a symlink loop, a directory reached twice, or the data dir itself
        seen_dirs.add((stat.st_dev, stat.st_ino))
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        result.failures.append(Failure(str(directory), f"cannot list directory: {exc.strerror}"))
        return
    for entry in entries:
        path = Path(entry.path)
        if entry.name.startswith("."):
            result.skipped += 1
        elif _is_dir(entry):
            _walk(path, root, result, excluded, seen_dirs, seen_files)
        else:
            _add_file(path, root, result, seen_files)


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:
        return False


def _add_file(path: Path, root: Path, result: ScanResult, seen_files: set) -> None:
    if path.suffix.lower() in NON_MEDIA_EXTENSIONS:
        result.skipped += 1
        return
    try:
        stat = path.stat()
    except OSError as exc:
        result.failures.append(Failure(str(path), f"cannot read file: {exc.strerror}"))
        return
    if not os.path.isfile(path) or str(path) in seen_files:
        return
    seen_files.add(str(path))
    result.files.append(ScannedFile(path, stat.st_size, stat.st_mtime_ns, root))
