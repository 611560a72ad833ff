"""The question sets the answer decision and the sentence priors are fitted on, in one place.

- ../shared/eval/dev.jsonl (40) and dev2.jsonl (102): the team's eval sets;
- bench/questions/probe1.jsonl (60): questions written by a session helper that had never
  read the code, on seed papers drawn at random and not in the two sets above, in the
  same five types and styles. Measured once as a fresh held-out set (the decision fitted
  on the other two, README "Measured"), then added to the fit.

bench/questions/probe2.jsonl and probe3.jsonl (60 each, written the same way) are not in
the list: each was measured held out against the fit on these 202
(bench/results/probe2_held_out.json at 62b317f, probe3_held_out.json at a0b5218). Rules
since 62b317f came from reading probe2 misses, so it is no longer clean for them. Every
figure quoted from a fit is cross-validated over the list; a new probe set is measured
once, held out, before it joins it.
"""
from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EVAL = REPO.parent / "shared" / "eval"
FIT_SETS = (EVAL / "dev.jsonl", EVAL / "dev2.jsonl", REPO / "bench" / "questions" / "probe1.jsonl")


def read_gold(paths=FIT_SETS) -> list[dict]:
    """The questions of these files, each with its file's name in "_file"."""
    return [{**json.loads(line), "_file": Path(path).name} for path in paths
            for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
