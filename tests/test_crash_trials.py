"""Crash safety: incremental rebuilds killed with SIGKILL at random moments leave an index
that loads, holds the old or the new content in full and answers; a half-written temp build
is removed by the next build. bench/crash_trials.py runs more trials, full builds included."""
from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import crash_trials  # noqa: E402


@pytest.mark.slow
def test_killed_rebuilds_leave_a_whole_index_and_leftovers_are_removed(index_copy, tmp_path):
    prep = crash_trials.prepare(tmp_path, base_home=index_copy.home)
    assert prep["old"] != prep["new"] and prep["old"][0] == prep["new"][0] == 478
    rows = crash_trials.run_trials(prep, tmp_path, 3, 0.0, None, random.Random(1))
    assert [r["survived"] for r in rows] == [True] * 3, rows
    assert all(r["content"] in ("old", "new") for r in rows)
    # A power cut mid-write leaves a half-written builds/.tmp-*: the next build removes it.
    cut = crash_trials.power_cut(prep["base"], tmp_path, prep["sources"])
    assert cut["stale_removed"] and cut["leftovers"] == []
