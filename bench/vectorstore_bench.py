"""Vector stores side by side: FAISS files vs Milvus Lite at the same size, plus the hybrid choice.

Two corpora:
  seeds      the real seed index (1,221 chunks of real abstracts, real MiniLM vectors), the
             40 dev questions (/work/shared/eval/dev.jsonl) as queries, 3 passes each.
  synthetic  50,000 SYNTHETIC vectors (384-d, clustered around 300 random centres like
             sentence embeddings, normalised) with synthetic filter fields (5 years, 3
             categories); 200 queries that are noisy copies of stored vectors. No text, so no
             keyword or hybrid figures at this size.

Measured per backend: the vector write (backend.write alone: FAISS flat file / Milvus
collection insert+flush+load), dense search latency p50/p95 at k=60 (the retriever's
candidate count; query vectors embedded beforehand), filtered dense search (a source
filter on the seeds; year, and year+category, on synthetic), and full hybrid retrieval
(HybridRetriever.search: embedding the question, dense, BM25, fusion) on the seeds.

--hybrid also measures the keyword half: our bm25s index beside the vectors against
Milvus's own BM25 (a sparse field filled by a BM25 function over the same chunk text),
each fused with the same dense ranking by the retriever's own paper-level RRF, scored as
recall@5 / recall@10 / MRR of the gold papers on dev.jsonl.

Usage: python bench/vectorstore_bench.py [--from-index DIR] [--work DIR] [--synthetic 50000] [--hybrid]
  --from-index copies an existing seed index (e.g. a test session's) instead of embedding
  the seeds again (~2 min on 2 cores).
Writes bench/results/vectorstore.json and prints a table.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # as bench/scale.py: 2 shared cores
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from provenance import provenance  # noqa: E402  (bench/provenance.py)

from index.build import build_index  # noqa: E402
from rag import store  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.embedder import load_embedder  # noqa: E402
from rag.filters import active, fields_match, filter_fields  # noqa: E402
from rag.retrieval import HybridRetriever, _best_per_paper  # noqa: E402
from rag.vectorstores import milvus_store  # noqa: E402
from rag.vectorstores.faiss_store import FaissBackend  # noqa: E402

RESULTS = REPO / "bench" / "results"
DEV = Path("/work/shared/eval/dev.jsonl")
K = 60


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def timed(fn, items) -> dict:
    ms = []
    for item in items:
        t = time.perf_counter()
        fn(item)
        ms.append((time.perf_counter() - t) * 1000)
    return {"p50_ms": round(pct(ms, .5), 2), "p95_ms": round(pct(ms, .95), 2), "n": len(ms)}


def load() -> str:
    return os.popen("uptime").read().strip().split("load average:")[-1].strip()


# ---------------------------------------------------------------- seeds

def seed_indexes(work: Path, from_index: Path | None):
    """FAISS and Milvus Lite settings over the same seed build (Milvus re-uses the embeddings)."""
    faiss_home = work / "faiss"
    if store.current_build(faiss_home / "index") is None:
        if from_index:
            shutil.copytree(from_index, faiss_home / "index")
        else:
            build_index(load_settings(home=faiss_home), [REPO / "seeds"])
    milvus_home = work / "milvus"
    shutil.rmtree(milvus_home, ignore_errors=True)
    shutil.copytree(faiss_home / "index", milvus_home / "index")
    milvus = load_settings(home=milvus_home, index={"vector_uri": str(milvus_home / "vectors.db")})
    build_index(milvus, [REPO / "seeds"])
    return {"faiss": load_settings(home=faiss_home), "milvus": milvus}


def write_time(backend, stage: Path, emb: np.ndarray, fields) -> float:
    stage.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    section = backend.write(stage, emb, fields)
    seconds = time.perf_counter() - t
    backend.drop(stage, section)
    return round(seconds, 3)


def bench_seeds(settings: dict, questions: list[str], work: Path) -> dict:
    out = {}
    for name, s in settings.items():
        index = store.load_index(s.index_dir, s)
        embedder = load_embedder(s.embedder.model)
        retriever = HybridRetriever(index, embedder, s.retrieval)
        vecs = embedder.embed(questions * 3)
        source = next(iter(index.papers.values())).listings[0].source[:3]  # "000": one seed file
        emb = np.asarray(store.read_embeddings(index.path))
        by_id = index.papers
        fields = lambda lo, hi, by_id=by_id, index=index: [  # noqa: E731
            {"row": c.chunk_id, "paper_id": c.paper_id, **filter_fields(by_id[c.paper_id])}
            for c in index.chunks[lo:hi]]
        backend = FaissBackend() if name == "faiss" else milvus_store.MilvusBackend(s.index.vector_uri)
        out[name] = {
            "chunks": index.vectors.ntotal,
            "write_s": write_time(backend, work / f"{name}-stage" / "builds" / "w", emb, fields),
            "dense": timed(lambda v, index=index: index.vectors.search(v[None], K), vecs),
            "dense_filtered": timed(lambda v, index=index, source=source: index.vectors.search(
                v[None], K, {"source": source}), vecs),
            "hybrid": timed(lambda q, retriever=retriever: retriever.search(q, k=5), questions * 3),
        }
    return out


# ---------------------------------------------------------------- synthetic

def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((300, dim)).astype(np.float32)
    x = centres[rng.integers(0, 300, n)] + rng.standard_normal((n, dim)).astype(np.float32) * 0.6
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def bench_synthetic(n: int, work: Path, n_queries: int = 200) -> dict:
    emb = clustered(n, 384)
    cats = ["cs.cv", "cs.lg", "cs.cl"]
    fields = [{"row": r, "paper_id": f"p{r // 3}", "year": 2019 + (r // 3) % 5,
               "authors": f"\tauthor {r % 997}\t", "categories": f"\t{cats[(r // 3) % 3]}\t",
               "sources": f"\tsynthetic 2024-0{1 + r % 9}\t"} for r in range(n)]
    papers = {f["paper_id"]: f for f in fields}

    def rows_where(filters):  # as LoadedIndex.rows_where: per paper, then its rows
        keep = {pid for pid, f in papers.items() if fields_match(f, active(filters))}
        return np.array([f["row"] for f in fields if f["paper_id"] in keep], dtype=np.int64)

    rng = np.random.default_rng(1)
    q = emb[rng.choice(n, n_queries, replace=False)] + rng.standard_normal((n_queries, 384)).astype(np.float32) * 0.05
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    out = {}
    for name in ("faiss", "milvus"):
        build = work / f"synthetic-{name}" / "index" / "builds" / "b"
        shutil.rmtree(build.parent.parent.parent, ignore_errors=True)
        build.mkdir(parents=True)
        np.save(build / "embeddings.npy", emb)
        mm = np.load(build / "embeddings.npy", mmap_mode="r")
        backend = (FaissBackend() if name == "faiss"
                   else milvus_store.MilvusBackend(str(work / f"synthetic-{name}" / "vectors.db")))
        t = time.perf_counter()
        section = backend.write(build, mm, lambda lo, hi: [dict(f) for f in fields[lo:hi]])
        write_s = round(time.perf_counter() - t, 2)
        searcher = backend.open(build, section, mm, rows_where)
        out[name] = {
            "chunks": n, "write_s": write_s, "kind": section.get("kind") or section.get("index_type"),
            "dense": timed(lambda v, s=searcher: s.search(v[None], K), q),
            "dense_filtered_year": timed(lambda v, s=searcher: s.search(v[None], K, {"year": 2021}), q),
            "dense_filtered_year_category": timed(
                lambda v, s=searcher: s.search(v[None], K, {"year": 2021, "category": "cs.lg"}), q),
        }
        if name == "milvus":
            backend.drop(build, section)
    return out


# ---------------------------------------------------------------- hybrid: bm25s vs Milvus BM25

def milvus_bm25(settings, index) -> tuple[object, str]:
    """A Lite collection with the chunks' text and a BM25 sparse field (Milvus's own analyzer)."""
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    uri = milvus_store.resolve_uri(settings.index.vector_uri)
    c, name = milvus_store.client(uri), "askpapers_bench_bm25"
    if c.has_collection(name):
        c.drop_collection(name)
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("row", DataType.INT64, is_primary=True)
    schema.add_field("text", DataType.VARCHAR, max_length=8_000, enable_analyzer=True)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                 input_field_names=["text"], output_field_names=["sparse"]))
    params = c.prepare_index_params()
    params.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    c.create_collection(name, schema=schema, index_params=params)
    rows = [{"row": ch.chunk_id, "text": ch.embed_text(index.papers[ch.paper_id].title)} for ch in index.chunks]
    for lo in range(0, len(rows), 1000):
        c.insert(name, rows[lo:lo + 1000])
    c.load_collection(name)
    return c, name


def bench_hybrid(settings) -> dict:
    from rag.evaluation import score_one

    s = settings["milvus"]
    index = store.load_index(s.index_dir, s)
    embedder = load_embedder(s.embedder.model)
    retriever = HybridRetriever(index, embedder, s.retrieval)
    c, name = milvus_bm25(s, index)
    gold = [json.loads(line) for line in DEV.read_text().splitlines() if line.strip()]
    answerable = [g for g in gold if g["type"] != "unanswerable"]
    n = min(s.retrieval.candidates, len(index.chunks))

    def milvus_keyword(question: str) -> dict[str, float]:
        hits = c.search(name, data=[question], anns_field="sparse", limit=n,
                        search_params={"metric_type": "BM25"}, output_fields=[])[0]
        rows = [h["row"] for h in hits]
        return _best_per_paper(rows, [1.0 / (i + 1) for i in range(len(rows))], index)  # rank only

    def run(keyword) -> dict:
        scores, ms = [], []
        for g in answerable:
            t = time.perf_counter()
            dense = _best_per_paper(*retriever._dense(g["question"], n, {}), index)
            kw = keyword(g["question"])
            fused = retriever._fuse(dense, kw)[:10] if kw is not None else sorted(dense, key=dense.get, reverse=True)
            ms.append((time.perf_counter() - t) * 1000)
            pids = [p if isinstance(p, str) else p[0] for p in fused][:10]
            scores.append(score_one(g, {"retrieved": [index.papers[p].title for p in pids]}))
        return {m: round(float(np.mean([r[m] for r in scores])), 3) for m in ("recall@5", "recall@10", "mrr")} | {
            "p50_ms": round(pct(ms, .5), 2), "questions": len(scores)}

    result = {
        "dense only": run(lambda q: None),
        "dense + bm25s (ours)": run(lambda q: _best_per_paper(*retriever._keyword(q, n, {}), index)),
        "dense + Milvus BM25": run(milvus_keyword),
    }
    c.drop_collection(name)
    return result


# ---------------------------------------------------------------- report

def table(result: dict) -> str:
    lines = [f"{'corpus':<10} {'backend':<7} {'chunks':>7} {'write s':>8}  {'measure':<30} {'p50 ms':>8} {'p95 ms':>8}"]
    for corpus in ("seeds", "synthetic"):
        for backend, r in result.get(corpus, {}).items():
            for key, v in r.items():
                if isinstance(v, dict):
                    lines.append(f"{corpus:<10} {backend:<7} {r['chunks']:>7} {r['write_s']:>8}  "
                                 f"{key:<30} {v['p50_ms']:>8} {v['p95_ms']:>8}")
    if "hybrid" in result:
        lines.append(f"\n{'retrieval on dev.jsonl':<24} {'R@5':>6} {'R@10':>6} {'MRR':>6} {'p50 ms':>8}")
        for name, r in result["hybrid"].items():
            lines.append(f"{name:<24} {r['recall@5']:>6} {r['recall@10']:>6} {r['mrr']:>6} {r['p50_ms']:>8}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/askpapers-vectorstore-bench"))
    ap.add_argument("--from-index", type=Path, help="copy this seed index instead of building one")
    ap.add_argument("--synthetic", type=int, default=50_000, help="synthetic chunks (0: skip)")
    ap.add_argument("--hybrid", action="store_true", help="also compare bm25s with Milvus BM25")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    args.work.mkdir(parents=True, exist_ok=True)
    questions = [json.loads(line)["question"] for line in DEV.read_text().splitlines() if line.strip()]
    result = {"load_before": load()}
    settings = seed_indexes(args.work, args.from_index)
    result["seeds"] = bench_seeds(settings, questions, args.work)
    if args.hybrid:
        result["hybrid"] = bench_hybrid(settings)
    if args.synthetic:
        result["synthetic"] = bench_synthetic(args.synthetic, args.work)
    result |= {"load_after": load(), "cores": os.cpu_count(), "omp_threads": os.environ["OMP_NUM_THREADS"],
               "k": K, "note": "synthetic = random clustered vectors and fields, not real papers"}
    print(table(result))
    print(f"\nload average before: {result['load_before']}; after: {result['load_after']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "vectorstore.json").write_text(json.dumps({**result, "provenance": provenance(settings)}, indent=1) + "\n")
    print(f"wrote {RESULTS / 'vectorstore.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
