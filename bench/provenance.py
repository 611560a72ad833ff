"""What every result file under bench/results/ records about the run that wrote it: the
commit (and whether tracked files differed from it), the settings, and the machine and its
load. Benches put `provenance(settings)` under the "provenance" key of their JSON."""
from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def provenance(settings=None, **extra) -> dict:
    """The commit, settings (the defaults when none are given), cores and load average now."""
    if settings is None:
        from rag.config import load_settings

        settings = load_settings()
    changed = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results")
    return {"commit": _git("rev-parse", "HEAD"), "uncommitted_changes": bool(changed),
            "settings": settings.model_dump(mode="json"), "cores": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **extra}
