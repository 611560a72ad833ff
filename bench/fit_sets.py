"""The question sets the answer decision and the sentence priors are fitted on, in one place.

- ../shared/eval/dev.jsonl (40) and dev2.jsonl (102): the team's eval sets;
- bench/questions/probe1.jsonl .. probe5.jsonl (60 each): questions written by session
  helpers that had never read the code, on seed papers drawn at random and not in the sets
  before them, in the same five types and styles. Each was measured once as a fresh
  held-out set before it joined the fit (README "Measured";
  bench/results/probeN_held_out.json).

bench/questions/probe6.jsonl, probe7.jsonl and probe8.jsonl (60 each, written the same
way; the seeds had too few papers left that no set had used, so they also ask new
questions about used ones) are not in the list: each was measured held out against the
fit on these 442 (bench/results/probeN_held_out.json; probe7 also on the code before
56dce74, probe7_before_a02b4a9.json). Add them with the next fresh set; probe8 was
written after the local model's yes joined the decision and first measured on it.
bench/questions/probe9.jsonl (34) is what was left of a helper's 60 after dropping, before
any run, every question whose type and gold paper a fit-set question already has (26: all
its multi-paper questions, 7 single, 5 which-paper, 2 not-stated; every seed paper is some
set's gold paper by now). Every figure quoted from a
fit is cross-validated over the list; a new probe set is measured once, held out, before
it joins it.
"""
from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EVAL = REPO.parent / "shared" / "eval"
FIT_SETS = (EVAL / "dev.jsonl", EVAL / "dev2.jsonl",
            *(REPO / "bench" / "questions" / f"probe{i}.jsonl" for i in (1, 2, 3, 4, 5)))


def read_gold(paths=FIT_SETS) -> list[dict]:
    """The questions of these files, each with its file's name in "_file"."""
    return [{**json.loads(line), "_file": Path(path).name} for path in paths
            for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
