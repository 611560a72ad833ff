"""Answer benchmark: quality (the score.py metrics, per question type) and speed
(retrieval p50, answer p50/p95, time to first text) per mode, on the fit sets
(bench/fit_sets.py: dev.jsonl, dev2.jsonl and bench/questions/) or --gold.

Usage: python bench/answer_bench.py [--modes extractive,local] [--home DIR]
           [--gold FILE,FILE] [--out FILE] [--resume]
           [--folds bench/results/decision_fit.json]
           [--sentence-folds bench/results/sentence_fit.json]
           [--number-check-folds bench/results/number_check_fit.json]
With --folds, each question is answered with the decision fitted without its fold
(bench/fit_decision.py); with --sentence-folds too, also with the sentence priors picked
without it (bench/fit_sentences.py), so every figure is held out. Builds the seed index
under --home first if none is there. Predictions go to bench/results/predictions/ (not
committed), each as it is answered: local mode on the fit sets takes over two hours on 2
cores, and `--resume` (same code, flags and --out) answers only the questions a stopped
run had not.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from fit_sets import FIT_SETS, read_gold  # noqa: E402  (bench/fit_sets.py)

from rag import ask_stream, store  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.engine import get_engine  # noqa: E402
from rag.evaluation import evaluate, format_table  # noqa: E402
from rag.types import Answer  # noqa: E402


def _commit() -> str:
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()


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


def held_out_settings(settings, fit: dict | None, number_fit: dict | None = None):
    """Question id -> the settings to answer it with: its fold's decision (and the number
    and name checks' cuts, bench/fit_number_check.py), or the defaults."""
    if fit is None:
        return lambda qid: settings
    cut = lambda f: number_fit["fold_settings"][f] if number_fit else {}  # noqa: E731
    per_fold = {f: load_settings(home=settings.home, decision={**m, **cut(f)})
                for f, m in fit["fold_settings"].items()}
    return lambda qid: per_fold[str(fit["folds"][qid])]


def set_sentence_priors(setting: dict) -> None:
    """Sets the sentence priors `bench/fit_sentences.py` fits (module constants)."""
    from rag import evidence, extractive
    evidence.LEAD_PENALTY = setting["LEAD_PENALTY"]
    extractive.MULTI_SENTENCES = setting["MULTI_SENTENCES"]
    extractive.MULTI_DETAIL = setting.get("MULTI_DETAIL", extractive.MULTI_DETAIL)


def held_out_priors(settings_for, fit: dict, sentence_fit: dict):
    """`settings_for` that also sets the sentence priors picked without the question's fold."""
    def settings_and_priors(qid: str):
        set_sentence_priors(sentence_fit["fold_picks"][str(fit["folds"][qid])])
        return settings_for(qid)
    return settings_and_priors


def run_mode(settings_for, gold, mode: str, save: Path | None = None,
             done: dict[str, dict] | None = None) -> tuple[dict, list[dict]]:
    """Answers every question; each prediction is appended to `save` as it comes, so a
    stopped run keeps what it answered, and those in `done` (by id) are not asked again
    (the speed figures then cover only the questions answered in this run)."""
    preds, totals, firsts = [], [], []
    done = done or {}
    for g in gold:
        if g["id"] in done:
            preds.append(done[g["id"]])
            continue
        settings = settings_for(g["id"])
        t0 = time.perf_counter()
        first = None
        answer = None
        for item in ask_stream(g["question"], mode=mode, settings=settings):
            if isinstance(item, Answer):
                answer = item
            elif isinstance(item, str) and first is None and item.strip():  # not the Retrieved
                first = time.perf_counter() - t0
        totals.append(time.perf_counter() - t0)
        if not answer.abstained:
            firsts.append(first if first is not None else totals[-1])
        preds.append({**answer.to_prediction(g["id"]), "timings": answer.timings,
                      "model_output": answer.model_output})
        if save is not None:
            with open(save, "a", encoding="utf-8") as f:
                f.write(json.dumps(preds[-1], ensure_ascii=False) + "\n")
    if not totals:
        return {"answer_p50_s": None, "answer_p95_s": None, "first_text_median_s": None}, preds
    speed = {"answer_p50_s": round(pct(totals, .5), 3), "answer_p95_s": round(pct(totals, .95), 3),
             "first_text_median_s": round(statistics.median(firsts), 3) if firsts else None}
    return speed, preds


def saved_predictions(path: Path) -> dict[str, dict]:
    """The predictions a stopped run saved, by id, up to a line it was stopped in the middle
    of writing."""
    done = {}
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        try:
            p = json.loads(line)
        except json.JSONDecodeError:
            break
        done[p["id"]] = p
    return done


def by_file(gold: list[dict], preds: list[dict]) -> dict[str, dict]:
    """The metrics of each gold file on its own (gold rows carry their file in "_file")."""
    out = {}
    for name in dict.fromkeys(g["_file"] for g in gold):
        pairs = [(g, p) for g, p in zip(gold, preds, strict=True) if g["_file"] == name]
        out[name] = evaluate([g for g, _ in pairs], [p for _, p in pairs])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", default="extractive,local")
    ap.add_argument("--home", help="ASKPAPERS home holding the index (default: a temp dir)")
    ap.add_argument("--gold", default=",".join(str(p) for p in FIT_SETS),
                    help="comma-separated gold files (default: the fit sets, bench/fit_sets.py)")
    ap.add_argument("--folds", help="decision_fit.json of bench/fit_decision.py: answer each "
                    "question with the decision fitted without it")
    ap.add_argument("--sentence-folds", help="sentence_fit.json of bench/fit_sentences.py "
                    "(needs --folds, same folds): the sentence priors picked without the "
                    "question's fold, too")
    ap.add_argument("--number-check-folds", help="number_check_fit.json of "
                    "bench/fit_number_check.py (needs --folds, same folds): the number "
                    "and name checks' cuts fitted without the question's fold, too")
    ap.add_argument("--resume", action="store_true",
                    help="keep the predictions a stopped run of the same --out saved and "
                    "answer only the rest (same code and flags, or the figures mix)")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "answer.json"))
    args = ap.parse_args()
    settings = load_settings(home=Path(args.home or tempfile.mkdtemp(prefix="askpapers-bench-")))
    if store.current_build(settings.index_dir) is None:
        from index.build import build_index
        build_index(settings)
    gold = read_gold(args.gold.split(","))
    fit = json.loads(Path(args.folds).read_text()) if args.folds else None
    if args.number_check_folds and fit is None:
        ap.error("--number-check-folds needs --folds")
    settings_for = held_out_settings(settings, fit, json.loads(
        Path(args.number_check_folds).read_text()) if args.number_check_folds else None)
    if args.sentence_folds:
        if fit is None:
            ap.error("--sentence-folds needs --folds")
        settings_for = held_out_priors(settings_for, fit,
                                       json.loads(Path(args.sentence_folds).read_text()))
    result = {"questions": len(gold), "gold": args.gold, "held_out_folds": bool(fit),
              "held_out_sentence_priors": bool(args.sentence_folds),
              "held_out_number_check": bool(args.number_check_folds),
              "commit": _commit(), "load_avg": os.getloadavg(), **bench_retrieval(settings, gold)}
    for mode in args.modes.split(","):
        pred_dir = Path(args.out).parent / "predictions"
        pred_dir.mkdir(parents=True, exist_ok=True)
        save = pred_dir / f"{Path(args.out).stem}_{mode}.jsonl"
        done = saved_predictions(save) if args.resume else {}
        if done:
            print(f"{mode}: {len(done)} questions answered before, kept")
        save.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in done.values()))
        run_mode(lambda qid: settings, gold[:1], mode)  # load the model before timing
        speed, preds = run_mode(settings_for, gold, mode, save, done)
        metrics = evaluate(gold, preds)
        result[mode] = {**speed, "resumed_from": len(done), "metrics": metrics,
                        "by_file": by_file(gold, preds)}
        print(f"\n== {mode}: answer p50 {speed['answer_p50_s']} s, p95 {speed['answer_p95_s']} s, "
              f"first text (median, answered) {speed['first_text_median_s']} s")
        print(format_table(metrics))
        for name, file_metrics in result[mode]["by_file"].items():
            print(f"\n-- {mode}, {name} alone")
            print(format_table(file_metrics))
    result["load_avg_end"] = os.getloadavg()
    print(f"\nretrieval p50 {result['retrieval_p50_ms']} ms, p95 {result['retrieval_p95_ms']} ms")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
