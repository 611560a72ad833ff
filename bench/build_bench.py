"""Index build benchmark on the real seeds: cold, no-change and one-paper-changed rebuilds,
size on disk, and the build's embedding throughput against raw SentenceTransformer.encode.

Usage: python bench/build_bench.py [--out bench/results/build.json]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from provenance import provenance  # noqa: E402  (bench/provenance.py)

from index.build import build_index  # noqa: E402
from rag import store  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.embedder import load_embedder  # noqa: E402


def _raw_encode_rate(settings) -> tuple[float, int]:
    """Chunks per second of plain SentenceTransformer.encode on the index's own chunk texts."""
    index = store.load_index(settings.index_dir, settings)
    texts = [c.embed_text(index.papers[c.paper_id].title) for c in index.chunks]
    model = load_embedder(settings.embedder.model)._model
    t = time.perf_counter()
    model.encode(texts, batch_size=settings.embedder.batch_size, normalize_embeddings=True)
    return len(texts) / (time.perf_counter() - t), len(texts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "build.json"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="askpapers-bench-"))
    settings = load_settings(home=work / "home")
    seeds = work / "seeds"
    shutil.copytree(REPO / "seeds", seeds)
    load_embedder(settings.embedder.model)  # model load is not build time

    cold = build_index(settings, [seeds], full=True)
    same = build_index(settings, [seeds])
    page = seeds / "000_3e40f1ba127451b8.txt"
    page.write_text(page.read_text().replace("Notably, the 1.4B", "Remarkably, the 1.4B"))
    one = build_index(settings, [seeds])
    size = store.size_on_disk(store.current_build(settings.index_dir))
    raw_rate, n = _raw_encode_rate(settings)
    build_rate = cold.embedded / cold.seconds["embed"]
    rows = {
        "cold_full_build_s": round(cold.seconds["total"], 2),
        "cold_embed_s": round(cold.seconds["embed"], 2),
        "no_change_rebuild_s": round(same.seconds["total"], 2),
        "no_change_embedded_chunks": same.embedded,
        "one_paper_changed_rebuild_s": round(one.seconds["total"], 2),
        "one_paper_changed_embedded_chunks": one.embedded,
        "papers": cold.papers, "chunks": cold.chunks,
        "index_size_mb": round(size / 1e6, 2),
        "build_embed_chunks_per_s": round(build_rate, 1),
        "raw_encode_chunks_per_s": round(raw_rate, 1),
        "build_vs_raw_throughput": round(build_rate / raw_rate, 3),
        "cold_build_vs_raw_encode_time": round(cold.seconds["total"] / (n / raw_rate), 3),
    }
    width = max(map(len, rows))
    for key, value in rows.items():
        print(f"{key:<{width}}  {value}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({**rows, "provenance": provenance(settings)}, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
