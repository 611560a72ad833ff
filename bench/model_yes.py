"""The local model's graded yes for every fit question: what local mode's decision weighs.

For every question of the fit sets (bench/fit_sets.py) that local mode asks it of (all but
multi-paper ones) this asks the local 1.5B model, on the context its answer would get,
`rag.prompts.YES_TAIL`, through the same call the answer path makes
(`rag.generation.model_yes`), and reads the probability of "yes" from the next-token
logits. It prints how well that probability separates answerable questions from the rest
(area under the ROC curve, beside the best cheap signals) and writes the probabilities to
bench/results/model_yes.json, which `bench/fit_decision.py --yes` fits the local decisions on.

Usage: python bench/model_yes.py --home DIR [--probs FILE] [--out FILE]
  --probs reuses the probabilities recorded in an earlier run's JSON and asks the model
  only for the questions it lacks (a question newly read as about one paper).
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


def yes_probabilities(settings, rows: list[dict], known: dict[str, float]) -> dict[str, float]:
    """The local model's yes (rag/llm.py `yes_probability`) on the context its answer
    would get, per question the answer path asks it of (all but multi-paper ones); those
    in `known` keep their recorded probability."""
    from rag.generation import model_yes
    from rag.llm import get_chat_model

    engine = get_engine(settings)
    model = get_chat_model(settings, "local")
    probs = {}
    for r in rows:
        t = time.perf_counter()
        if r["multi"]:
            continue
        if r["id"] in known:
            probs[r["id"]] = known[r["id"]]
            continue
        if (got := answer_context(settings, engine, r["question"])) is None:
            continue
        probs[r["id"]] = model_yes(engine, model, got[1], r["question"], None)
        print(f"{r['id']:<6}{r['type']:<14}{probs[r['id']]:.3f} {time.perf_counter() - t:5.1f} s",
              flush=True)
    return probs


def auc(pos: list[float], neg: list[float]) -> float:
    """Area under the ROC curve: the chance a positive scores above a negative."""
    return float(np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg]))


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
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "model_yes.json"))
    args = ap.parse_args()
    settings = load_settings(home=Path(args.home))
    rows = fd.collect(settings)
    known = json.loads(Path(args.probs).read_text())["probabilities"] if args.probs else {}
    probs = yes_probabilities(settings, rows, known)
    rows = [r for r in rows if r["id"] in probs]
    aucs = separation(rows, probs)
    result = {"questions": len(rows), "prompt_tail": prompts.YES_TAIL, "auc": aucs,
              "probabilities": probs}
    print("\nArea under the ROC curve (all questions asked, not held out):")
    for name, row in aucs.items():
        print(f"  {name:<10} answerable vs unanswerable {row['answerable_vs_unanswerable']:.3f}"
              f"   single vs not-stated {row['single_vs_not_stated']:.3f}")
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
