"""Ray build benchmark: single-process vs Ray-distributed index build, times and equality.

Corpora: (a) the real seeds; (b) a SYNTHETIC arXiv-style JSON Lines corpus of ~50K chunks
built from the seeds (each synthetic paper = one seed paper's abstract with the words
shuffled inside every sentence, titled "[synthetic N] ..."), written in shards.
Embedding runs ~20-40 chunks/s on this 2-core machine, so full builds of (b) would take
~30 min each: the full 50K corpus is measured for reading + chunking only (both ways,
chunks compared), and full builds run on a deterministic subset (its first papers,
~5K chunks); the 50K build time is extrapolated from the subset's embedding rate.

Ray runs in-process on this machine (`--ray` without an address: 127.0.0.1, one embedding
actor per CPU, each with one torch thread); the single-process build uses all cores.
Single-process embedding times exclude model loading (loaded once beforehand); Ray's
include starting the actors and loading the model in each.

Usage: python bench/ray_build_bench.py [--subset-chunks 5000] [--chunks 50000] [--ray ADDRESS]
Writes bench/results/ray_build.json.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from provenance import provenance  # noqa: E402  (bench/provenance.py)

from index.build import build_index  # noqa: E402
from index.chunking import chunk_papers  # noqa: E402
from index.readers import ReadReport, expand_sources, read_sources  # noqa: E402
from index.staging import merge_papers  # noqa: E402
from rag import store  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.embedder import load_embedder  # noqa: E402

RESULTS = REPO / "bench" / "results"
SHARDS = 8


def load() -> float:
    return os.getloadavg()[0]


# ---------------------------------------------------------------- synthetic corpus

def synthetic_papers(n_chunks: int, settings, seed: int = 0) -> list[tuple[dict, int]]:
    """SYNTHETIC arXiv records with the chunk count of the seed paper each was made from."""
    seeds = read_sources([REPO / "seeds"]).papers
    counts: dict[str, int] = {}
    for c in chunk_papers(seeds, settings.chunking):
        counts[c.paper_id] = counts.get(c.paper_id, 0) + 1
    rnd = random.Random(seed)
    out, total = [], 0
    while total < n_chunks:
        s = seeds[rnd.randrange(len(seeds))]
        shuffled = []
        for sentence in re.split(r"(?<=[.!?])\s+", s.abstract):
            words = sentence.split()
            rnd.shuffle(words)
            shuffled.append(" ".join(words))
        i = len(out)
        title_words = s.title.split()
        rnd.shuffle(title_words)
        record = {"id": f"syn.{i:06d}", "title": f"[synthetic {i}] " + " ".join(title_words),
                  "abstract": " ".join(shuffled), "authors": "Synthetic Author",
                  "categories": "cs.LG", "update_date": "2026-01-01"}
        out.append((record, counts.get(s.paper_id, 0)))
        total += counts.get(s.paper_id, 0)
    return out


def write_jsonl(records: list[dict], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(SHARDS):
        with (folder / f"part-{k:02d}.jsonl").open("w", encoding="utf-8") as f:
            for r in records[k::SHARDS]:
                f.write(json.dumps(r) + "\n")
    return folder


# ---------------------------------------------------------------- measuring

def timed_build(settings, source: Path, ray_address: str | None) -> dict:
    t = time.perf_counter()
    r = build_index(settings, [source], full=True, ray_address=ray_address)
    wall = time.perf_counter() - t
    return {"mode": "ray" if ray_address else "single", "papers": r.papers, "chunks": r.chunks,
            "wall_s": round(wall, 1), "ray_start_stop_s": round(wall - r.seconds["total"], 1),
            "read_chunk_s": round(r.seconds["read_chunk"], 1),
            "embed_s": round(r.seconds["embed"], 1), "write_s": round(r.seconds["write"], 1),
            "embed_chunks_per_s": round(r.embedded / r.seconds["embed"], 1),
            "load_1min": round(load(), 2)}


def compare(a, b) -> dict:
    ba, bb = store.current_build(a.index_dir), store.current_build(b.index_dir)
    pa, ca = store.read_records(ba)
    pb, cb = store.read_records(bb)
    diff = float(np.abs(store.read_embeddings(ba) - store.read_embeddings(bb)).max())
    return {"papers_equal": dict(pa) == dict(pb), "chunks_equal": list(ca) == list(cb),
            "max_abs_vector_diff": diff}


def build_pair(name: str, source: Path, work: Path, ray_address: str, workers: int) -> list[dict]:
    single = load_settings(home=work / f"{name}-single")
    ray = load_settings(home=work / f"{name}-ray")
    rows = [timed_build(single, source, None), timed_build(ray, source, ray_address)]
    eq = compare(single, ray)
    for row, n in zip(rows, (1, workers), strict=True):
        row.update(corpus=name, workers=n, **eq,
                   per_worker_chunks_per_s=round(row["embed_chunks_per_s"] / n, 1))
    return rows


def read_chunk_pair(source: Path, settings, ray_address: str) -> dict:
    """Reading + chunking only, on the whole corpus, both ways; chunks compared."""
    from index.ray_build import ray_steps

    t = time.perf_counter()
    papers = read_sources([source]).papers
    chunks = chunk_papers(papers, settings.chunking)
    single_s = time.perf_counter() - t
    t = time.perf_counter()
    with ray_steps(ray_address) as steps:
        t_in = time.perf_counter()
        ray_papers = merge_papers(steps.read(expand_sources([source]), ReadReport()))
        ray_chunks = steps.chunk(ray_papers, settings.chunking)
        ray_s = time.perf_counter() - t_in
    ray_wall = time.perf_counter() - t
    return {"papers": len(papers), "chunks": len(chunks),
            "single_read_chunk_s": round(single_s, 1), "ray_read_chunk_s": round(ray_s, 1),
            "ray_read_chunk_with_start_stop_s": round(ray_wall, 1),
            "papers_equal": [p.to_dict() for p in papers] == [p.to_dict() for p in ray_papers],
            "chunks_equal": chunks == ray_chunks, "load_1min": round(load(), 2)}


def print_table(rows: list[dict]) -> None:
    cols = ["corpus", "mode", "workers", "papers", "chunks", "wall_s", "ray_start_stop_s",
            "read_chunk_s", "embed_s", "write_s", "embed_chunks_per_s",
            "per_worker_chunks_per_s", "chunks_equal", "max_abs_vector_diff", "load_1min"]
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(f"{r[c]:.2e}" if c == "max_abs_vector_diff" else str(r[c]) for c in cols))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=50_000, help="synthetic corpus size")
    ap.add_argument("--subset-chunks", type=int, default=5_000, help="synthetic builds measured")
    ap.add_argument("--ray", default="local", help="Ray address; default: a local Ray")
    ap.add_argument("--out", default=str(RESULTS / "ray_build.json"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="askpapers-raybench-"))
    settings = load_settings(home=work / "x")
    t = time.perf_counter()
    load_embedder(settings.embedder.model)  # single-process times are warm
    model_load_s = time.perf_counter() - t
    workers = os.cpu_count() if args.ray == "local" else None
    if workers is None:
        import ray
        ray.init(address=args.ray, log_to_driver=False)
        workers = int(ray.cluster_resources().get("CPU", 1))
        ray.shutdown()

    records = synthetic_papers(args.chunks, settings)
    full = write_jsonl([r for r, _ in records], work / "synthetic_full")
    subset, n = [], 0
    for r, c in records:
        if n >= args.subset_chunks:
            break
        subset.append(r)
        n += c
    sub = write_jsonl(subset, work / "synthetic_subset")

    rows = build_pair("seeds", REPO / "seeds", work, args.ray, workers)
    rows += build_pair(f"synthetic {len(subset)} papers (subset)", sub, work, args.ray, workers)
    print_table(rows)
    whole = read_chunk_pair(full, settings, args.ray)
    print(f"\nsynthetic full corpus, read + chunk only: {json.dumps(whole)}")

    sub_single, sub_ray = rows[2], rows[3]
    extrapolated = {
        "chunks": whole["chunks"],
        "single_build_s": round(whole["single_read_chunk_s"] + whole["chunks"]
                                / sub_single["embed_chunks_per_s"] + sub_single["write_s"]
                                * whole["chunks"] / sub_single["chunks"], 0),
        "ray_build_s": round(whole["ray_read_chunk_with_start_stop_s"] + whole["chunks"]
                             / sub_ray["embed_chunks_per_s"] + sub_ray["write_s"]
                             * whole["chunks"] / sub_ray["chunks"], 0),
        "how": "full-corpus read+chunk time measured; embedding at the subset's measured "
               "chunks/s; write time scaled linearly from the subset",
    }
    print(f"extrapolated full synthetic build: {json.dumps(extrapolated)}")
    result = {"synthetic": "SYNTHETIC corpus: seed abstracts with words shuffled per sentence",
              "machine": f"{os.cpu_count()} cores, shared (load_1min per row)",
              "ray_address": args.ray, "ray_workers": workers,
              "single_model_load_s_excluded": round(model_load_s, 1),
              "builds": rows, "synthetic_full_read_chunk": whole,
              "synthetic_full_build_extrapolated": extrapolated}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({**result, "provenance": provenance(settings)}, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
