"""Does the model's check pay? Fits `decision.grey` held out, from the check's real replies.

Near a threshold, model modes ask the model to copy the words that answer, or say NONE
(rag/generation.py). This script asks the local model that check once for every question
of dev.jsonl + dev2.jsonl, on the context its answer would get, and records the replies.
Then, for each of the five folds of bench/fit_decision.py, it picks the grey width (the
config's `decision.grey`) that minimises the decision's cost on the four training
folds, with the decision fitted without the fold, and judges them on the held-out fold.
It prints the held-out refusal rates per question type for that choice, for fixed widths,
and for the check alone, and writes them to bench/results/model_check.json.

Usage: python bench/model_check.py --home DIR [--replies FILE]
  --replies reuses the replies recorded in an earlier run's JSON instead of asking the model.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import fit_decision as fd  # noqa: E402

from rag.answer import retrieve  # noqa: E402
from rag.config import LogisticSettings, load_settings  # noqa: E402
from rag.decision import calibrated, decide, probability, verdict  # noqa: E402
from rag.engine import get_engine  # noqa: E402
from rag.evaluation import UNANSWERABLE  # noqa: E402
from rag.questions import classify  # noqa: E402

GRID = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
TYPES = ("single", "which-paper", "multi", "unanswerable", "not-stated")


def answer_context(settings, engine, question: str):
    """(kind, the context a model answer would get), or None when nothing is retrieved."""
    from rag.generation import build_context

    kind = classify(question)
    ret = retrieve(engine, question, kind)
    if not ret.sources:
        return None
    verdict = decide(settings.decision, ret.query, question, ret.sources, ret.best_dense,
                     engine.weights, kind)
    return kind, build_context(engine, ret, verdict.papers, kind, 2 if kind.multi else None)


def ask_checks(settings, rows: list[dict]) -> dict[str, bool]:
    """The local model's check for every question: True when it replied NONE."""
    from rag.generation import _model_finds_nothing
    from rag.llm import get_chat_model

    engine = get_engine(settings)
    model = get_chat_model(settings, "local")
    replies = {}
    for r in rows:
        if (got := answer_context(settings, engine, r["question"])) is None:
            continue
        kind, context = got
        t = time.perf_counter()
        replies[r["id"]] = _model_finds_nothing(model, context, r["question"], kind, None, {})
        print(f"{r['id']:<6}{r['type']:<14}{'NONE' if replies[r['id']] else 'copied':<8}"
              f"{time.perf_counter() - t:5.1f} s", flush=True)
    return replies


def refuses(covered: float, stated: float, asks_papers: bool, none: bool, grey: float) -> bool:
    """rag/generation.py's outcome: refuse (abstain or "not stated") or answer; the check's
    reply `none` decides when the verdict needs the check."""
    v = verdict(covered, stated, [], asks_papers, grey)
    return none if v.needs_check else v.abstain or v.not_stated


def rates(outcome: dict[str, bool], rows: list[dict]) -> dict[str, float]:
    return {t: round(float(np.mean([outcome[r["id"]] for r in rows if r["type"] == t])), 3)
            for t in TYPES}


def cost(outcome: dict[str, bool], rows: list[dict]) -> float:
    """bench/fit_decision.py's cost: a false refusal counts FALSE_ABSTENTION_COST times."""
    wrong_refusal = [outcome[r["id"]] for r in rows if r["type"] not in UNANSWERABLE]
    missed = [not outcome[r["id"]] for r in rows if r["type"] in UNANSWERABLE]
    return fd.FALSE_ABSTENTION_COST * float(np.mean(wrong_refusal)) + float(np.mean(missed))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", required=True, help="ASKPAPERS home holding the seed index")
    ap.add_argument("--replies", help="JSON of an earlier run: reuse its recorded replies")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "model_check.json"))
    args = ap.parse_args()
    settings = load_settings(home=Path(args.home))
    rows = fd.collect(settings)
    replies = (json.loads(Path(args.replies).read_text())["replies"] if args.replies
               else ask_checks(settings, rows))
    rows = [r for r in rows if r["id"] in replies]  # questions with no paper never reach a model
    folds = fd.assign_folds(rows, 5)
    models = {f: fd.fit_all([r for r in rows if folds[r["id"]] != f], fd.FALSE_ABSTENTION_COST)
              for f in range(5)}
    state = {}
    for r in rows:
        m = models[folds[r["id"]]]
        covered, stated = (LogisticSettings(**m[name]) for name in ("covered", "stated"))
        asks_papers = r["multi"] or r["identity"]  # as rag/decision.decide
        state[r["id"]] = (calibrated(probability(covered, r["signals"]), covered),
                          1.0 if asks_papers else calibrated(probability(stated, r["signals"]), stated),
                          asks_papers, replies[r["id"]])

    def outcome(grey: float, sel: list[dict]) -> dict[str, bool]:
        return {r["id"]: refuses(*state[r["id"]], grey) for r in sel}

    fixed = {str(g): rates(outcome(g, rows), rows) for g in GRID}
    chosen, held = {}, {}
    for f in range(5):
        train = [r for r in rows if folds[r["id"]] != f]
        chosen[f] = min(GRID, key=lambda g: (cost(outcome(g, train), train), g))
        held.update(outcome(chosen[f], [r for r in rows if folds[r["id"]] == f]))
    result = {"questions": len(rows), "grid": GRID, "held_out_fitted_grey": rates(held, rows),
              "chosen_per_fold": {str(f): g for f, g in chosen.items()},
              "fixed_grey": fixed,
              "check_alone": rates({r["id"]: replies[r["id"]] for r in rows}, rows),
              "replies": replies}
    print(f"\nRefused, held out (decision fitted without the fold; {len(rows)} questions):")
    print(f"{'':<26}" + "".join(f"{t:>14}" for t in TYPES))
    print(f"{'grey fitted per fold':<26}" + "".join(f"{v:>14.3f}" for v in result["held_out_fitted_grey"].values()))
    for g, row in fixed.items():
        print(f"{'grey ' + g:<26}" + "".join(f"{v:>14.3f}" for v in row.values()))
    print(f"{'the check alone':<26}" + "".join(f"{v:>14.3f}" for v in result["check_alone"].values()))
    print("width chosen per fold:", result["chosen_per_fold"])
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
