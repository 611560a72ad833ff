"""Latency bench: askpapers local, askpapers extractive and the LangChain tutorial pipeline
(bench/side_by_side.py's PlainPipeline), in one process, on the same questions and the same
llama.cpp model object.

Reported per pipeline, split into single-paper and multi-paper questions:
- sources visible: question sent -> the retrieved sources handed to the caller (askpapers'
  stream delivers them before the model starts; the tutorial chain returns them with its
  answer, so its figure is the whole answer's);
- first model token and whole answer, p50/p90 (answers the model wrote; abstentions and
  "not stated" replies made in code are counted apart);
- prompt tokens per question (all, and those not already in the KV cache) and generation
  tokens/s;
- extractive p50 while a local generation runs in another thread of the same process;
- ratios against the tutorial pipeline, and the machine's load average while it ran (each
  pipeline's fixed prompt head is put back in the KV cache, untimed, before its turn);
- askpapers local twice per question: "askpapers-local" as the question comes (the
  bench starts with no saved paper states, so a top paper's first question reads its
  abstract and saves its state, rag.paper_states), then "askpapers-local-saved", the same
  question again with the KV cache cut back to the system prompt, so the top paper's head
  comes from its saved state as it does for any question after the first about a paper
  (or for every question after `askpapers index warm`);
- the answers' quality (score.py metrics by question type), so a speed-up that costs quality
  shows in the same run. With --folds each question is answered with the decision fitted
  without its fold (bench/fit_decision.py), and with --sentence-folds also with the
  sentence priors picked without it (bench/fit_sentences.py): the quality figures are then
  held out.

Usage: python bench/latency.py [--gold ../shared/eval/dev.jsonl,../shared/eval/dev2.jsonl]
           [--limit N] [--home DIR] [--no-tutorial] [--folds bench/results/decision_fit.json]
           [--sentence-folds bench/results/sentence_fit.json] [--out bench/results/latency.json]
--limit N takes N questions spread evenly over the files (every k-th), for a quick look.
Builds the seed index under --home first if none is there.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from answer_bench import held_out_priors, held_out_settings  # noqa: E402  (bench/answer_bench.py)
from provenance import provenance  # noqa: E402  (bench/provenance.py)
from side_by_side import TUTORIAL_PROMPT, PlainPipeline, pct  # noqa: E402

from rag import ask_stream, store  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.evaluation import evaluate, format_table  # noqa: E402
from rag.llm import get_chat_model  # noqa: E402
from rag.prompts import HEAD  # noqa: E402
from rag.questions import classify  # noqa: E402
from rag.types import Answer  # noqa: E402

GOLD = "../shared/eval/dev.jsonl,../shared/eval/dev2.jsonl"


def load_gold(paths: str, limit: int | None) -> list[dict]:
    gold = [json.loads(line) for p in paths.split(",") for line in open(REPO / p, encoding="utf-8")
            if line.strip()]
    if limit and limit < len(gold):
        step = len(gold) / limit
        gold = [gold[int(i * step)] for i in range(limit)]
    return gold


def time_askpapers(question: str, mode: str, settings, qid: str = "") -> dict:
    """One askpapers answer, timed: sources, first text, whole answer, its token counts and
    its prediction line for score.py."""
    t0 = time.perf_counter()
    sources = first = answer = None
    for item in ask_stream(question, mode=mode, settings=settings):
        now = time.perf_counter() - t0
        if isinstance(item, Answer):
            answer = item
        elif not isinstance(item, str):  # the retrieved sources, before any answer text
            sources = sources if sources is not None else now
        elif first is None and item.strip():
            first = now
    total = time.perf_counter() - t0
    t = answer.timings
    return {"sources_s": sources if sources is not None else t.get("retrieve_s"),
            "first_s": t.get("first_token_s"), "first_text_s": first, "total_s": total,
            "model": "first_token_s" in t, "abstained": answer.abstained,
            "pred": answer.to_prediction(qid),
            **{k: t[k] for k in ("prompt_tokens", "new_prompt_tokens", "gen_tokens", "gen_s",
                                 "check_s") if k in t}}


def time_tutorial(plain: PlainPipeline, qid: str, question: str) -> dict:
    _, first, total, _retrieved = plain.answer(qid, question)
    stats = plain.model.last_call
    # The tutorial chain returns its context with the answer: nothing shows before it.
    return {"sources_s": total, "first_s": first, "total_s": total, "model": True,
            "prompt_tokens": stats.prompt_tokens,
            "new_prompt_tokens": stats.prompt_tokens - stats.cached_tokens,
            "gen_tokens": stats.gen_tokens,
            "gen_s": stats.total_s - (stats.first_s or stats.total_s)}


def extractive_while_generating(settings, gold: list[dict]) -> dict:
    """Extractive answer times while another thread keeps the local model generating."""
    stop = threading.Event()

    def generate():
        while not stop.is_set():
            for g in gold[:5]:
                if stop.is_set():
                    break
                time_askpapers(g["question"], "local", settings)

    worker = threading.Thread(target=generate, daemon=True)
    worker.start()
    time.sleep(2.0)  # let the generation get going
    times = [time_askpapers(g["question"], "extractive", settings)["total_s"] for g in gold]
    stop.set()
    worker.join()
    return {"p50_ms": round(pct(times, .5) * 1000, 1), "p90_ms": round(pct(times, .9) * 1000, 1),
            "n": len(times)}


def summarise(rows: list[dict]) -> dict:
    """p50/p90 of each timing and token means over the rows where the model answered."""
    out: dict = {"n": len(rows)}
    modelled = [r for r in rows if r["model"]]
    out["model_answered"] = len(modelled)
    for key in ("sources_s", "first_s", "total_s"):
        values = [r[key] for r in (modelled if key == "first_s" else rows) if r.get(key) is not None]
        if values:
            out[key] = {"p50": round(pct(values, .5), 3), "p90": round(pct(values, .9), 3)}
    answered_totals = [r["total_s"] for r in modelled]
    if answered_totals:
        out["model_total_s"] = {"p50": round(pct(answered_totals, .5), 3),
                                "p90": round(pct(answered_totals, .9), 3)}
    for key in ("prompt_tokens", "new_prompt_tokens", "gen_tokens"):
        values = [r[key] for r in modelled if key in r]
        if values:
            out[key + "_mean"] = round(statistics.mean(values), 1)
    gen_s = sum(r.get("gen_s", 0) for r in modelled)
    if gen_s:
        out["gen_tok_per_s"] = round(sum(r.get("gen_tokens", 0) for r in modelled) / gen_s, 1)
    return out


def table(summary: dict) -> str:
    def cell(d: dict, key: str, q: str = "p50") -> str:
        v = d.get(key)
        return "-" if v is None else f"{v[q]:.2f}" if isinstance(v, dict) else f"{v}"

    head = (f"{'pipeline / questions':<38}{'n':>4}{'model':>6}{'sources':>9}{'first p50':>10}"
            f"{'p90':>7}{'whole p50':>10}{'p90':>7}{'prompt':>8}{'new':>6}{'gen t/s':>8}")
    lines = [head, "-" * len(head)]
    for name, parts in summary["pipelines"].items():
        for part, d in parts.items():
            whole = "model_total_s" if "model_total_s" in d else "total_s"
            lines.append(
                f"{name + ' / ' + part:<38}{d['n']:>4}{d['model_answered']:>6}"
                f"{cell(d, 'sources_s'):>9}{cell(d, 'first_s'):>10}{cell(d, 'first_s', 'p90'):>7}"
                f"{cell(d, whole):>10}{cell(d, whole, 'p90'):>7}"
                f"{d.get('prompt_tokens_mean', '-'):>8}{d.get('new_prompt_tokens_mean', '-'):>6}"
                f"{d.get('gen_tok_per_s', '-'):>8}")
    return "\n".join(lines)


def ratios(summary: dict) -> dict:
    """p50 of each askpapers local pipeline over the tutorial's, on all questions."""
    plain = summary["pipelines"].get("tutorial")
    if not plain:
        return {}
    out = {}
    for name in ("askpapers-local", "askpapers-local-saved"):
        for key in ("first_s", "total_s"):
            a, b = summary["pipelines"][name]["all"].get(key), plain["all"].get(key)
            if a and b:
                out[f"{name} {key}_p50"] = round(a["p50"] / b["p50"], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gold", default=GOLD)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--home", type=Path, default=Path(os.environ.get("ASKPAPERS_HOME", "/tmp/askpapers-bench")))
    ap.add_argument("--no-tutorial", action="store_true")
    ap.add_argument("--folds", type=Path, help="decision_fit.json: answer each question with "
                    "the decision fitted without it")
    ap.add_argument("--sentence-folds", type=Path, help="sentence_fit.json (needs --folds): "
                    "the sentence priors picked without the question's fold, too")
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/latency.json")
    ap.add_argument("--contention-only", action="store_true",
                    help="only time extractive answers while a local generation runs")
    args = ap.parse_args()

    settings = load_settings(home=args.home)
    shutil.rmtree(settings.home / "states", ignore_errors=True)  # start with no saved states
    if store.current_build(settings.index_dir) is None:
        from index.build import build_index
        build_index(settings)
    gold = load_gold(args.gold, args.limit)
    fit = json.loads(args.folds.read_text()) if args.folds else None
    settings_for = held_out_settings(settings, fit)
    if args.sentence_folds:
        if fit is None:
            ap.error("--sentence-folds needs --folds")
        settings_for = held_out_priors(settings_for, fit,
                                       json.loads(args.sentence_folds.read_text()))
    multi = {g["id"]: classify(g["question"]).multi for g in gold}

    model = get_chat_model(settings, "local")  # load the model (and warm its prompt head) untimed
    time_askpapers("warm up the embedder and index", "extractive", settings)
    if args.contention_only:
        loads = os.getloadavg()[0]
        result = extractive_while_generating(settings, gold)
        result["load_average"] = [loads, os.getloadavg()[0]]
        print("extractive while a generation runs:", result)
        args.out.write_text(json.dumps({"provenance": provenance(settings),
                                        "extractive_while_generating": result}, indent=1) + "\n")
        return
    # The pipelines take turns on one model, so each would find the other's prompt in the
    # KV cache; each pipeline's fixed prompt head is put back, untimed, before its turn, as
    # it stays cached when a pipeline has the model to itself.
    tutorial_head = [{"role": "user", "content": TUTORIAL_PROMPT.split("{question}")[0]}]
    plain = None if args.no_tutorial else PlainPipeline(settings)
    rows: dict[str, list[dict]] = {"askpapers-local": [], "askpapers-local-saved": [],
                                   "askpapers-extractive": []}
    if plain:
        rows["tutorial"] = []
    loads = []
    for i, g in enumerate(gold, 1):
        for name in rows:
            if name == "tutorial":
                model.warm(tutorial_head)
                r = time_tutorial(plain, g["id"], g["question"])
            else:
                model.warm(HEAD, cut=name.endswith("-saved"))
                r = time_askpapers(g["question"], name.split("-")[1], settings_for(g["id"]),
                                   g["id"])
            rows[name].append({"id": g["id"], "multi": multi[g["id"]], **r})
        loads.append(os.getloadavg()[0])
        r, saved = rows["askpapers-local"][-1], rows["askpapers-local-saved"][-1]
        print(f"[{i}/{len(gold)}] {g['id']}: local first {r['first_s'] or 0:.2f} s, "
              f"whole {r['total_s']:.2f} s, new prompt {r.get('new_prompt_tokens', '-')}; "
              f"saved first {saved['first_s'] or 0:.2f} s, whole {saved['total_s']:.2f} s, "
              f"new prompt {saved.get('new_prompt_tokens', '-')}", flush=True)

    summary = {"pipelines": {
        name: {"all": summarise(rs), "single": summarise([r for r in rs if not r["multi"]]),
               "multi": summarise([r for r in rs if r["multi"]])}
        for name, rs in rows.items()}}
    summary["ratios_vs_tutorial"] = ratios(summary)
    quality = {name: evaluate(gold, [r.pop("pred") for r in rows[name]])
               for name in ("askpapers-local", "askpapers-local-saved", "askpapers-extractive")}
    summary["quality"] = quality
    summary["held_out"] = {"decision": bool(args.folds),
                           "sentence_priors": bool(args.sentence_folds)}
    summary["extractive_while_generating"] = extractive_while_generating(settings, gold)
    summary["load_average_during"] = {"min": min(loads), "mean": round(statistics.mean(loads), 2),
                                      "max": max(loads)}
    for name, metrics in quality.items():
        held = (" (held out)" if args.sentence_folds else " (decision held out)"
                if args.folds else "")
        print(f"\n== quality, {name}{held}")
        print(format_table(metrics))
    print()
    print(table(summary))
    print("ratios vs tutorial:", summary["ratios_vs_tutorial"])
    print("extractive while a generation runs:", summary["extractive_while_generating"])
    print("load average while running:", summary["load_average_during"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"provenance": provenance(settings), "summary": summary,
                                    "rows": rows}, indent=1), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
