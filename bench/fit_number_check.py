"""Fit when local mode's number check may refuse (`decision.number_check_below`), held out.

Asked for a number, the local model sometimes writes none that its sources write: it found
the value nowhere, or it made one up, or it cited the wrong source. The answer path then
says "not stated" (rag/generation.py). That catches details an abstract lacks, and refuses
some answerable questions too. This fits the calibrated stated probability under which the
check may refuse (above it the sources are quoted instead), from a local answer run's
predictions: per fold of bench/fit_decision.py, the cut with the least cost (a false
refusal costs `--cost` missed abstentions) on the other folds, judged on the held-out one.
It prints the refusals per type without the cut and with it, held out, and writes each
fold's cut and the cut on all questions (the default in rag/config.py) to
bench/results/number_check_fit.json, which `bench/answer_bench.py --number-check-folds`
reads.

Usage: python bench/fit_number_check.py --predictions bench/results/predictions/answer_local.jsonl
           [--folds bench/results/decision_fit.json] [--cost 6]
The predictions must come from `answer_bench.py --folds` with the same folds.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import fit_decision as fd  # noqa: E402
from fit_sets import read_gold  # noqa: E402

from rag.evaluation import UNANSWERABLE  # noqa: E402

TYPES = ("single", "which-paper", "multi", "unanswerable", "not-stated")


def cut(rows: list[dict], cost: float) -> float:
    """The stated probability under which a failed check refuses, at the least cost on
    these questions (only those whose check failed can change)."""
    failed = [r for r in rows if r["failed"]]
    keep = np.array([r["stated"] for r in failed if r["type"] not in UNANSWERABLE])
    drop = np.array([r["stated"] for r in failed if r["type"] in UNANSWERABLE])
    n_keep = sum(r["type"] not in UNANSWERABLE for r in rows) or 1
    n_drop = sum(r["type"] in UNANSWERABLE for r in rows) or 1
    cands = np.unique(np.concatenate([keep, drop, [0.5, 1.0]]))
    costs = [cost * np.sum(keep < t) / n_keep + np.sum(drop >= t) / n_drop for t in cands]
    i = int(np.argmin(costs))
    # Every cut between the candidate below and this one decides these questions alike:
    # the middle leaves the most room either side.
    return float((cands[i - 1] + cands[i]) / 2 if i else cands[i])


def refused(r: dict, below: float) -> bool:
    return r["refused_else"] or (r["failed"] and r["stated"] < below)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--predictions", required=True)
    ap.add_argument("--folds", default=str(REPO / "bench" / "results" / "decision_fit.json"))
    ap.add_argument("--cost", type=float, default=fd.FALSE_ABSTENTION_COST)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "number_check_fit.json"))
    args = ap.parse_args()
    folds = json.loads(Path(args.folds).read_text())["folds"]
    gold = {g["id"]: g for g in read_gold()}
    rows = []
    for line in open(args.predictions):
        p = json.loads(line)
        t = p["timings"]
        failed = bool(t.get("no_source_number"))
        rows.append({"id": p["id"], "type": gold[p["id"]]["type"], "failed": failed,
                     "stated": t.get("stated", 1.0),
                     # refused whatever the cut: by the decision, or by something else
                     "refused_else": p["abstained"] and not failed})
    k = max(folds.values()) + 1
    per_fold = {f: cut([r for r in rows if folds[r["id"]] != f], args.cost) for f in range(k)}
    print(f"failed number checks: {sum(r['failed'] for r in rows)} of {len(rows)}")
    print(f"{'type':<14}{'n':>4}{'refused, no cut':>17}{'with cut, held out':>20}")
    for t in TYPES:
        sel = [r for r in rows if r["type"] == t]
        before = np.mean([refused(r, 2.0) for r in sel])
        after = np.mean([refused(r, per_fold[folds[r["id"]]]) for r in sel])
        print(f"{t:<14}{len(sel):>4}{before:>17.3f}{after:>20.3f}")
    final = cut(rows, args.cost)
    print(f"cut per fold: {per_fold}; on all questions: {final:.4f}")
    Path(args.out).write_text(json.dumps({
        "predictions": args.predictions, "cost": args.cost,
        "fold_settings": {str(f): v for f, v in per_fold.items()}, "all": final}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
