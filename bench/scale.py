"""Scale benchmark: askpapers' index at 10K, 100K and 1M chunks of SYNTHETIC text and vectors.

The corpora are synthetic, built from the seeds: each synthetic paper takes one seed
paper's sentences, shuffles the words inside each sentence, and gives every chunk the
embedding of one of that seed paper's real chunks mixed with another real chunk and
Gaussian noise, normalised (so vectors cluster like real ones). Embedding real text runs
~20-40 chunks/s on this machine (8+ hours for 1M chunks), hence synthetic vectors at
every size. Queries: 10-word shuffles of a seed paper's sentences, each with a noisy copy
of one of its real chunk vectors.

Real code paths: a build's own stage and write path (index.staging.Stage, then
rag.publish.write_build, vectors by rag.vectorstores.faiss_store) builds each corpus, and a fresh process runs rag.store.load_index and rag.retrieval.HybridRetriever with a
FAKE embedder (FakeQueryEmbedder) that returns each query's stored vector. Measured:
build time (vector index and keyword index separately), size on disk, resident memory
(VmRSS of that process after loading, and after the queries), latency p50/p95 of dense,
keyword and hybrid retrieval, and recall@10 of the dense index against exact search.
Other index kinds at the same size are timed by direct FAISS calls on the same vectors.

Usage: python bench/scale.py [--sizes 10000,100000,1000000] [--work DIR] [--queries 200]
       python bench/scale.py --plot-only     (redraw the PNG from the JSON)
Writes bench/results/scale.json and bench/results/scale.png.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

# One OpenMP thread unless told otherwise: on 2 shared cores, FAISS' spinning threads slowed
# IVF training 6x when other processes were busy (measured). Recorded in the results.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from provenance import provenance  # noqa: E402  (bench/provenance.py)

from index.staging import Stage, new_stage  # noqa: E402
from rag import publish, store  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.types import Chunk, Paper  # noqa: E402
from rag.vectorstores import faiss_store as vectors  # noqa: E402

RESULTS = REPO / "bench" / "results"
CHUNKS_PER_PAPER = 3
NOISE, QUERY_NOISE = 0.35, 0.5


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident set in MB: VmRSS, or its RssAnon / RssFile (mapped files) part."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---------------------------------------------------------------- synthetic corpus

class Seeds:
    """The seed papers' sentences and real chunk embeddings that synthetic corpora are made of."""

    def __init__(self, home: Path):
        settings = load_settings(home=home)
        if store.current_build(settings.index_dir) is None:
            from index.build import build_index
            build_index(settings)
        index = store.load_index(settings.index_dir)
        emb = np.asarray(store.read_embeddings(index.path), dtype=np.float32)
        self.papers = [p for p in index.papers.values() if index.chunks_of(p.paper_id)]
        self.sentences = [[s for s in re.split(r"(?<=[.!?])\s+", p.abstract) if len(s.split()) > 3]
                          or [p.abstract] for p in self.papers]
        self.rows = [[c.chunk_id for c in index.chunks_of(p.paper_id)] for p in self.papers]
        self.emb = emb

    def vectors(self, bases: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
        """Noisy mixtures of real chunk vectors: base chunk + up to 0.5 of another + noise."""
        other = rng.integers(0, len(self.emb), len(bases))
        mix = rng.uniform(0, 0.5, (len(bases), 1)).astype(np.float32)
        v = self.emb[bases] + mix * self.emb[other]
        v += rng.standard_normal(v.shape, dtype=np.float32) * (noise / np.sqrt(v.shape[1]))
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def _shuffled(sentence: str, rnd: random.Random) -> str:
    words = sentence.split()
    rnd.shuffle(words)
    return " ".join(words)


def synthetic_corpus(seeds: Seeds, n_chunks: int, seed: int = 0):
    """SYNTHETIC papers, chunks and vectors (n_chunks x dim), labelled as such in every title."""
    rnd, rng = random.Random(seed), np.random.default_rng(seed)
    papers, chunks, bases = [], [], []
    for i in range(-(-n_chunks // CHUNKS_PER_PAPER)):
        s = rnd.randrange(len(seeds.papers))
        title = f"[synthetic {i}] " + _shuffled(seeds.papers[s].title, rnd)
        texts = []
        for _ in range(min(CHUNKS_PER_PAPER, n_chunks - len(chunks))):
            picked = rnd.sample(seeds.sentences[s], min(3, len(seeds.sentences[s])))
            texts.append(" ".join(_shuffled(x, rnd) for x in picked))
            bases.append(rnd.choice(seeds.rows[s]))
        abstract, pid, start = " ".join(texts), f"syn{i:07d}", 0
        for t in texts:
            chunks.append(Chunk(len(chunks), pid, start, start + len(t), t))
            start += len(t) + 1
        papers.append(Paper(pid, title, abstract, year=2026))
    emb = np.empty((n_chunks, seeds.emb.shape[1]), dtype=np.float32)
    bases = np.asarray(bases)
    for lo in range(0, n_chunks, 100_000):
        emb[lo:lo + 100_000] = seeds.vectors(bases[lo:lo + 100_000], rng, NOISE)
    return papers, chunks, emb


def synthetic_queries(seeds: Seeds, n: int, seed: int = 1) -> list[dict]:
    """Question-like word shuffles of one seed paper's sentences, each with a noisy real vector."""
    rnd, rng = random.Random(seed), np.random.default_rng(seed)
    out, bases = [], []
    for _ in range(n):
        s = rnd.randrange(len(seeds.papers))
        words = " ".join(seeds.sentences[s]).split()
        out.append({"text": " ".join(rnd.sample(words, min(10, len(words))))})
        bases.append(rnd.choice(seeds.rows[s]))
    for q, v in zip(out, seeds.vectors(np.asarray(bases), rng, QUERY_NOISE), strict=True):
        q["vector"] = v.tolist()
    return out


# ---------------------------------------------------------------- building

def build_corpus(seeds: Seeds, n: int, index_dir: Path, ann: str) -> dict:
    """Write one synthetic corpus through a build's own stage (index.staging.Stage: collect,
    plan, embed, assemble, publish) with the synthetic chunks and vectors standing in for
    the chunker and the embedder; return its build timings and sizes."""
    t0 = time.perf_counter()
    papers, chunks, emb = synthetic_corpus(seeds, n)
    gen_s = time.perf_counter() - t0
    timed: dict[str, float] = {}
    make, write_bm25 = vectors.make_vector_index, publish._write_bm25

    def timed_make(*a, **kw):  # measure the vector index inside the real write_build
        t, c = time.perf_counter(), time.process_time()
        out = make(*a, **kw)
        timed["vector_index_s"], timed["vector_index_cpu_s"] = time.perf_counter() - t, time.process_time() - c
        return out

    def timed_bm25(*a, **kw):
        t, c = time.perf_counter(), time.process_time()
        write_bm25(*a, **kw)
        timed["keyword_index_s"], timed["keyword_index_cpu_s"] = time.perf_counter() - t, time.process_time() - c

    vectors.make_vector_index, publish._write_bm25 = timed_make, timed_bm25
    shutil.rmtree(index_dir, ignore_errors=True)
    settings = load_settings()
    size = settings.index.embed_batch
    by_paper: dict[str, list[Chunk]] = {}
    for c in chunks:
        by_paper.setdefault(c.paper_id, []).append(c)
    t1 = time.perf_counter()
    try:
        stage = Stage(new_stage(index_dir), previous=None)
        stage.collect(papers, lambda: {"skipped": []})
        stage.plan(settings, lambda page, _: [c for p in page for c in by_paper[p.paper_id]])
        # Chunks are numbered in paper_id order, the order they were made in: batch j is rows j*size...
        n_batches, _ = stage.embed(size, lambda batches: ((j, emb[j * size:(j + 1) * size])
                                                          for j, _ in batches))
        staged = stage.assemble(size, n_batches, emb.shape[1])
        manifest = {**store.shaping_settings(settings, emb.shape[1]), "synthetic": True,
                    "sources": ["bench/scale.py synthetic corpus"], "paper_hashes": stage.paper_hashes()}
        stage_s, t2 = time.perf_counter() - t1, time.perf_counter()
        manifest, build = stage.publish(index_dir, staged, manifest, vectors.FaissBackend(ann))
    finally:
        vectors.make_vector_index, publish._write_bm25 = make, write_bm25
    files = manifest["files"]
    return {"chunks": n, "papers": len(papers), "generate_s": round(gen_s, 1),
            "stage_s": round(stage_s, 1), "write_build_s": round(time.perf_counter() - t2, 1),
            **{k: round(v, 1) for k, v in timed.items()}, "ann": manifest["vector_store"],
            "disk_mb": round(store.size_on_disk(build) / 2**20, 1),
            "disk_mb_by_part": {part: round(sum(e["bytes"] for f, e in files.items()
                                                if f.split("/")[0] == part) / 2**20, 1)
                                for part in sorted({f.split("/")[0] for f in files})}}, emb


def exact_top(emb: np.ndarray, queries: np.ndarray, k: int = 10) -> np.ndarray:
    """Exact inner-product top-k row ids (ground truth), by blocks."""
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    for lo in range(0, len(emb), 200_000):
        s = queries @ emb[lo:lo + 200_000].T
        part = np.argpartition(-s, k, axis=1)[:, :k]
        best_s = np.hstack([best_s, np.take_along_axis(s, part, 1)])
        best_i = np.hstack([best_i, part + lo])
        keep = np.argsort(-best_s, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_i, keep, 1)
    return best_i


def recall_at_10(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(f[:10]) & set(e[:10])) / 10 for f, e in zip(found, exact, strict=True)]))


def other_kind(emb: np.ndarray, kind: str, queries: np.ndarray, exact: np.ndarray, work: Path) -> dict:
    """Build, save, reload and search another index kind over the same vectors (direct FAISS)."""
    import faiss

    t, c = time.perf_counter(), time.process_time()
    index = vectors.make_vector_index(emb, kind)
    build_s, build_cpu_s = time.perf_counter() - t, time.process_time() - c
    path = work / f"other-{kind}.faiss"
    faiss.write_index(index, str(path))
    np.save(work / "other.npy", emb)
    index = vectors.FaissSearcher(faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC),
                                  np.load(work / "other.npy", mmap_mode="r"))
    times, found = [], []
    for q in queries:
        t = time.perf_counter()
        found.append(index.search(q[None, :], 60)[1][0])
        times.append((time.perf_counter() - t) * 1000)
    return {"kind": kind, **vectors.describe(index.index),
            "vector_index_s": round(build_s, 1), "vector_index_cpu_s": round(build_cpu_s, 1), "file_mb": round(path.stat().st_size / 2**20, 1),
            "dense_p50_ms": round(pct(times, .5), 2), "dense_p95_ms": round(pct(times, .95), 2),
            "recall@10": round(recall_at_10(np.asarray(found), exact), 4)}


# ---------------------------------------------------------------- measuring (fresh process)

class FakeQueryEmbedder:
    """A FAKE embedder: returns the stored synthetic vector of each known query text."""

    def __init__(self, queries: list[dict]):
        self._vectors = {q["text"]: np.asarray(q["vector"], dtype=np.float32) for q in queries}

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return np.stack([self._vectors[t] for t in texts])

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def probe(index_dir: Path, query_file: Path, exact_file: Path) -> dict:
    """Load the index in this (fresh) process and time retrieval; returns the measurements."""
    import faiss  # noqa: F401  (library imports belong to the baseline, not the index)

    from rag.config import RetrievalSettings
    from rag.retrieval import HybridRetriever

    store.import_bm25s()
    queries, exact = json.loads(query_file.read_text()), np.load(exact_file)
    base = rss_mb()
    t = time.perf_counter()
    index = store.load_index(index_dir)
    load_s, loaded = time.perf_counter() - t, rss_mb()
    retriever = HybridRetriever(index, FakeQueryEmbedder(queries), RetrievalSettings())
    n = min(retriever.cfg.candidates, len(index.chunks))
    for q in queries[:5]:
        retriever.search(q["text"])
    lat: dict[str, list[float]] = {"dense": [], "keyword": [], "hybrid": []}
    for q in queries:
        text = q["text"]
        for name, call in (("dense", lambda text=text: retriever._dense(text, n, {})),
                           ("keyword", lambda text=text: retriever._keyword(text, n, {})),
                           ("hybrid", lambda text=text: retriever.search(text))):
            t = time.perf_counter()
            call()
            lat[name].append((time.perf_counter() - t) * 1000)
    vecs = np.asarray([q["vector"] for q in queries], dtype=np.float32)
    found = np.vstack([index.vectors.search(v[None, :], 10)[1] for v in vecs])
    out = {"load_s": round(load_s, 1), "rss_baseline_mb": round(base),
           "rss_loaded_mb": round(loaded), "rss_after_queries_mb": round(rss_mb()),
           "rss_after_queries_anon_mb": round(rss_mb("RssAnon")),
           "rss_after_queries_file_mb": round(rss_mb("RssFile")),
           "recall@10": round(recall_at_10(found, exact), 4)}
    for name, values in lat.items():
        out[f"{name}_p50_ms"], out[f"{name}_p95_ms"] = round(pct(values, .5), 2), round(pct(values, .95), 2)
    return out


def run_probe(index_dir: Path, query_file: Path, exact_file: Path) -> dict:
    cmd = [sys.executable, __file__, "--probe", str(index_dir), str(query_file), str(exact_file)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- report

def table(rows: list[dict]) -> str:
    cols = [("chunks", "chunks", "d"), ("index", "kind", "s"), ("vec build s", "vector_index_s", ".1f"),
            ("bm25 build s", "keyword_index_s", ".1f"), ("disk MB", "disk_mb", ".0f"),
            ("RSS MB", "rss_loaded_mb", "d"), ("RSS after q MB", "rss_after_queries_mb", "d"),
            ("dense p50/p95 ms", "dense", "pair"), ("keyword p50/p95 ms", "keyword", "pair"),
            ("hybrid p50/p95 ms", "hybrid", "pair"), ("recall@10", "recall@10", ".3f")]
    head = "| " + " | ".join(c for c, _, _ in cols) + " |"
    lines = [head, "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for _, key, fmt in cols:
            if fmt == "pair":
                cells.append(f"{r[key + '_p50_ms']:.1f} / {r[key + '_p95_ms']:.1f}")
            elif fmt == "s":
                cells.append(str(r[key]))
            else:
                cells.append(format(r[key], fmt))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    n = [r["chunks"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for name in ("dense", "keyword", "hybrid"):
        a.plot(n, [r[f"{name}_p50_ms"] for r in rows], "o-", label=f"{name} p50")
    for o in result.get("other_kinds", []):
        a.plot(o["chunks"], o["dense_p50_ms"], "x", ms=9, label=f"dense {o['kind']} p50 ({o['chunks']:,})")
    a.axhline(50, ls=":", c="grey", label="target 50 ms")
    a.set(xscale="log", yscale="log", xlabel="chunks (synthetic)", ylabel="ms per query",
          title="Retrieval latency")
    a.legend(fontsize=7)
    b.plot(n, [r["rss_loaded_mb"] for r in rows], "o-", label="RSS after load")
    b.plot(n, [r["rss_after_queries_mb"] for r in rows], "s--", label="RSS after queries")
    b.plot(n, [r["rss_after_queries_anon_mb"] for r in rows], "v-.",
           label="RSS after queries, anonymous (no mapped files)")
    b.plot(n, [r["disk_mb"] for r in rows], "^:", label="size on disk")
    b.axhline(2048, ls=":", c="grey", label="target 2 GB")
    b.set(xscale="log", yscale="log", xlabel="chunks (synthetic)", ylabel="MB", title="Memory and disk")
    b.legend(fontsize=7)
    fig.suptitle("askpapers at scale, synthetic corpora (bench/scale.py, 2 cores)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--others", default="10000:ivfpq,100000:hnsw,100000:ivfpq,1000000:flat",
                    help="size:kind pairs timed by direct FAISS calls besides the auto build")
    ap.add_argument("--home", default="/tmp/askpapers-bench-home", help="holds the seed index")
    ap.add_argument("--work", default="/tmp/askpapers-scale", help="where the corpora are built")
    ap.add_argument("--out", default=str(RESULTS / "scale.json"))
    ap.add_argument("--plot-only", action="store_true")
    ap.add_argument("--keep-other-sizes", action="store_true",
                    help="keep the rows of sizes not run now from the existing --out JSON")
    ap.add_argument("--probe", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        print(json.dumps(probe(*map(Path, args.probe))))
        return 0
    if args.plot_only:
        plot(json.loads(Path(args.out).read_text()), Path(args.out).with_suffix(".png"))
        return 0
    seeds, work = Seeds(Path(args.home)), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    queries = synthetic_queries(seeds, args.queries)
    (work / "queries.json").write_text(json.dumps(queries))
    qv = np.asarray([q["vector"] for q in queries], dtype=np.float32)
    result = {"synthetic": True, "queries": len(queries), "cores": os.cpu_count(),
              "omp_threads": int(os.environ["OMP_NUM_THREADS"]),
              "load_average_at_start": os.getloadavg()[0], "rows": [], "other_kinds": []}
    sizes = [int(x) for x in args.sizes.split(",")]
    others = [(int(size), kind) for size, kind in (x.split(":") for x in args.others.split(",") if x)]
    if args.keep_other_sizes and Path(args.out).exists():
        old = json.loads(Path(args.out).read_text())
        result["rows"] = [r for r in old["rows"] if r["chunks"] not in sizes]
        result["other_kinds"] = [o for o in old["other_kinds"]
                                 if (o["chunks"], o["kind"]) not in others or o["chunks"] not in sizes]
    for n in sizes:
        built, emb = build_corpus(seeds, n, work / f"index-{n}", "auto")
        exact = exact_top(emb, qv)
        np.save(work / "exact.npy", exact)
        row = {**built, "kind": built["ann"]["kind"],
               **run_probe(work / f"index-{n}", work / "queries.json", work / "exact.npy")}
        row["load_average"] = os.getloadavg()[0]  # 1-minute load after this size's probe
        result["rows"].append(row)
        print(json.dumps(row), flush=True)
        for size, kind in others:
            if size == n and kind != row["kind"]:
                other = {"chunks": n, **other_kind(emb, kind, qv, exact, work)}
                result["other_kinds"].append(other)
                print(json.dumps(other), flush=True)
        del emb
        for part in ("rows", "other_kinds"):
            result[part].sort(key=lambda r: r["chunks"])
        Path(args.out).write_text(json.dumps({**result, "provenance": provenance()}, indent=1) + "\n")
    print(table(result["rows"]))
    plot(result, Path(args.out).with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
