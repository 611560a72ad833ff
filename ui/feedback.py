"""Thumbs up/down on answers, appended as JSON lines to <home>/feedback.jsonl.

A record holds the question, the answer, its citations, the mode and the vote: never a
setting, so never an API key.
"""
from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path

from rag.types import Answer

FEEDBACK_FILE = "feedback.jsonl"
_write_lock = threading.Lock()


def feedback_path(home: Path) -> Path:
    """Where feedback for this askpapers home is kept."""
    return Path(home).expanduser() / FEEDBACK_FILE


def feedback_record(answer: Answer, vote: str) -> dict:
    """The JSON-ready record of one vote ('up' or 'down') on one answer."""
    return {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
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
