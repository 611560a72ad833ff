"""Fit the answer decision (rag/decision.py) and report it cross-validated.

Signals come from the real retrieval on the seed index for every question of the fit
sets (bench/fit_sets.py: shared/eval/dev.jsonl + dev2.jsonl + bench/questions/). Three logistic regressions (scikit-learn, standardised
inputs, L2) are fitted on four of five folds (stratified by question type) and judged on
the fifth; thresholds are chosen on the training folds only. It prints the held-out
figures, writes each fold's settings (for `bench/answer_bench.py --folds`) and the fit on
all questions (the defaults in rag/config.py) to bench/results/decision_fit.json.

With ~140 questions the held-out figures depend on which questions share a fold, so the
same cross-validation is repeated over other fold assignments (--repeats) and the spread of
refusals per type printed and stored too.

Usage: python bench/fit_decision.py [--home DIR] [--folds 5] [--repeats 5]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from fit_sets import read_gold  # noqa: E402  (bench/fit_sets.py)

from rag import store  # noqa: E402
from rag.answer import retrieve  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.decision import PAPER_SIGNALS, paper_signals, question_signals  # noqa: E402
from rag.engine import get_engine  # noqa: E402
from rag.evaluation import UNANSWERABLE, _norm_title  # noqa: E402
from rag.questions import classify  # noqa: E402

# Which signals each decision sees (few, to fit on ~140 questions without overfitting).
COVERED = ("dense", "margin", "coverage", "match", "unseen", "missing_ids", "unseen_ids", "multi")
STATED = ("quantity", "ask_match", "quantity_ask_match", "ask_unmatched", "missing_ids", "coverage",
          "ask_missing")
PAPER = PAPER_SIGNALS
# Cost of a false abstention relative to a missed one when choosing a threshold.
FALSE_ABSTENTION_COST = 6.0
# F-beta for the multi-paper threshold (F2 for the others).
MULTI_BETA = 3.0


def collect(settings) -> list[dict]:
    """Per question: its type, fold key, decision signals and per-paper signals with labels."""
    engine = get_engine(settings)
    rows = []
    for g in read_gold():
        kind = classify(g["question"])
        ret = retrieve(engine, g["question"], kind)
        gold = {_norm_title(t) for t in g.get("gold_titles") or []}
        rows.append({
            "id": g["id"], "type": g["type"], "set": g["_file"], "multi": kind.multi,
            "identity": kind.identity,
            "question": g["question"],
            "signals": question_signals(ret.query, g["question"], ret.sources,
                                        ret.best_dense, engine.weights, kind),
            "papers": [{**sig, "gold": _norm_title(s.paper.title) in gold}
                       for s, sig in zip(ret.sources, paper_signals(
                           ret.query, ret.sources, engine.weights, kind))],
        })
    return rows


def assign_folds(rows: list[dict], k: int, salt: str = "") -> dict[str, int]:
    """Stratified by type, deterministic: within a type, questions ordered by a hash of the
    id (with `salt` before it: another salt, another assignment)."""
    folds = {}
    for t in sorted({r["type"] for r in rows}):
        ids = sorted((r["id"] for r in rows if r["type"] == t),
                     key=lambda i: hashlib.sha256((salt + i).encode()).hexdigest())
        folds.update({qid: j % k for j, qid in enumerate(ids)})
    return folds


def fit_logistic(x: np.ndarray, y: np.ndarray, names) -> dict:
    """Standardised L2 logistic regression, returned as raw-scale bias and weights."""
    from sklearn.linear_model import LogisticRegression

    mu, sd = x.mean(0), x.std(0) + 1e-9
    m = LogisticRegression(C=1.0, max_iter=2000).fit((x - mu) / sd, y)
    w = m.coef_[0] / sd
    return {"bias": float(m.intercept_[0] - (w * mu).sum()),
            "weights": {n: round(float(v), 4) for n, v in zip(names, w)}}


def prob(model: dict, x: np.ndarray, names) -> np.ndarray:
    z = model["bias"] + x @ np.array([model["weights"][n] for n in names])
    return 1 / (1 + np.exp(-z))


def cost_threshold(p_keep: np.ndarray, p_drop: np.ndarray, cost: float) -> float:
    """The threshold minimising cost * (kept wrongly dropped) + (dropped wrongly kept)."""
    cands = np.unique(np.concatenate([p_keep, p_drop, [0.0, 1.0]]))
    costs = [cost * np.mean(p_keep < t) + np.mean(p_drop >= t) for t in cands]
    return float(cands[int(np.argmin(costs))])


def fbeta_threshold(p: np.ndarray, y: np.ndarray, beta: float = 2.0) -> float:
    """The threshold maximising F-beta (recall weighted beta times precision)."""
    best, best_t = -1.0, 0.5
    for t in np.unique(p):
        tp = np.sum((p >= t) & y)
        prec, rec = tp / max(1, np.sum(p >= t)), tp / max(1, np.sum(y))
        f = (1 + beta**2) * prec * rec / max(1e-9, beta**2 * prec + rec)
        if f > best:
            best, best_t = f, float(t)
    return best_t


def fit_all(rows: list[dict], cost: float) -> dict:
    """The three decisions fitted on these questions, thresholds included."""
    types = np.array([r["type"] for r in rows])
    xq = lambda names: np.array([[r["signals"][n] for n in names] for r in rows])  # noqa: E731
    answerable = ~np.isin(types, UNANSWERABLE)
    covered = fit_logistic(xq(COVERED), (types != "unanswerable").astype(int), COVERED)
    p = prob(covered, xq(COVERED), COVERED)
    covered["threshold"] = cost_threshold(p[answerable], p[types == "unanswerable"], cost)
    single = answerable & ~np.array([r["multi"] for r in rows])
    about = single | (types == "not-stated")
    stated = fit_logistic(xq(STATED)[about], single[about].astype(int), STATED)
    p = prob(stated, xq(STATED), STATED)
    # Its threshold is chosen where it is used: a question asking which work it is is
    # never "not stated" (rag/decision.decide), so it does not pull the threshold down.
    asked = ~np.array([r["identity"] for r in rows])
    stated["threshold"] = cost_threshold(p[single & asked], p[(types == "not-stated") & asked],
                                         cost)
    pairs = [(pp, r["multi"]) for r in rows if r["type"] not in UNANSWERABLE
             for pp in r["papers"][1:]]
    xp = np.array([[pp[n] for n in PAPER] for pp, _ in pairs])
    yp = np.array([pp["gold"] for pp, _ in pairs])
    multi = np.array([m for _, m in pairs], dtype=bool)
    paper = fit_logistic(xp, yp.astype(int), PAPER)
    p = prob(paper, xp, PAPER)
    paper["threshold"] = fbeta_threshold(p, yp)
    # A multi-paper answer is judged on the papers it finds: its threshold weighs recall more.
    return {"covered": covered, "stated": stated, "paper": paper,
            "multi_paper_threshold": fbeta_threshold(p[multi], yp[multi], MULTI_BETA)}


def predict(model: dict, row: dict) -> dict:
    """Decision outcomes for one question: abstain / not-stated / answer, and kept papers."""
    c = prob(model["covered"], np.array([row["signals"][n] for n in COVERED]), COVERED)
    s = prob(model["stated"], np.array([row["signals"][n] for n in STATED]), STATED)
    abstain = c < model["covered"]["threshold"]
    not_stated = (not abstain and not (row["multi"] or row["identity"])
                  and s < model["stated"]["threshold"])
    most = 6 if row["multi"] else 3
    cut = model["multi_paper_threshold"] if row["multi"] else model["paper"]["threshold"]
    kept = [0] + [i for i, pp in enumerate(row["papers"][1:], 1) if prob(
        model["paper"], np.array([pp[n] for n in PAPER]), PAPER) >= cut]
    return {"abstain": bool(abstain), "not_stated": bool(not_stated), "kept": kept[:most]}


def cross_validate(rows: list[dict], folds: dict[str, int], k: int, cost: float
                   ) -> tuple[dict[int, dict], dict[str, dict]]:
    """Each fold's fit on the other folds, and every question's held-out outcome."""
    per_fold, outcomes = {}, {}
    for f in range(k):
        per_fold[f] = fit_all([r for r in rows if folds[r["id"]] != f], cost)
        outcomes.update({r["id"]: predict(per_fold[f], r) for r in rows if folds[r["id"]] == f})
    return per_fold, outcomes


def report(rows: list[dict], outcomes: dict[str, dict]) -> dict:
    """Held-out decision figures per question type."""
    table = {}
    for t in ("single", "which-paper", "multi", "unanswerable", "not-stated"):
        sel = [r for r in rows if r["type"] == t]
        out = [outcomes[r["id"]] for r in sel]
        refused = [o["abstain"] or o["not_stated"] for o in out]
        row = {"n": len(sel), "refused": round(float(np.mean(refused)), 3),
               "abstained": round(float(np.mean([o["abstain"] for o in out])), 3)}
        if t not in UNANSWERABLE:
            gold = [sum(pp["gold"] for pp in r["papers"]) or 1 for r in sel]
            hit = [sum(r["papers"][i]["gold"] for i in o["kept"]) for r, o in zip(sel, out)]
            row["kept_gold_recall"] = round(float(np.mean([h / g for h, g in zip(hit, gold)])), 3)
            row["kept_precision"] = round(float(np.mean([h / len(o["kept"]) for h, o in zip(hit, out)])), 3)
        if t == "not-stated":
            row["said_not_stated"] = round(float(np.mean([o["not_stated"] for o in out])), 3)
        table[t] = row
    return table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", help="ASKPAPERS home holding the seed index (default: a temp dir)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5,
                    help="fold assignments to report the held-out spread over")
    ap.add_argument("--cost", type=float, default=FALSE_ABSTENTION_COST,
                    help="cost of a false abstention relative to a missed one")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "decision_fit.json"))
    args = ap.parse_args()
    settings = load_settings(home=Path(args.home or tempfile.mkdtemp(prefix="askpapers-fit-")))
    if store.current_build(settings.index_dir) is None:
        from index.build import build_index
        build_index(settings)
    rows = collect(settings)
    folds = assign_folds(rows, args.folds)
    per_fold, outcomes = cross_validate(rows, folds, args.folds, args.cost)
    held_out = report(rows, outcomes)
    print(f"Decision, {args.folds}-fold cross-validated (fit on {args.folds - 1} folds, "
          "judged on the held-out one):")
    keys = ("refused", "abstained", "kept_gold_recall", "kept_precision", "said_not_stated")
    print(f"{'type':<13}{'n':>4}" + "".join(f"{k:>17}" for k in keys))
    for t, row in held_out.items():
        print(f"{t:<13}{row['n']:>4}" + "".join(
            f"{'-' if row.get(k) is None else format(row[k], '.3f'):>17}" for k in keys))
    # ~140 questions make the held-out figures depend on which questions share a fold:
    # the same fit over other assignments shows how far.
    repeats = [report(rows, cross_validate(rows, assign_folds(rows, args.folds, str(i)),
                                           args.folds, args.cost)[1])
               for i in range(1, args.repeats)]
    spread = {t: [held_out[t]["refused"]] + [r[t]["refused"] for r in repeats] for t in held_out}
    print(f"\nRefused, held out, over {args.repeats} fold assignments (the first is the one "
          "above): mean [min-max]")
    for t, v in spread.items():
        print(f"{t:<13} {np.mean(v):.3f} [{min(v):.3f}-{max(v):.3f}]")
    # The one figure the thresholds minimise, to compare signals by: per question, a false
    # refusal costs `cost`, a missed abstention 1.
    n = {t: held_out[t]["n"] for t in held_out}
    costs = [sum((args.cost * v[i] if t not in UNANSWERABLE else 1 - v[i]) * n[t]
                 for t, v in spread.items()) / sum(n.values()) for i in range(args.repeats)]
    print(f"cost per question, held out: {np.mean(costs):.4f} [{min(costs):.4f}-{max(costs):.4f}]")
    final = fit_all(rows, args.cost)
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    result = {"commit": commit, "questions": len(rows), "signals": {
        "covered": COVERED, "stated": STATED, "paper": PAPER},
        "false_abstention_cost": args.cost, "held_out": held_out,
        "refused_over_fold_assignments": spread, "cost_per_question": round(float(np.mean(costs)), 4),
        "folds": {qid: f for qid, f in folds.items()},
        "fold_settings": {str(f): m for f, m in per_fold.items()}, "all": final}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print("\nFit on all questions (the defaults in rag/config.py):")
    print(json.dumps(final, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
