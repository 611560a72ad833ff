"""Does the local model's graded "yes" pay beside the decision's signals? (issue 11)

For every question of the fit sets (bench/fit_sets.py) this asks the local 1.5B model, on the
context its answer would get, "Do the sources answer the question? Reply only yes or no."
and reads the probability of "yes" from the next-token logits (no text is generated, so
the reply's wording cannot hide a doubt). It prints how well that probability separates
answerable questions from the rest (area under the ROC curve, beside the best lexical
signals) and the held-out refusals when the model vetoes the decision's answers below a
threshold fitted on the training folds (bench/fit_decision.py's folds and cost, eight
fold assignments), and when it is one more input of the covered and stated regressions,
and writes these and the probabilities to bench/results/model_yes.json.

Usage: python bench/model_yes.py --home DIR [--probs FILE] [--cost 6]
  --probs reuses the probabilities recorded in an earlier run's JSON.
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
from model_check import answer_context  # noqa: E402

from rag import prompts  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.engine import get_engine  # noqa: E402
from rag.evaluation import UNANSWERABLE  # noqa: E402

TAIL = "Do the sources answer the question? Reply only yes or no."
TYPES = ("single", "which-paper", "multi", "unanswerable", "not-stated")


def yes_probabilities(settings, rows: list[dict]) -> dict[str, float]:
    """P("yes") / (P("yes") + P("no")) of the local model's next token, per question."""
    from rag.llm import get_chat_model

    engine = get_engine(settings)
    model = get_chat_model(settings, "local")
    llama = model._llama  # the logits are read directly: this is a measurement, not a path
    first = lambda w: llama.tokenize(w.encode(), add_bos=False, special=False)[0]  # noqa: E731
    yes, no = [first(w) for w in ("yes", "Yes", "YES")], [first(w) for w in ("no", "No", "NO")]
    probs = {}
    for r in rows:
        t = time.perf_counter()
        if (got := answer_context(settings, engine, r["question"])) is None:
            continue
        ids = model.tokens(prompts.messages(got[1], r["question"], TAIL))
        llama.n_tokens = 0
        llama.eval(ids)
        logits = np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(llama.n_vocab(),))
        p = np.exp(logits - logits.max())
        probs[r["id"]] = float(p[yes].sum() / (p[yes].sum() + p[no].sum()))
        print(f"{r['id']:<6}{r['type']:<14}{probs[r['id']]:.3f} {time.perf_counter() - t:5.1f} s",
              flush=True)
    return probs


def auc(pos: list[float], neg: list[float]) -> float:
    """Area under the ROC curve: the chance a positive scores above a negative."""
    return float(np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg]))


def _cost(rows: list[dict], refused: dict[str, bool], probs: dict[str, float], t: float,
          cost: float) -> float:
    """bench/fit_decision.py's cost when the model vetoes answers below `t`."""
    out = {r["id"]: refused[r["id"]] or probs[r["id"]] < t for r in rows}
    wrong = [out[r["id"]] for r in rows if r["type"] not in UNANSWERABLE]
    missed = [not out[r["id"]] for r in rows if r["type"] in UNANSWERABLE]
    return cost * float(np.mean(wrong)) + float(np.mean(missed))


def vetoed(rows: list[dict], probs: dict[str, float], cost: float, repeats: int) -> dict:
    """Held-out refusals per type, decision alone and with the model's veto below a
    threshold chosen on the training folds (mean over fold assignments)."""
    alone, veto = {t: [] for t in TYPES}, {t: [] for t in TYPES}
    for i in range(repeats):
        folds = fd.assign_folds(rows, 5, "" if i == 0 else str(i))
        out = {}
        for f in range(5):
            train = [r for r in rows if folds[r["id"]] != f]
            model = fd.fit_all(train, cost)
            refused = {r["id"]: any(fd.predict(model, r)[k] for k in ("abstain", "not_stated"))
                       for r in rows}
            t = min([0.0] + sorted(probs[r["id"]] for r in train),
                    key=lambda t, tr=train, rf=refused: (_cost(tr, rf, probs, t, cost), t))
            out.update({r["id"]: (refused[r["id"]], refused[r["id"]] or probs[r["id"]] < t)
                        for r in rows if folds[r["id"]] == f})
        for ty in TYPES:
            sel = [out[r["id"]] for r in rows if r["type"] == ty]
            alone[ty].append(float(np.mean([a for a, _ in sel])))
            veto[ty].append(float(np.mean([v for _, v in sel])))
    mean = lambda d: {t: round(float(np.mean(v)), 3) for t, v in d.items()}  # noqa: E731
    return {"decision_alone": mean(alone), "with_model_veto": mean(veto)}


def as_input(rows: list[dict], probs: dict[str, float], cost: float, repeats: int) -> dict:
    """Held-out refusals per type when the model's yes (as a log-odds) is one more input
    of the covered regression, the stated one, or both (mean over fold assignments)."""
    for r in rows:
        p = min(max(probs[r["id"]], 1e-4), 1 - 1e-4)
        r["signals"]["model_yes"] = float(np.log(p / (1 - p)))
    base = fd.COVERED, fd.STATED
    out = {}
    try:
        for name, covered, stated in (
                ("yes_in_covered", base[0] + ("model_yes",), base[1]),
                ("yes_in_stated", base[0], base[1] + ("model_yes",)),
                ("yes_in_both", base[0] + ("model_yes",), base[1] + ("model_yes",))):
            fd.COVERED, fd.STATED = covered, stated
            got = {t: [] for t in TYPES}
            for i in range(repeats):
                held = fd.cross_validate(rows, fd.assign_folds(rows, 5, "" if i == 0 else str(i)),
                                         5, cost)[1]
                for t in TYPES:
                    got[t].append(float(np.mean([held[r["id"]]["abstain"]
                                                 or held[r["id"]]["not_stated"]
                                                 for r in rows if r["type"] == t])))
            out[name] = {t: round(float(np.mean(v)), 3) for t, v in got.items()}
    finally:
        fd.COVERED, fd.STATED = base
    return out


def separation(rows: list[dict], probs: dict[str, float]) -> dict:
    """Area under the ROC curve of the model's yes and the best cheap signals."""
    out = {}
    for name in ("model_yes", "coverage", "dense", "ask_match"):
        score = {r["id"]: probs[r["id"]] if name == "model_yes" else r["signals"][name]
                 for r in rows}
        of = lambda types, sc=score: [sc[r["id"]] for r in rows if r["type"] in types]  # noqa: E731
        out[name] = {
            "answerable_vs_unanswerable": round(auc(of(("single", "which-paper", "multi")),
                                                    of(("unanswerable",))), 3),
            "single_vs_not_stated": round(auc(of(("single",)), of(("not-stated",))), 3)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", required=True, help="ASKPAPERS home holding the seed index")
    ap.add_argument("--probs", help="JSON of an earlier run: reuse its recorded probabilities")
    ap.add_argument("--cost", type=float, default=fd.FALSE_ABSTENTION_COST)
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "model_yes.json"))
    args = ap.parse_args()
    settings = load_settings(home=Path(args.home))
    rows = fd.collect(settings)
    probs = (json.loads(Path(args.probs).read_text())["probabilities"] if args.probs
             else yes_probabilities(settings, rows))
    rows = [r for r in rows if r["id"] in probs]
    aucs = separation(rows, probs)
    result = {"questions": len(rows), "prompt_tail": TAIL, "cost": args.cost,
              "auc": aucs, **vetoed(rows, probs, args.cost, args.repeats),
              **as_input(rows, probs, args.cost, args.repeats),
              "probabilities": probs}
    print("\nArea under the ROC curve (all questions, not held out):")
    for name, row in aucs.items():
        print(f"  {name:<10} answerable vs unanswerable {row['answerable_vs_unanswerable']:.3f}"
              f"   single vs not-stated {row['single_vs_not_stated']:.3f}")
    print(f"\nRefused, held out, mean over {args.repeats} fold assignments:")
    print(f"{'':<18}" + "".join(f"{t:>14}" for t in TYPES))
    for key in ("decision_alone", "with_model_veto", "yes_in_covered", "yes_in_stated",
                "yes_in_both"):
        print(f"{key:<18}" + "".join(f"{v:>14.3f}" for v in result[key].values()))
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
