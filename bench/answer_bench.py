"""Answer benchmark on shared/eval/dev.jsonl: quality (the score.py metrics) and speed
(retrieval p50, extractive p50, local time to first token and full answer) per mode.

Usage: python bench/answer_bench.py [--modes extractive,local] [--home DIR]
                                    [--gold ../shared/eval/dev.jsonl] [--out FILE]
Builds the seed index under --home first if none is there.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rag import ask_stream  # noqa: E402
from rag import store  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.engine import get_engine  # noqa: E402
from rag.evaluation import evaluate, format_table  # noqa: E402
from rag.types import Answer  # noqa: E402


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def bench_retrieval(settings, gold, repeats: int = 3) -> dict:
    engine = get_engine(settings)
    engine.retriever.search("warm up")
    times = []
    for _ in range(repeats):
        for g in gold:
            t = time.perf_counter()
            engine.retriever.search(g["question"])
            times.append((time.perf_counter() - t) * 1000)
    return {"retrieval_p50_ms": round(pct(times, .5), 2), "retrieval_p95_ms": round(pct(times, .95), 2)}


def run_mode(settings, gold, mode: str) -> tuple[dict, list[dict]]:
    preds, totals, firsts = [], [], []
    for g in gold:
        t0 = time.perf_counter()
        first = None
        answer = None
        for item in ask_stream(g["question"], mode=mode, settings=settings):
            if isinstance(item, Answer):
                answer = item
            elif first is None and item.strip():
                first = time.perf_counter() - t0
        totals.append(time.perf_counter() - t0)
        if not answer.abstained:
            firsts.append(first if first is not None else totals[-1])
        preds.append({**answer.to_prediction(g["id"]), "timings": answer.timings,
                      "model_output": answer.model_output})
    speed = {"answer_p50_s": round(pct(totals, .5), 3), "answer_p95_s": round(pct(totals, .95), 3),
             "first_text_median_s": round(statistics.median(firsts), 3) if firsts else None}
    return speed, preds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", default="extractive,local")
    ap.add_argument("--home", help="ASKPAPERS home holding the index (default: a temp dir)")
    ap.add_argument("--gold", default=str(REPO.parent / "shared" / "eval" / "dev.jsonl"))
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "answer.json"))
    args = ap.parse_args()
    settings = load_settings(home=Path(args.home or tempfile.mkdtemp(prefix="askpapers-bench-")))
    if store.current_build(settings.index_dir) is None:
        from index.build import build_index
        build_index(settings)
    gold = [json.loads(line) for line in open(args.gold, encoding="utf-8") if line.strip()]
    result = {"questions": len(gold), **bench_retrieval(settings, gold)}
    for mode in args.modes.split(","):
        run_mode(settings, gold[:1], mode)  # load the model before timing
        speed, preds = run_mode(settings, gold, mode)
        metrics = evaluate(gold, preds)
        result[mode] = {**speed, "metrics": metrics}
        with open(Path(args.out).with_name(f"predictions_{mode}.jsonl"), "w") as f:
            f.writelines(json.dumps(p, ensure_ascii=False) + "\n" for p in preds)
        print(f"\n== {mode}: answer p50 {speed['answer_p50_s']} s, p95 {speed['answer_p95_s']} s, "
              f"first text (median, answered) {speed['first_text_median_s']} s")
        print(format_table(metrics))
    print(f"\nretrieval p50 {result['retrieval_p50_ms']} ms, p95 {result['retrieval_p95_ms']} ms")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
