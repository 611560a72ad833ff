""""Export cited papers as BibTeX": a download under the sources panel for the latest answer.

The file is `Answer.to_bibtex()` (entries generated from the records), written to this
process's temporary folder, which Gradio serves to the session that asked. The folder is
removed when the process exits (a stop by SIGINT or SIGTERM exits normally, ui/signals.py).
"""
from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid
from pathlib import Path

import gradio as gr

_folder: Path | None = None


def _out_dir() -> Path:
    global _folder
    if _folder is None:
        _folder = Path(tempfile.mkdtemp(prefix="askpapers-bibtex-"))
        atexit.register(shutil.rmtree, _folder, ignore_errors=True)
    return _folder


def bibtex_file(turns: list[dict]):
    """The download button's update: the latest answer's cited papers as a .bib file, or
    hidden when it cites none."""
    answer = next((t["answer"] for t in reversed(turns or []) if t["answer"] is not None), None)
    text = answer.to_bibtex() if answer is not None and not answer.abstained else ""
    if not text:
        return gr.update(value=None, visible=False)
    folder = _out_dir() / uuid.uuid4().hex
    folder.mkdir()
    path = folder / "cited-papers.bib"
    path.write_text(text, encoding="utf-8")
    return gr.update(value=str(path), visible=True)


def download_button() -> gr.DownloadButton:
    """The (hidden until an answer cites papers) download button, placed where called."""
    return gr.DownloadButton("Export cited papers as BibTeX", visible=False, size="sm",
                             elem_id="ap-bibtex")
