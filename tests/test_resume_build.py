"""A build killed mid-embedding resumes: the rerun embeds only the missing batches and
publishes the same index as a build that was never interrupted (real model, real CLI)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import index.steps
from index.build import build_index
from index.staging import BATCHES, new_stage
from rag import store
from rag.config import load_settings
from rag.embedder import load_embedder

BATCH = 4


def _jsonl(path: Path, n: int) -> Path:
    rows = [{"title": f"Resumable build paper {i}: pruning layer {i % 7} of a {i % 5 + 1}B model",
             "abstract": f"We prune layer {i % 7} and retrain for {i} steps; accuracy drops "
                         f"{i % 3}.{i % 10} points while inference runs {1 + i % 4}x faster.",
             "authors": "A. Author, B. Author", "categories": "cs.LG", "update_date": "2024-01-02"}
            for i in range(n)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _kill_after_batches(home: Path, source: Path, k: int) -> int:
    """Run the CLI build, SIGKILL it once `k` batches are on disk; returns batches found."""
    env = {**os.environ, "ASKPAPERS_HOME": str(home), "ASKPAPERS_INDEX__EMBED_BATCH": str(BATCH)}
    proc = subprocess.Popen([sys.executable, "-m", "ui.cli", "index", "build", "--source",
                             str(source)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list((home / "index" / "builds").glob(f".tmp-*/{BATCHES}/*.npy"))) >= k:
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)  # only the build we started, by its id
        proc.wait()
    return len(list((home / "index" / "builds").glob(f".tmp-*/{BATCHES}/*.npy")))


class CountingEmbedder:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, real):
        self.real, self.texts = real, 0
        self.dim, self.max_tokens = real.dim, real.max_tokens

    def embed(self, texts, batch_size=64):
        self.texts += len(texts)
        return self.real.embed(texts, batch_size=batch_size)

    def count_tokens(self, text):
        return self.real.count_tokens(text)


@pytest.mark.slow
def test_killed_build_resumes_from_finished_batches(tmp_path, monkeypatch):
    source = _jsonl(tmp_path / "papers.jsonl", 120)
    killed_home, clean_home = tmp_path / "killed", tmp_path / "clean"
    done = _kill_after_batches(killed_home, source, k=3)
    assert store.current_build(killed_home / "index") is None  # nothing published
    assert 3 <= done < 120 // BATCH
    counting = CountingEmbedder(load_embedder("all-MiniLM-L6-v2"))
    monkeypatch.setattr(index.steps, "load_embedder", lambda model: counting)
    settings = load_settings(home=killed_home, index={"embed_batch": BATCH})
    report = build_index(settings, [source])
    assert report.resumed_batches == done and report.batches == 120 // BATCH
    assert counting.texts == report.embedded - done * BATCH > 0
    assert not list((killed_home / "index" / "builds").glob(".tmp-*"))

    clean = load_settings(home=clean_home, index={"embed_batch": BATCH})
    build_index(clean, [source])
    a = store.load_index(settings.index_dir, settings)
    b = store.load_index(clean.index_dir, clean)
    assert list(a.papers.items()) == list(b.papers.items())
    assert list(a.chunks) == list(b.chunks) and len(a.chunks) == 120
    assert a.manifest["paper_hashes"] == b.manifest["paper_hashes"]
    assert np.allclose(store.read_embeddings(a.path), store.read_embeddings(b.path), atol=1e-5)


def test_a_stage_with_another_plan_is_removed_not_resumed(tmp_path):
    source = _jsonl(tmp_path / "papers.jsonl", 3)
    settings = load_settings(home=tmp_path / "home", index={"embed_batch": BATCH})
    other = new_stage(settings.index_dir, {"sources": [], "full": True})
    (other / BATCHES).mkdir()
    np.save(other / BATCHES / "000000.npy", np.zeros((BATCH, 384), np.float32))
    report = build_index(settings, [source])
    assert report.resumed_batches == 0 and report.embedded == 3 and not other.exists()
