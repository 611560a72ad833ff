"""Refresh docs/screenshot.png, the README's picture of the chat app, on purpose.

Runs the browser test that asks a question, follows a citation and votes, and points its
screenshot here instead of at the test's temp folder (tests never write tracked files).
Needs what `make test` needs: the venv and Debian's chromium.

Usage: .venv/bin/python docs/refresh_screenshot.py
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEST = "tests/test_ui_browser.py::test_ask_cite_follow_up_vote_and_screenshot"

if __name__ == "__main__":
    env = {**os.environ, "HF_HUB_OFFLINE": "1",
           "REFRESH_SCREENSHOT_TO": str(REPO / "docs" / "screenshot.png")}
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", "-q", "-m", "slow", TEST],
                             cwd=REPO, env=env))
