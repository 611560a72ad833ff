"""bench/fit_decision.py's reading of issue 11's targets (its frontier report)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import fit_decision  # noqa: E402

MET = {"single": 0.04, "which-paper": 0.05, "multi": 0.0, "unanswerable": 0.95,
       "not-stated": 0.9}


def test_refusals_at_every_bar_meet_the_targets():
    assert fit_decision.meets_targets(MET)


def test_too_many_false_refusals_of_any_answerable_type_miss_them():
    for t in ("single", "which-paper", "multi"):
        assert not fit_decision.meets_targets({**MET, t: 0.051})


def test_too_few_refusals_of_unanswerable_or_not_stated_questions_miss_them():
    assert not fit_decision.meets_targets({**MET, "unanswerable": 0.94})
    assert not fit_decision.meets_targets({**MET, "not-stated": 0.84})
