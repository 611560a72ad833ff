"""Resolving the local GGUF: packaged parts, the verified cache, explicit paths."""
import dataclasses
import hashlib

import pytest

from rag import models
from rag.config import load_settings
from rag.errors import ModelError

SMALL = models.PACKAGED["0.5b"]


def _settings(home, **llm):
    return load_settings(home=home, llm={"local_model": "0.5b", **llm})


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def _corrupt(path, offset=4096):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.slow
def test_packaged_small_model_assembles_to_the_official_hash(tmp_path):
    path = models.resolve_gguf(_settings(tmp_path))
    assert path == tmp_path / "models" / SMALL.filename
    assert path.stat().st_size == SMALL.size
    assert _sha256(path) == SMALL.sha256
    assert (path.parent / (SMALL.filename + ".sha256")).is_file()
    assert not list(path.parent.glob("*.tmp")), "the temporary file must be gone"


@pytest.mark.slow
def test_verified_cache_is_reused_without_reassembly(tmp_path):
    first = models.resolve_gguf(_settings(tmp_path))
    before = first.stat()
    second = models.resolve_gguf(_settings(tmp_path))
    after = second.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.mark.slow
def test_cached_model_edited_in_place_is_reassembled(tmp_path):
    path = models.resolve_gguf(_settings(tmp_path))
    _corrupt(path)
    assert models.resolve_gguf(_settings(tmp_path)) == path
    assert _sha256(path) == SMALL.sha256


@pytest.mark.slow
def test_right_sized_cache_with_wrong_hash_and_no_sidecar_is_reassembled(tmp_path):
    path = tmp_path / "models" / SMALL.filename
    path.parent.mkdir()
    with open(path, "wb") as f:
        f.truncate(SMALL.size)  # zeros: the right size, the wrong bytes
    models.resolve_gguf(_settings(tmp_path))
    assert _sha256(path) == SMALL.sha256


def test_no_parts_no_cache_offline_says_make_install(tmp_path, monkeypatch):
    absent = dataclasses.replace(SMALL, module_prefix="askpapers_test_absent_part")
    monkeypatch.setitem(models.PACKAGED, "0.5b", absent)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="make install") as err:
        models.resolve_gguf(_settings(tmp_path))
    assert "ASKPAPERS_LLM__MODEL_PATH" in str(err.value)


def test_explicit_gguf_path_is_returned_as_is(tmp_path):
    fake = tmp_path / "tiny.gguf"
    fake.write_bytes(b"GGUF" + b"\0" * 16)  # only the magic is checked before loading
    assert models.resolve_gguf(_settings(tmp_path, model_path=fake)) == fake


# Missing, non-GGUF, truncated and wrong-sha256 model files are rows of the bad-input
# matrix, tests/test_bad_inputs.py.
