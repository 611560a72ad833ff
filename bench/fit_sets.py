"""The question sets the answer decision and the sentence priors are fitted on, in one place.

- ../shared/eval/dev.jsonl (40) and dev2.jsonl (102): the team's eval sets;
- bench/questions/probe1.jsonl .. probe5.jsonl (60 each): questions written by session
  helpers that had never read the code, on seed papers drawn at random and not in the sets
  before them, in the same five types and styles. Each was measured once as a fresh
  held-out set before it joined the fit (docs/measured.md;
  bench/results/probeN_held_out.json).
- bench/questions/probe6.jsonl .. probe9.jsonl (60, 60, 60 and 34), written the same way;
  the seeds had too few papers left that no set had used, so they also ask new questions
  about used ones. probe9 is what was left of a helper's 60 after dropping, before any run,
  every question whose type and gold paper an earlier set's question already has. Each
  was measured held out against the fit on the sets before it, then joined the list
  (656 questions in all).

- bench/questions/probe10.jsonl .. probe17.jsonl (60 each): written by helpers that never
  read the code or the eval files (from probe15 on, only the seed papers' titles and
  abstracts), gold papers drawn only from those no set had used for the question's type.
  Each was measured once, held out, against the fit on the sets before it
  (bench/results/probeN_held_out*.json), then, in session 41, joined the list (1,136
  questions in all).

- bench/questions/probe18.jsonl .. probe22.jsonl (60 each), written the same way. Each was
  measured once, held out (probe18 against the fit on the 656 and on the 1,136, probe19 to
  probe22 against the fit on the 1,136; bench/results/probe18_*.json,
  probe20_held_out_246b99d.json, probe21_held_out_aab5dd8.json,
  probe22_held_out_42bb548*.json), then, in session 46, joined the list (1,436 questions in
  all).

Every figure quoted from a fit is cross-validated over the list; a new probe set is measured
once, held out, before it joins it.
"""
from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EVAL = REPO.parent / "shared" / "eval"
FIT_SETS = (EVAL / "dev.jsonl", EVAL / "dev2.jsonl",
            *(REPO / "bench" / "questions" / f"probe{i}.jsonl" for i in range(1, 23)))


def read_gold(paths=FIT_SETS) -> list[dict]:
    """The questions of these files, each with its file's name in "_file"."""
    return [{**json.loads(line), "_file": Path(path).name} for path in paths
            for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
