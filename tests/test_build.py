"""Building, rebuilding, loading and protecting the index on disk (real seeds, model, FAISS)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from index.build import build_index
from index.staging import BATCHES
from rag import store
from rag.config import load_settings
from rag.embedder import load_embedder
from rag.errors import IndexBusyError, IndexMismatchError, IndexMissingError, IndexWriteError
from rag.publish import BuildLock
from rag.retrieval import HybridRetriever

SEEDS = Path(__file__).resolve().parent.parent / "seeds"


def _search_titles(settings, question: str) -> list[str]:
    index = store.load_index(settings.index_dir, settings)
    retriever = HybridRetriever(index, load_embedder(settings.embedder.model), settings.retrieval)
    return [s.paper.title for s in retriever.search(question, k=5).sources]


def test_full_build_on_the_seeds(seed_settings):
    index = store.load_index(seed_settings.index_dir, seed_settings)
    m = index.manifest
    assert m["counts"]["papers"] == len(index.papers) == 478
    assert m["counts"]["chunks"] == len(index.chunks) == index.vectors.ntotal
    assert m["embedder"] == {"model": "all-MiniLM-L6-v2", "dim": 384}
    assert m["chunking"]["chunk_tokens"] == seed_settings.chunking.chunk_tokens
    assert len(m["paper_hashes"]) == 478 and m["versions"]["faiss-cpu"]
    emb = store.read_embeddings(index.path)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    assert "Diffusion Models Beat GANs on Image Synthesis" in _search_titles(
        seed_settings, "classifier guidance FID on ImageNet")


def test_nothing_changed_reembeds_nothing(index_copy):
    report = build_index(index_copy, [SEEDS])
    assert report.embedded == 0 and report.reused == report.chunks > 0
    assert report.unchanged == 478 and report.added == report.changed == report.removed == 0


def test_one_edited_paper_reembeds_only_its_chunks(index_copy, tmp_path):
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    page = seeds / "000_3e40f1ba127451b8.txt"
    text = page.read_text()
    page.write_text(text.replace("Notably, the 1.4B STU-Net", "Remarkably, the 1.4B STU-Net"))
    report = build_index(index_copy, [seeds])
    index = store.load_index(index_copy.index_dir, index_copy)
    stu = next(p for p in index.papers.values() if p.title.startswith("STU-Net"))
    assert "Remarkably, the 1.4B STU-Net" in stu.abstract
    assert report.changed == 1 and report.unchanged == 477
    assert report.embedded == len(index.chunks_of(stu.paper_id)) < 6


def test_removed_source_drops_its_papers(index_copy):
    report = build_index(index_copy, [SEEDS / "001_cd12900632336ae9.txt"])
    index = store.load_index(index_copy.index_dir, index_copy)
    assert len(index.papers) == 83 and report.removed == 478 - 83 and report.embedded == 0


def test_manifest_mismatch_is_refused_with_what_to_run(index_copy):
    other = load_settings(home=index_copy.home, chunking={"chunk_tokens": 120})
    with pytest.raises(IndexMismatchError, match=r"chunking\.chunk_tokens.*askpapers index build --full"):
        store.load_index(other.index_dir, other)


def test_missing_index_says_how_to_build(tmp_path):
    settings = load_settings(home=tmp_path)
    with pytest.raises(IndexMissingError, match="askpapers index build"):
        store.load_index(settings.index_dir, settings)


# Damaged index files and bad sources (the index left untouched) are rows of the bad-input
# matrix, tests/test_bad_inputs.py.


def test_unwritable_index_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    settings = load_settings(home=tmp_path, index={"dir": blocker / "index"})
    with pytest.raises(IndexWriteError, match="Cannot write"):
        build_index(settings, [SEEDS])


def test_a_second_concurrent_build_is_refused(index_copy):
    with BuildLock(index_copy.index_dir):
        with pytest.raises(IndexBusyError, match="Another build is running"):
            build_index(index_copy, [SEEDS])


def test_killed_build_leaves_the_old_index_and_is_cleaned_up(index_copy):
    before = store.current_build(index_copy.index_dir)
    # Small embedding batches, so the build has many and is surely still embedding when
    # the first one is on disk.
    env = {**os.environ, "ASKPAPERS_HOME": str(index_copy.home), "ASKPAPERS_INDEX__EMBED_BATCH": "32"}
    proc = subprocess.Popen([sys.executable, "-m", "ui.cli", "index", "build", "--full"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:  # kill it mid-way, at a point seen on disk: reading done, a first batch embedded
        batches = index_copy.index_dir / "builds"
        deadline = time.monotonic() + 300
        while (proc.poll() is None and time.monotonic() < deadline
               and not any(batches.glob(f".tmp-*/{BATCHES}/*.npy"))):
            time.sleep(0.02)
        assert proc.poll() is None, "the build ended before it could be killed mid-way"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)  # only the build we started, by its id
        proc.wait()
    assert store.current_build(index_copy.index_dir) == before
    assert "Diffusion Models Beat GANs on Image Synthesis" in _search_titles(
        index_copy, "classifier guidance FID on ImageNet")
    # A power cut during writing leaves a half-written temp build: the next build removes it.
    stale = index_copy.index_dir / "builds" / ".tmp-20000101T000000-1"
    stale.mkdir()
    (stale / "vectors.faiss").write_bytes(b"half")
    build_index(index_copy, [SEEDS])
    assert not stale.exists()
    assert len(list((index_copy.index_dir / "builds").iterdir())) == 2


def test_cli_errors_are_one_line_and_non_zero(tmp_path):
    env = {**os.environ, "ASKPAPERS_HOME": str(tmp_path)}
    for args, code, text in [
        (["ask", "anything", "--mode", "extractive"], 4, "No index at"),
        (["index", "build", "--source", str(tmp_path / "nope")], 3, "does not exist"),
        (["index", "info"], 4, "run: askpapers index build"),
    ]:
        out = subprocess.run([sys.executable, "-m", "ui.cli", *args], env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == code, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("askpapers: error:") and text in lines[0]
