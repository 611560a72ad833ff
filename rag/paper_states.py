"""Each paper read once: the local model's KV state after a paper's prompt head, on disk.

An answer prompt starts with the system prompt and then the top paper's title and whole
abstract; only the question and its instruction (~40 tokens) follow. Reading ~300 tokens of
abstract takes this machine's 1.5B model 6-9 s, loading their saved state ~10 ms
(docs/measured.md, "Saved paper states"). So the first time a paper heads a prompt its state is
saved, and every later question about it reads only the question.

One file per state, named by the hash of the model's identity and the state's tokens:

    <folder>/<32 hex>.kv = MAGIC, one JSON header line, then llama.cpp's sequence state

The header records the model, the key, the token count and the payload's XXH3-128; a file
whose header or hash does not match is ignored and replaced, never loaded. Like the
index's hashes, this catches a damaged or swapped-in file, not a forger who rewrites the
hash too (SECURITY.md). The folder holds at most `budget` bytes: the least recently used
states are deleted first.
"""
from __future__ import annotations

import ctypes
import json
import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path

import xxhash

log = logging.getLogger(__name__)

MAGIC = b"askpapers-kv-state-1\n"
SUFFIX = ".kv"
_HEADER_MAX = 4096
MIN_FREE_BYTES = 2 * 2**30  # `askpapers index warm` leaves at least this much disk free


def model_identity(path: Path, **options) -> str:
    """What a saved state depends on: the model file (name, size, modification time), the
    llama.cpp build and the load options that change the cache's layout."""
    import llama_cpp

    st = Path(path).stat()
    parts = [Path(path).name, st.st_size, st.st_mtime_ns, llama_cpp.__version__,
             sorted(options.items())]
    return xxhash.xxh3_128_hexdigest(json.dumps(parts, default=str).encode())


class PaperStates:
    """Saved KV states of prompt heads, for one model, in one folder, within a byte budget."""

    def __init__(self, folder: Path, model_id: str, budget: int):
        self.folder = Path(folder)
        self.model_id = model_id
        self.budget = budget
        self.loads = self.saves = 0

    def key(self, ids: list[int]) -> str:
        """The file stem for the state after exactly these tokens."""
        h = xxhash.xxh3_128(self.model_id.encode())
        h.update(json.dumps(ids).encode())
        return h.hexdigest()

    def _path(self, ids: list[int]) -> Path:
        return self.folder / (self.key(ids) + SUFFIX)

    def disk_low(self) -> bool:
        """Whether the disk holding the folder has less than MIN_FREE_BYTES free: reading
        every paper stops there, whatever the budget, so states never fill the disk."""
        where = self.folder
        while not where.is_dir() and where != where.parent:  # the folder may not exist yet
            where = where.parent
        try:
            return shutil.disk_usage(where).free < MIN_FREE_BYTES
        except OSError:
            return False  # an unreadable folder: each save logs its own failure

    def has(self, ids: list[int]) -> bool:
        """Whether a state file for `ids` exists (not yet checked)."""
        return self._path(ids).is_file()

    def load(self, llama, ids: list[int]) -> bool:
        """Put the saved state after `ids` into the model's sequence 0; False when there is
        none or it does not check out (the model's cache is then left empty)."""
        import llama_cpp

        path = self._path(ids)
        payload = self.read(ids)
        if payload is None:
            return False
        ctx = llama._ctx.ctx
        buf = (ctypes.c_uint8 * len(payload)).from_buffer_copy(payload)
        llama._ctx.kv_cache_seq_rm(-1, 0, -1)
        if llama_cpp.llama_state_seq_set_data(ctx, buf, len(payload), 0) != len(payload):
            log.warning("llama.cpp refused the saved state %s; it will be read again", path.name)
            llama._ctx.kv_cache_seq_rm(-1, 0, -1)
            llama.n_tokens = 0
            return False
        llama.input_ids[:len(ids)] = ids
        llama.n_tokens = len(ids)
        self.loads += 1
        try:
            os.utime(path)  # recently used: kept longest under the budget
        except OSError:
            pass
        return True

    def read(self, ids: list[int]) -> bytes | None:
        """The checked state payload saved for `ids`; None when there is none, or the file
        is not a regular file or does not match its header (model, key, size, hash)."""
        path = self._path(ids)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return None
        try:
            with os.fdopen(fd, "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    return self._bad(path, "not a regular file")
                if f.read(len(MAGIC)) != MAGIC:
                    return self._bad(path, "not a saved state")
                header = json.loads(f.readline(_HEADER_MAX))
                payload = f.read(int(header["bytes"]) + 1)
                ok = (header["model"] == self.model_id and header["key"] == self.key(ids)
                      and header["tokens"] == len(ids) and len(payload) == header["bytes"]
                      and xxhash.xxh3_128_hexdigest(payload) == header["xxh3_128"])
        except (OSError, ValueError, KeyError, TypeError):
            ok = False
        return payload if ok else self._bad(path, "its header or hash does not match")

    @staticmethod
    def _bad(path: Path, why: str) -> None:
        log.warning("ignoring saved state %s: %s", path.name, why)
        return None

    def save(self, llama, ids: list[int]) -> None:
        """Save the model's sequence 0, which holds exactly `ids`, then keep to the budget.
        A failure to write only logs: the state is a cache."""
        import llama_cpp

        ctx = llama._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        n = llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0)
        if self.write(ids, bytes(buf)[:n]):
            self.saves += 1
            self.trim()

    def write(self, ids: list[int], payload: bytes) -> bool:
        """Save `payload` as the state after `ids`, atomically; False (logged) when the
        folder cannot be written."""
        header = {"model": self.model_id, "key": self.key(ids), "tokens": len(ids),
                  "bytes": len(payload), "xxh3_128": xxhash.xxh3_128_hexdigest(payload)}
        tmp = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=SUFFIX)
            with os.fdopen(fd, "wb") as f:
                f.write(MAGIC + json.dumps(header).encode() + b"\n" + payload)
            os.replace(tmp, self._path(ids))
        except OSError as e:
            log.warning("cannot save a paper state in %s: %s", self.folder, e.strerror)
            if tmp:
                Path(tmp).unlink(missing_ok=True)
            return False
        return True

    def trim(self) -> int:
        """Delete the least recently used states until the folder fits the budget; the
        bytes kept."""
        entries = []
        for path in self.folder.glob("*" + SUFFIX):
            try:
                st = path.lstat()
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                entries.append((st.st_mtime_ns, st.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.budget:
                break
            try:
                path.unlink()
                total -= size
            except OSError:
                pass
        return total
