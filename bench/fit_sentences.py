"""Fit the sentence priors of extractive answers and report them cross-validated.

Which sentences an answer quotes is ordered by word overlap plus small priors, among them a
penalty for the abstract's opening sentence (`rag.evidence.LEAD_PENALTY`); a multi-paper
answer gives each paper `rag.extractive.MULTI_SENTENCES` sentences. A bonus for sentences
stating the authors' own work ("we propose", "this paper") was tried on the same grid and
picked in no fold (docs/quality-history.md). Every question of the fit sets
(bench/fit_sets.py) is answered in extractive mode for each setting on a small grid, with the decision fitted
without the question's fold (bench/fit_decision.py). For each fold, the setting with the
best answer facts on the other folds is picked and judged on this one; the held-out
figures are printed and written with the pick on all questions (the defaults in the
code).

Usage: python bench/fit_sentences.py --home DIR [--folds bench/results/decision_fit.json]
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import answer_bench  # noqa: E402
from fit_sets import read_gold  # noqa: E402  (bench/fit_sets.py)
from provenance import provenance  # noqa: E402  (bench/provenance.py)

from rag import answer  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.evaluation import score_one  # noqa: E402

# At most two sentences a paper: a multi-paper answer is a line per paper (what it does, what
# it reports). A third sentence scored 0.005 higher on all questions: more words always find
# more facts, and the answer grows by a third.
GRID = {"LEAD_PENALTY": (0.0, 0.05, 0.1, 0.15), "MULTI_SENTENCES": (1, 2),
        "MULTI_DETAIL": (False, True)}
ANSWERABLE = ("single", "which-paper", "multi")


def retrieve_once():
    """Retrieval does not depend on the priors: each question is retrieved once."""
    seen, real = {}, answer.retrieve

    def cached(engine, question, kind, **kw):
        key = (question, repr(sorted(kw.items())))
        if key not in seen:
            seen[key] = real(engine, question, kind, **kw)
        return seen[key]
    answer.retrieve = cached


def facts(rows: list[dict]) -> float:
    values = [r["keyword_accuracy"] for r in rows if r["keyword_accuracy"] is not None]
    return sum(values) / len(values) if values else 0.0


def pick(settings: list[dict], scores: list[dict], ids: list[str]) -> int:
    """The setting with the best answer facts on these questions (the earlier on a tie)."""
    return max(range(len(settings)), key=lambda i: (
        round(facts([scores[i][q] for q in ids if scores[i][q]["type"] in ANSWERABLE]), 6), -i))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", required=True, help="ASKPAPERS home holding the seed index")
    ap.add_argument("--folds", default=str(REPO / "bench" / "results" / "decision_fit.json"))
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "sentence_fit.json"))
    args = ap.parse_args()
    gold = read_gold()
    fit = json.loads(Path(args.folds).read_text())
    settings = load_settings(home=Path(args.home))
    settings_for = answer_bench.held_out_settings(settings, fit)
    retrieve_once()
    grid = [dict(zip(GRID, values, strict=True)) for values in itertools.product(*GRID.values())]
    scores = []
    for setting in grid:
        answer_bench.set_sentence_priors(setting)
        _, preds = answer_bench.run_mode(settings_for, gold, "extractive")
        scores.append({g["id"]: {**score_one(g, p), "type": g["type"]}
                       for g, p in zip(gold, preds, strict=True)})
        print(setting, f"answer facts (all questions, not held out) "
              f"{facts([s for s in scores[-1].values() if s['type'] in ANSWERABLE]):.3f}",
              flush=True)
    folds = fit["folds"]
    held, picks = {}, {}
    for f in sorted(set(folds.values())):
        train = [q for q in folds if folds[q] != f]
        best = pick(grid, scores, train)
        picks[f] = grid[best]
        held.update({q: scores[best][q] for q in folds if folds[q] == f})
    table = {}
    print("\nheld out (each fold judged with the setting picked on the others)")
    print(f"{'type':<12} {'n':>3} {'answer facts':>13} {'cit. precision':>15} {'cit. recall':>12}")
    for t in ANSWERABLE:
        rows = [r for r in held.values() if r["type"] == t]
        table[t] = {"n": len(rows), "keyword_accuracy": round(facts(rows), 3),
                    **{m: round(sum(r[m] for r in rows) / len(rows), 3)
                       for m in ("citation_precision", "citation_recall")}}
        print(f"{t:<12} {len(rows):>3} {table[t]['keyword_accuracy']:>13.3f} "
              f"{table[t]['citation_precision']:>15.3f} {table[t]['citation_recall']:>12.3f}")
    chosen = grid[pick(grid, scores, list(folds))]
    print(f"\npicked per fold: {picks}\npicked on all questions (the code's defaults): {chosen}")
    Path(args.out).write_text(json.dumps({"grid": GRID, "held_out": table, "fold_picks": picks,
                                          "all": chosen, "provenance": provenance(settings)},
                                         indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
