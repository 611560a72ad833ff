"""What a bench result records about its run: the commit and the machine's load."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"


def commit() -> str:
    """The short hash of HEAD (a dirty tree is not marked)."""
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()


def machine(load_start: tuple[float, float, float]) -> dict:
    """CPU count and the load average at the start (given) and now."""
    return {"cpus": os.cpu_count(), "load_avg_start": load_start, "load_avg_end": os.getloadavg()}
