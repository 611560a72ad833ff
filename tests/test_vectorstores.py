"""The vector-store contract (rag/vectorstores): every backend, FAISS and Milvus Lite, passes
the same tests, through the real store and build code, the real seeds and the real model.
Without the [scale] extra the Milvus cases are skipped one by one; FAISS always runs."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import free_port

from index.build import build_index
from index.staging import new_stage
from rag import store
from rag.config import load_settings
from rag.embedder import load_embedder
from rag.errors import ConfigError, IndexMismatchError, MissingExtraError, VectorStoreError
from rag.filters import active, fields_match, filter_fields
from rag.publish import remove_stale_builds
from rag.vectorstores import milvus_store
from rag.vectorstores.faiss_store import FaissBackend

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"
needs_milvus = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("pymilvus", "milvus_lite")),
    reason="Milvus is not installed (pip install 'askpapers[scale]')")
BACKENDS = ["faiss", pytest.param("milvus", marks=needs_milvus)]
QUESTION = "YOLACT real-time instance segmentation"


def on_backend(settings, backend: str, where: Path):
    """`settings` with its index moved onto `backend`: a build that re-uses every embedding."""
    if backend == "faiss":
        return settings
    moved = load_settings(home=settings.home, index={"vector_uri": str(where / "vectors.db")})
    report = build_index(moved, [SEEDS])
    assert report.embedded == 0
    return moved


@pytest.fixture(scope="session", params=BACKENDS)
def backend_settings(request, seed_settings, tmp_path_factory):
    """The seed index on each backend, built once per session (read-only tests)."""
    if request.param == "faiss":
        return seed_settings
    home = tmp_path_factory.mktemp("milvus_home")
    shutil.copytree(seed_settings.index_dir, home / "index", symlinks=True)
    return on_backend(load_settings(home=home), "milvus", home)


@pytest.fixture(params=BACKENDS)
def backend_copy(request, index_copy, tmp_path):
    """A private seed index on each backend, for tests that rebuild it."""
    return on_backend(index_copy, request.param, tmp_path)


def exact_top(emb: np.ndarray, rows, x: np.ndarray, k: int) -> list[int]:
    rows = np.asarray(list(rows), dtype=np.int64)
    scores = np.asarray(emb[rows]) @ x
    return rows[np.argsort(-scores, kind="stable")[:k]].tolist()


# ---------------------------------------------------------------- (a) search = brute force

def test_search_returns_the_exact_top_k(backend_settings):
    index = store.load_index(backend_settings.index_dir, backend_settings)
    emb = np.asarray(store.read_embeddings(index.path))
    queries = np.vstack([load_embedder(backend_settings.embedder.model).embed([QUESTION]), emb[[5, 500]]])
    scores, ids = index.vectors.search(queries, 10)
    for q, x in enumerate(queries):
        assert ids[q].tolist() == exact_top(emb, range(len(emb)), x, 10)
        assert np.allclose(scores[q], emb[ids[q]] @ x, atol=1e-4)
    assert index.vectors.ntotal == len(emb) and index.vectors.d == emb.shape[1]
    assert np.array_equal(index.vectors.reconstruct_batch([3, 7]), emb[[3, 7]])


# ---------------------------------------------------------------- (b) filters

def _seed_filters(index) -> list[dict]:
    # The seed pages carry listings (the file a paper was read from) but no authors,
    # categories or years: those are covered on synthetic fields below.
    source = next(iter(index.papers.values())).listings[0].source
    return [
        {"source": source}, {"source": source[4:12].upper()}, {"source": "001_cd"},
        {"source": "_"},  # every file name has a literal "_"; a wildcard would match too much elsewhere
        {"source": "%"}, {"author": "_"}, {"author": '"'}, {"author": "\\"}, {"source": "' or 1"},
        {"year": 2020}, {"category": "cs.cv"}, {"source": source, "year": 2020},
    ]


def test_filtered_search_returns_exactly_the_rows_the_filters_allow(backend_settings):
    index = store.load_index(backend_settings.index_dir, backend_settings)
    emb = store.read_embeddings(index.path)
    x = load_embedder(backend_settings.embedder.model).embed([QUESTION])
    fields = {pid: filter_fields(p) for pid, p in index.papers.items()}
    for filters in _seed_filters(index):
        allowed = [c.chunk_id for c in index.chunks if fields_match(fields[c.paper_id], active(filters))]
        k = len(allowed) + 3
        scores, ids = index.vectors.search(x, k, filters)
        assert ids[0][:len(allowed)].tolist() == exact_top(emb, allowed, x[0], k), filters
        assert (ids[0][len(allowed):] == -1).all(), filters


AWKWARD = ["o'brien", 'the "quoted" one', "50%", "a_b", "back\\slash", "plain", "50x", "axb",
           "back/slash", "%", "_"]


def _synthetic_fields(n: int) -> list[dict]:
    return [{"row": r, "paper_id": f"p{r // 3}", "year": 2018 + r % 5,
             "authors": f"\t{AWKWARD[r % len(AWKWARD)]}\tsomeone {r % 7}\t",
             "categories": "\t" + "\t".join(["cs.cv", "cs.lg", "cs.cl"][: 1 + r % 3]) + "\t",
             "sources": f"\tlisting_{r % 4} 2024-0{1 + r % 9}\t"} for r in range(n)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_awkward_filter_text_matches_literally(backend, tmp_path):
    """Quotes, %, _ and backslashes in filters mean themselves, never wildcards or syntax."""
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((400, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    fields = _synthetic_fields(len(emb))

    def rows_where(filters):
        return np.array([f["row"] for f in fields if fields_match(f, active(filters))], dtype=np.int64)

    build = tmp_path / "index" / "builds" / "b1"
    build.mkdir(parents=True)
    impl = FaissBackend() if backend == "faiss" else milvus_store.MilvusBackend(str(tmp_path / "v.db"))
    section = impl.write(build, emb, lambda lo, hi: [dict(f) for f in fields[lo:hi]])
    searcher = impl.open(build, section, emb, rows_where)
    cases = [{"author": a} for a in AWKWARD] + [
        {"author": "50%", "year": 2019}, {"category": "cs.lg"}, {"category": "cs"},
        {"source": "listing_1"}, {"source": "g_1 2024"}, {"source": "%2024"}, {"year": 1999}]
    for filters in cases:
        allowed = rows_where(filters).tolist()
        scores, ids = searcher.search(emb[:2], len(allowed) + 2, filters)
        for q in range(2):
            assert ids[q][:len(allowed)].tolist() == exact_top(emb, allowed, emb[q], len(allowed)), filters
            assert (ids[q][len(allowed):] == -1).all(), filters


def test_milvus_expressions_escape_user_text():
    expr = milvus_store.filter_expression(active({"author": 'O"Brien', "year": "2020"}))
    assert expr == '(authors like "%o\\"brien%") and (year == 2020)'
    assert milvus_store.filter_expression(active({"category": "CS.LG"})) == '(categories like "%\tcs.lg\t%")'
    assert milvus_store.filter_expression(
        active({"author": "a_b"}), lambda f: np.array([4, 9])) == "(row in [4,9])"
    assert milvus_store.filter_expression(active({"author": "100%"}), lambda f: np.array([])) is None
    assert milvus_store.filter_expression({}) == ""


# ---------------------------------------------------------------- (c) reload

_RELOAD = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from rag import store
    from rag.config import load_settings
    from rag.embedder import load_embedder
    settings = load_settings(home=Path(sys.argv[1]), index={"vector_uri": sys.argv[2]})
    index = store.load_index(settings.index_dir, settings)
    x = load_embedder(settings.embedder.model).embed([sys.argv[3]])
    scores, ids = index.vectors.search(x, 10, {"category": "cs.CV"})
    print(json.dumps({"ids": ids[0].tolist(), "scores": scores[0].tolist()}))
""")


@pytest.mark.slow
def test_reload_in_this_and_a_fresh_process_gives_identical_results(backend_copy):
    settings = backend_copy
    x = load_embedder(settings.embedder.model).embed([QUESTION])
    first = store.load_index(settings.index_dir, settings).vectors.search(x, 10, {"category": "cs.CV"})
    again = store.load_index(settings.index_dir, settings).vectors.search(x, 10, {"category": "cs.CV"})
    assert np.array_equal(first[1], again[1]) and np.allclose(first[0], again[0])
    uri = settings.index.vector_uri
    if uri:
        milvus_store.release(uri)  # Milvus Lite: one process per file
    out = subprocess.run([sys.executable, "-c", _RELOAD, str(settings.home), uri, QUESTION],
                         capture_output=True, text=True, timeout=300, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    fresh = json.loads(out.stdout.strip().splitlines()[-1])
    assert fresh["ids"] == first[1][0].tolist()
    assert np.allclose(fresh["scores"], first[0][0], atol=1e-5)


# ---------------------------------------------------------------- (d, e) update and delete

def _collections(settings) -> set[str]:
    uri = milvus_store.resolve_uri(settings.index.vector_uri)
    return {c for c in milvus_store.client(uri).list_collections() if c.startswith(milvus_store.PREFIX)}


def test_incremental_update_reuses_vectors_finds_new_text_and_drops_retired_vectors(backend_copy, tmp_path):
    settings = backend_copy
    before = store.load_index(settings.index_dir, settings)
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    page = seeds / "000_3e40f1ba127451b8.txt"
    marker = "Remarkably, the 1.4B STU-Net also transfers to zebrafish retina scans"
    page.write_text(page.read_text().replace("Notably, the 1.4B STU-Net", marker))
    report = build_index(settings, [seeds])
    index = store.load_index(settings.index_dir, settings)
    stu = next(p for p in index.papers.values() if p.title.startswith("STU-Net"))
    assert 0 < report.embedded < 6 and report.reused == len(index.chunks) - report.embedded
    x = load_embedder(settings.embedder.model).embed([marker])
    top = index.vectors.search(x, 1)[1][0][0]
    assert index.chunks[top].paper_id == stu.paper_id and marker in index.chunks[top].text
    assert before.path.is_dir()  # the previous build stays for readers until the next build
    if settings.index.vector_uri:
        old, new = before.manifest["vector_store"]["collection"], index.manifest["vector_store"]["collection"]
        assert {old, new} <= _collections(settings)
    build_index(settings, [seeds])
    assert not before.path.exists()
    if settings.index.vector_uri:
        assert old not in _collections(settings) and new in _collections(settings)


def test_a_paper_removed_from_the_sources_is_gone_from_search(backend_copy, tmp_path):
    settings = backend_copy
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    before = store.load_index(settings.index_dir, settings)
    (seeds / "004_b886cb7b092b6069.txt").unlink()
    build_index(settings, [seeds])
    index = store.load_index(settings.index_dir, settings)
    gone = set(before.papers) - set(index.papers)
    assert gone and index.vectors.ntotal == len(index.chunks) < len(before.chunks)
    title = before.papers[sorted(gone)[0]].title
    ids = index.vectors.search(load_embedder(settings.embedder.model).embed([title]), index.vectors.ntotal)[1][0]
    assert (ids >= 0).all() and not gone & set(index.paper_ids_of(ids))


# ---------------------------------------------------------------- (f) switching backends

@needs_milvus
def test_switching_backends_is_a_rebuild_said_clearly(index_copy, tmp_path):
    uri = str(tmp_path / "vectors.db")
    to_milvus = load_settings(home=index_copy.home, index={"vector_uri": uri})
    with pytest.raises(IndexMismatchError, match=r"index.vector_uri.*faiss.*milvus.*askpapers index build --full"):
        store.load_index(to_milvus.index_dir, to_milvus)
    build_index(to_milvus, [SEEDS])  # re-uses the embeddings; the vectors move
    assert store.load_index(to_milvus.index_dir, to_milvus).manifest["vector_store"]["backend"] == "milvus"
    with pytest.raises(IndexMismatchError, match=r"milvus at .*settings say faiss.*--full"):
        store.load_index(index_copy.index_dir, index_copy)


@needs_milvus
@pytest.mark.slow
def test_a_full_build_switches_backends(index_copy, tmp_path):
    settings = load_settings(home=index_copy.home, index={"vector_uri": str(tmp_path / "v.db")})
    report = build_index(settings, [SEEDS], full=True)
    assert report.reused == 0 and report.embedded == report.chunks
    index = store.load_index(settings.index_dir, settings)
    assert index.manifest["vector_store"]["collection"] in _collections(settings)


def test_extractive_answer_through_milvus_cites_sources(backend_settings):
    import rag

    answer = rag.ask("What is YOLACT and how fast does it run?", mode="extractive",
                     settings=backend_settings)
    assert not answer.abstained and answer.citations
    assert any("YOLACT" in c.title for c in answer.citations)


# ---------------------------------------------------------------- Milvus failures

@needs_milvus
def test_a_failed_write_leaves_no_collection(tmp_path, monkeypatch):
    monkeypatch.setattr(milvus_store, "INSERT_BATCH", 50)
    emb = np.eye(200, 16, dtype=np.float32)
    fields = _synthetic_fields(200)

    def failing(lo, hi):
        if lo >= 100:
            raise OSError("disk went away")
        return fields[lo:hi]

    build = tmp_path / "index" / "builds" / ".tmp-x"
    build.mkdir(parents=True)
    backend = milvus_store.MilvusBackend(str(tmp_path / "v.db"))
    with pytest.raises(OSError):
        backend.write(build, emb, failing)
    uri = milvus_store.resolve_uri(str(tmp_path / "v.db"))
    assert milvus_store.collection_name(build) not in milvus_store.client(uri).list_collections()


@needs_milvus
def test_a_collection_left_by_a_killed_build_is_dropped_by_the_next_build(tmp_path):
    # A build killed after its vectors reached Milvus but before its manifest was written
    # (no chance to clean up): the stage holds only the note the backend wrote first.
    index_dir = tmp_path / "index"
    stage = new_stage(index_dir)
    backend = milvus_store.MilvusBackend(str(tmp_path / "v.db"))
    backend.write(stage, np.eye(30, 16, dtype=np.float32), lambda lo, hi: _synthetic_fields(30)[lo:hi])
    uri = milvus_store.resolve_uri(str(tmp_path / "v.db"))
    name = milvus_store.collection_name(stage)
    assert name in milvus_store.client(uri).list_collections()
    assert not (stage / "manifest.json").exists()
    assert remove_stale_builds(index_dir, vector_uri=str(tmp_path / "v.db")) == [stage.name]
    assert name not in milvus_store.client(uri).list_collections()


@needs_milvus
def test_a_dead_server_says_what_to_check():
    port = free_port()  # nothing listens on it
    backend = milvus_store.MilvusBackend(f"http://127.0.0.1:{port}")
    with pytest.raises(VectorStoreError, match=r"Cannot reach Milvus at http://127\.0\.0\.1:\d+.*server is running"):
        backend.open(Path("/nowhere/builds/b"), {"backend": "milvus", "uri": backend.uri,
                                                "collection": "askpapers_x"}, np.zeros((1, 4)))


@needs_milvus
def test_a_lite_file_held_by_another_process_says_so(index_copy, tmp_path):
    uri = str(tmp_path / "held.db")
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pymilvus import MilvusClient
        MilvusClient({uri!r}); print("open", flush=True); time.sleep(60)""")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(VectorStoreError, match="open in another process.*askpapers serve"):
            milvus_store.client(milvus_store.resolve_uri(uri))
        settings = load_settings(home=index_copy.home, index={"vector_uri": uri})
        live = store.current_build(index_copy.index_dir)
        with pytest.raises(VectorStoreError, match="open in another process"):
            build_index(settings, [SEEDS], full=True)  # fails before embedding, not after
        assert store.current_build(index_copy.index_dir) == live
    finally:
        holder.kill()
        holder.wait()


def test_bad_uris_and_a_missing_pymilvus_say_what_to_do(monkeypatch):
    with pytest.raises(ConfigError, match=r"ending in \.db"):
        milvus_store.resolve_uri("vectors.sqlite")
    assert milvus_store.resolve_uri("~/v.db") == str(Path.home() / "v.db")
    assert milvus_store.resolve_uri("rel/v.db") == str(Path.cwd() / "rel" / "v.db")
    monkeypatch.setitem(sys.modules, "pymilvus", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'askpapers\[scale\]'"):
        milvus_store.client("http://127.0.0.1:19530")
