"""Fit when local mode's number and name checks may refuse (`decision.number_check_below`,
`decision.name_check_below`), held out.

Asked for a number, the local model sometimes writes none that its sources write: it found
the value nowhere, or it made one up, or it cited the wrong source. Asked which thing
("which teacher model"), it sometimes names none its sources write ("the large teacher
models [1]"). The answer path then says "not stated" (rag/generation.py). That catches
details an abstract lacks, and refuses some answerable questions too. This fits, per check,
the calibrated stated probability under which a failed check refuses (above it the number
check quotes the sources instead, the name check keeps the answer), from a local answer
run's predictions: per fold of bench/fit_decision.py, the cut with the least cost (a false
refusal costs `--cost` missed abstentions) on the other folds, judged on the held-out one.
It prints the refusals per type with every failed check refusing and with the cuts, held
out, and writes each fold's cuts and the cuts on all questions (the defaults in
rag/config.py) to bench/results/number_check_fit.json, which `bench/answer_bench.py
--number-check-folds` reads.

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


# The checks the local answer path makes after the model answers (rag/generation.py): the
# timing flag a failed check sets, and the setting holding its cut.
CHECKS = {"no_source_number": "number_check_below", "no_source_name": "name_check_below"}


def refused(r: dict, cuts: dict[str, float]) -> bool:
    return r["refused_else"] or any(r[flag] and r["stated"] < cuts[key]
                                    for flag, key in CHECKS.items())


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
        row = {"id": p["id"], "type": gold[p["id"]]["type"], "stated": t.get("stated", 1.0)}
        row.update({flag: bool(t.get(flag)) for flag in CHECKS})
        # refused whatever the cuts: by the decision, or by something else
        row["refused_else"] = p["abstained"] and not any(row[flag] for flag in CHECKS)
        rows.append(row)
    k = max(folds.values()) + 1

    def cuts(sel: list[dict]) -> dict[str, float]:
        # Each check fitted on its own: a question fails at most one of them.
        return {key: cut([{**r, "failed": r[flag]} for r in sel], args.cost)
                for flag, key in CHECKS.items()}

    per_fold = {f: cuts([r for r in rows if folds[r["id"]] != f]) for f in range(k)}
    off = dict.fromkeys(CHECKS.values(), 2.0)  # every failed check refuses
    print("failed checks: " + ", ".join(f"{flag} {sum(r[flag] for r in rows)}"
                                        for flag in CHECKS) + f" of {len(rows)}")
    print(f"{'type':<14}{'n':>4}{'refused, no cut':>17}{'with cuts, held out':>21}")
    for t in TYPES:
        sel = [r for r in rows if r["type"] == t]
        before = np.mean([refused(r, off) for r in sel])
        after = np.mean([refused(r, per_fold[folds[r["id"]]]) for r in sel])
        print(f"{t:<14}{len(sel):>4}{before:>17.3f}{after:>21.3f}")
    final = cuts(rows)
    print(f"cuts per fold: {per_fold}; on all questions: {final}")
    Path(args.out).write_text(json.dumps({
        "predictions": args.predictions, "cost": args.cost,
        "fold_settings": {str(f): v for f, v in per_fold.items()}, "all": final}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
