"""Thumbs up/down on answers, appended as JSON lines to <home>/feedback.jsonl.

A record holds the question, the answer, its citations, the mode and the vote: never a
setting, so never an API key. Votes are rate-limited per browser session (`VoteLimit`).
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from rag.types import Answer

FEEDBACK_FILE = "feedback.jsonl"
_write_lock = threading.Lock()
# A person changes their mind a few times; a script voting in a loop is refused.
VOTES_PER_WINDOW = 10
VOTE_WINDOW_S = 60.0


def feedback_path(home: Path) -> Path:
    """Where feedback for this askpapers home is kept."""
    return Path(home).expanduser() / FEEDBACK_FILE


def feedback_record(answer: Answer, vote: str) -> dict:
    """The JSON-ready record of one vote ('up' or 'down') on one answer."""
    return {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "question": answer.question,
        "answer": answer.text,
        "citations": [{"n": c.n, "paper_id": c.paper_id, "title": c.title, "quote": c.quote}
                      for c in answer.citations],
        "abstained": answer.abstained,
        "mode": answer.mode,
        "vote": vote,
    }


def record_feedback(home: Path, answer: Answer, vote: str) -> dict:
    """Append one vote to the feedback file and return the record.

    Raises OSError when the file cannot be written (the UI reports it).
    """
    if vote not in ("up", "down"):
        raise ValueError(f"vote must be 'up' or 'down', not {vote!r}")
    record = feedback_record(answer, vote)
    path = feedback_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, ensure_ascii=False) + "\n"
    with _write_lock, path.open("a", encoding="utf-8") as f:
        f.write(line)
    return record


class VoteLimit:
    """At most `votes` votes per `window_s` seconds for each session (a sliding window)."""

    def __init__(self, votes: int = VOTES_PER_WINDOW, window_s: float = VOTE_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic):
        self.votes, self.window_s, self.clock = votes, window_s, clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, session: str) -> bool:
        """Count a vote for `session`: True if it is within the limit, else False."""
        now = self.clock()
        with self._lock:
            times = self._seen.setdefault(session, deque())
            while times and times[0] <= now - self.window_s:
                times.popleft()
            if len(times) >= self.votes:
                return False
            times.append(now)
            if len(self._seen) > 10_000:  # bounded memory: forget idle sessions
                self._seen = {k: v for k, v in self._seen.items()
                              if v and v[-1] > now - self.window_s}
            return True
