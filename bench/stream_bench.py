"""Streaming ingestion benchmark: peak memory of reading a large arXiv-style JSONL.

SYNTHETIC corpora: arXiv-snapshot JSON Lines whose abstracts are 3-9 seed sentences
(~1 KB, like real arXiv abstracts), with every 10th paper repeated in a second file under
another date (so de-duplication and listing merges are exercised). Each measurement runs
in a fresh process and reports its peak resident set (VmHWM):

  collect   the build's step 1 (index.staging.Stage.collect): stream every line into the
            stage's records.sqlite, merged by paper id, over a multi-GB file.
  in-memory the pre-streaming way, index.readers.read_sources (all papers in a list),
            on smaller files, for contrast.
  build     a whole build_index (collect, plan, embed in batches, assemble, FAISS, BM25)
            with a FAKE embedder (random unit vectors; the real MiniLM runs ~30 chunks/s
            here) on a smaller corpus; peak RSS before the vector/keyword indexes are
            made, and at the end.

Usage: python bench/stream_bench.py [--collect-mb 2048] [--memory-mb 100,200]
       [--build-mb 25] [--work DIR] [--out bench/results/stream.json]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from provenance import provenance  # noqa: E402  (bench/provenance.py)

RESULTS = REPO / "bench" / "results"


def status(field: str) -> float:
    """A /proc/self/status field in MB (VmHWM: peak resident set; VmRSS, RssAnon: now)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def seed_sentences() -> list[str]:
    import re

    from index.readers import read_sources

    text = " ".join(p.abstract for p in read_sources([REPO / "seeds"]).papers)
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if 40 < len(s) < 400]


def write_corpus(folder: Path, target_mb: float, seed: int = 0) -> list[Path]:
    """Two JSONL files totalling about `target_mb`: every 10th paper is in both."""
    folder.mkdir(parents=True, exist_ok=True)
    main, dupes = folder / "arxiv-a.jsonl", folder / "arxiv-b.jsonl"
    rnd, sentences = random.Random(seed), seed_sentences()
    written, i = 0, 0
    with main.open("w") as a, dupes.open("w") as b:
        while written < target_mb * 2**20:
            row = {"id": f"{i:07d}", "title": f"Synthetic paper {i}: " + rnd.choice(sentences)[:90],
                   "abstract": " ".join(rnd.sample(sentences, rnd.randint(3, 9))),
                   "authors": f"Author {i % 997}, Author {i % 1009} and Author {i % 983}",
                   "categories": rnd.choice(["cs.LG", "cs.CL cs.LG", "cs.CV", "stat.ML"]),
                   "update_date": f"20{18 + i % 7}-0{1 + i % 9}-1{i % 10}"}
            line = json.dumps(row) + "\n"
            a.write(line)
            written += len(line)
            if i % 10 == 0:
                b.write(json.dumps({**row, "update_date": "2025-01-01"}) + "\n")
                written += len(line)
            i += 1
    return [main, dupes]


# ---------------------------------------------------------------- measured in a fresh process

def measure_collect(files: list[Path], stage_dir: Path) -> dict:
    from index.readers import ReadReport, iter_papers
    from index.staging import Stage

    shutil.rmtree(stage_dir, ignore_errors=True)
    stage_dir.mkdir(parents=True)
    base, t = status("VmRSS"), time.perf_counter()
    stage = Stage(stage_dir, None)
    read = ReadReport()
    got = stage.collect(iter_papers(files, read), lambda: {"skipped": read.skipped})
    stage.close()
    return {"papers": got["papers"], "seconds": round(time.perf_counter() - t, 1),
            "rss_before_mb": base, "peak_rss_mb": status("VmHWM")}


def measure_in_memory(files: list[Path]) -> dict:
    from index.readers import read_sources

    base, t = status("VmRSS"), time.perf_counter()
    papers = read_sources(files).papers
    return {"papers": len(papers), "seconds": round(time.perf_counter() - t, 1),
            "rss_before_mb": base, "peak_rss_mb": status("VmHWM")}


class FakeEmbedder:
    """A FAKE embedder: random unit vectors, so a large build's memory can be measured
    without hours of real embedding."""

    dim, max_tokens = 384, 256

    def __init__(self):
        import numpy as np
        self.np, self.rng = np, np.random.default_rng(0)

    def embed(self, texts, batch_size=64):
        v = self.rng.standard_normal((len(texts), self.dim)).astype(self.np.float32)
        return v / self.np.linalg.norm(v, axis=1, keepdims=True)

    def count_tokens(self, text):
        return len(text.split())


def measure_build(files: list[Path], home: Path) -> dict:
    import index.build
    import index.staging
    import index.steps
    from rag.config import load_settings

    fake, seen = FakeEmbedder(), {}
    index.build.load_embedder = index.steps.load_embedder = lambda model: fake
    real_write = index.staging.write_build

    def write_build(*a, **kw):  # the peak so far: reading, planning, embedding, assembling
        seen["peak_before_indexes_mb"] = status("VmHWM")
        return real_write(*a, **kw)

    index.staging.write_build = write_build
    shutil.rmtree(home, ignore_errors=True)
    base = status("VmRSS")
    report = index.build.build_index(load_settings(home=home), files)
    return {"papers": report.papers, "chunks": report.chunks, "batches": report.batches,
            "seconds": {k: round(v, 1) for k, v in report.seconds.items()},
            "rss_before_mb": base, **seen, "peak_rss_mb": status("VmHWM")}


def run(kind: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--measure", kind, *args],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def file_mb(files: list[Path]) -> float:
    return round(sum(f.stat().st_size for f in files) / 2**20, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collect-mb", type=float, default=2048)
    ap.add_argument("--memory-mb", default="100,200", help="corpus sizes read the in-memory way")
    ap.add_argument("--build-mb", type=float, default=25, help="corpus of the whole build")
    ap.add_argument("--work", default="/tmp/askpapers-stream")
    ap.add_argument("--out", default=str(RESULTS / "stream.json"))
    ap.add_argument("--measure", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        kind, *rest = args.measure
        files = [Path(f) for f in rest[1:]]
        fn = {"collect": lambda: measure_collect(files, Path(rest[0])),
              "memory": lambda: measure_in_memory(files),
              "build": lambda: measure_build(files, Path(rest[0]))}[kind]
        print(json.dumps(fn()))
        return 0
    work = Path(args.work)
    result: dict = {"synthetic": True, "in_memory": [], "load_average_at_start": os.getloadavg()[0]}
    for mb in map(float, args.memory_mb.split(",")):
        files = write_corpus(work / f"mem-{mb:.0f}", mb)
        result["in_memory"].append({"file_mb": file_mb(files), **run("memory", "-", *map(str, files))})
        print(json.dumps(result["in_memory"][-1]), flush=True)
    files = write_corpus(work / "build", args.build_mb)
    result["build"] = {"file_mb": file_mb(files), **run("build", str(work / "build-home"), *map(str, files))}
    print(json.dumps(result["build"]), flush=True)
    files = write_corpus(work / "collect", args.collect_mb)
    result["collect"] = {"file_mb": file_mb(files), **run("collect", str(work / "stage"), *map(str, files))}
    print(json.dumps(result["collect"]), flush=True)
    Path(args.out).write_text(json.dumps({**result, "provenance": provenance()}, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
