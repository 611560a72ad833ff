"""The index folder as a sealed box (part of rag.store's format).

A build folder holds exactly the files its manifest lists, each a regular file inside the
folder (no symbolic link anywhere, no FIFO or device), each with the size and the content
hashes the manifest records:

    "files": {"records.sqlite": {"bytes": 811008, "xxh3_128": "<32 hex>", "sample": "<32 hex>"}, ...}

`xxh3_128` hashes the whole file (XXH3, 128 bits: ~6 GB/s here against 0.5 GB/s for
BLAKE2b and 1 GB/s for SHA-256, so hashing a multi-GB build costs seconds, not minutes);
`sample` hashes the size and SAMPLE_BLOCKS evenly spaced blocks, first and last included.
Loading checks files up to FULL_HASH_LIMIT bytes in full and larger ones by their sample
(a multi-GB embeddings.npy is not read end to end at every start);
`askpapers index verify` checks every file in full.

The hashes catch files changed after the build (a disk fault, an edit, files copied in from
another index). They are not a signature: whoever can rewrite the manifest can rewrite its
hashes too (see SECURITY.md).
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

import xxhash

from rag.errors import IndexCorruptError

MANIFEST = "manifest.json"
FULL_HASH_LIMIT = 64 * 2**20
SAMPLE_BLOCKS, SAMPLE_BYTES = 64, 64 * 1024
_READ = 2**20
_REBUILD = "run: askpapers index build --full"


ALGORITHM = "xxh3_128"


def _digest() -> xxhash.xxh3_128:
    return xxhash.xxh3_128()


def full_hash(path: Path) -> str:
    """XXH3-128 of the whole file, hex."""
    h = _digest()
    with open(path, "rb") as f:
        while block := f.read(_READ):
            h.update(block)
    return h.hexdigest()


def sample_hash(path: Path) -> str:
    """XXH3-128 of the file's size and SAMPLE_BLOCKS evenly spaced blocks of it, hex."""
    size = path.stat().st_size
    h = _digest()
    h.update(str(size).encode())
    last = max(size - SAMPLE_BYTES, 0)
    with open(path, "rb") as f:
        for offset in sorted({last * i // (SAMPLE_BLOCKS - 1) for i in range(SAMPLE_BLOCKS)}):
            f.seek(offset)
            h.update(f.read(SAMPLE_BYTES))
    return h.hexdigest()


def file_entry(path: Path) -> dict:
    """The manifest's record of one file: its size and hashes."""
    return {"bytes": path.stat().st_size, ALGORITHM: full_hash(path), "sample": sample_hash(path)}


def seal(build: Path) -> dict[str, dict]:
    """The "files" section for a finished build: every file but the manifest, by relative name."""
    return {name: file_entry(build / name) for name in sorted(_listing(build)) if name != MANIFEST}


def check_inside(root: Path, path: Path) -> None:
    """Refuse `path` unless it lies inside `root` with no symbolic link between them.

    `root` itself may be a link (an index folder on another disk). Raises IndexCorruptError."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        raise IndexCorruptError(f"{path} is outside the index folder {root}; {_REBUILD}") from None
    if ".." in rel.parts:
        raise IndexCorruptError(f"{path} leaves the index folder {root}; {_REBUILD}")
    here = root
    for part in rel.parts:
        here = here / part
        if here.is_symlink():
            raise IndexCorruptError(f"{here} is a symbolic link; an index folder holds only its "
                                    f"own files; {_REBUILD}")


def _listing(build: Path) -> set[str]:
    """Relative names of every file under `build`; refuses links and special files."""
    names = set()
    for folder, dirs, files in os.walk(build, followlinks=False):
        for name in dirs + files:
            path = Path(folder) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise IndexCorruptError(f"{path} is a symbolic link; an index folder holds only "
                                        f"its own files; {_REBUILD}")
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise IndexCorruptError(f"{path} is not a regular file; {_REBUILD}")
            if stat.S_ISREG(mode):
                names.add(str(path.relative_to(build)))
    return names


def check_build(build: Path, files: dict, *, full: bool = False) -> int:
    """Check a build folder against its manifest's "files": the same set of regular files,
    sizes and hashes (in full, or by sample above FULL_HASH_LIMIT unless `full`).

    Returns the bytes checked. Raises IndexCorruptError naming the first file that differs."""
    if not all(isinstance(e, dict) and isinstance(e.get("bytes"), int) for e in files.values()):
        raise IndexCorruptError(f"{build / MANIFEST} lists its files in an unknown form; {_REBUILD}")
    found = _listing(build) - {MANIFEST}
    if missing := sorted(set(files) - found):
        raise IndexCorruptError(f"Index file {build / missing[0]} is missing; {_REBUILD}")
    if extra := sorted(found - set(files)):
        raise IndexCorruptError(f"Index file {build / extra[0]} is not in the manifest "
                                f"(added after the build); {_REBUILD}")
    checked = 0
    for name, entry in sorted(files.items()):
        checked += _check_file(build / name, entry, full)
    return checked


def _check_file(path: Path, entry: dict, full: bool) -> int:
    size = path.stat().st_size
    if size != entry["bytes"]:
        raise IndexCorruptError(f"Index file {path} has {size} bytes, expected {entry['bytes']}; "
                                f"{_REBUILD}")
    whole = full or size <= FULL_HASH_LIMIT
    if whole:
        got, want = full_hash(path), entry.get(ALGORITHM)
    else:
        got, want = sample_hash(path), entry.get("sample")
    if got != want:
        raise IndexCorruptError(f"Index file {path} does not match the hash in its manifest "
                                f"(changed after the build); {_REBUILD}")
    return size if whole else min(size, SAMPLE_BLOCKS * SAMPLE_BYTES)
