"""Add papers from the page: an uploaded file (any readable format) joins the index by an
incremental build, with a progress bar; the new papers are answerable when it ends.

A file is checked before anything is written: its kind, its size (at most MAX_UPLOAD_BYTES;
Gradio refuses larger uploads before they reach us) and that it holds papers. Accepted files
are kept in <home>/uploads/, which joins the sources the live index was built from. A
failed check or build leaves the index and the uploads folder as they were. Uploading
needs the app's login whenever the app is exposed (ui/exposure.py:check_exposure).
"""
from __future__ import annotations

import hashlib
import logging
import re
import shutil
from pathlib import Path

import gradio as gr

from rag.config import Settings
from rag.errors import AskPapersError, SourceError

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 100 * 2**20
SUFFIXES = (".bib", ".ris", ".json", ".pdf", ".jsonl", ".txt", ".md")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def uploads_dir(settings: Settings) -> Path:
    return settings.home / "uploads"


def check_upload(path: Path, name: str) -> None:
    """Refuse a file that is not a source we read, too large, or holds no paper.

    Raises SourceError with a message for the page."""
    from index.readers import ReadReport, iter_papers

    if Path(name).suffix.lower() not in SUFFIXES:
        raise SourceError(f"{name}: not a paper file; upload one of {', '.join(SUFFIXES)}.")
    if path.stat().st_size > MAX_UPLOAD_BYTES:
        raise SourceError(f"{name} is larger than {MAX_UPLOAD_BYTES // 2**20} MB.")
    report = ReadReport()
    try:
        found = next(iter(iter_papers([path], report)), None)
    except SourceError as e:
        raise SourceError(str(e).replace(str(path), name)) from None
    if found is None:
        why = "; ".join(s.replace(path.name, name) for s in report.skipped[:3])
        raise SourceError(f"{name} holds no papers" + (f" ({why})" if why else "") + ".")


def stored_name(path: Path, name: str) -> str:
    """A safe file name for the uploads folder: the content hash, then the cleaned name."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    stem = _UNSAFE.sub("_", Path(name).stem)[:60].strip("._") or "papers"
    return f"{digest}-{stem}{Path(name).suffix.lower()}"


def build_sources(settings: Settings) -> list[Path]:
    """What the live index was built from (else the configured sources), plus the uploads."""
    from rag import store

    sources = list(settings.index.sources)
    try:
        build = store.current_build(settings.index_dir)
        if build is not None:
            sources = store.recorded_sources(store.read_manifest(build))
    except AskPapersError as e:
        log.warning("live index unreadable, building from the configured sources: %s", e)
    up = uploads_dir(settings)
    return sources if any(Path(s).resolve() == up.resolve() for s in sources) else [*sources, up]


def add_papers(settings: Settings, files: list[tuple[Path, str]], progress=None):
    """Check (path, original name) files, keep them in the uploads folder and rebuild
    incrementally; returns the BuildReport. Raises SourceError or the build's errors, after
    removing the files this call added."""
    from index.build import build_index

    for path, name in files:
        check_upload(path, name)
    up = uploads_dir(settings)
    up.mkdir(parents=True, exist_ok=True)
    added = []
    try:
        for path, name in files:
            target = up / stored_name(path, name)
            if not target.exists():
                shutil.copyfile(path, target)
                added.append(target)
        return build_index(settings, build_sources(settings), progress=progress)
    except BaseException:
        for target in added:
            target.unlink(missing_ok=True)
        raise


def upload_box() -> gr.File:
    """The upload widget (placed where it is called)."""
    return gr.File(label="Add papers: .bib, .ris, Zotero .json, .pdf, .jsonl, .txt "
                   f"(up to {MAX_UPLOAD_BYTES // 2**20} MB each)", file_count="multiple",
                   file_types=list(SUFFIXES), type="filepath", elem_id="ap-upload")


def wire(box: gr.File, handlers, outputs: list) -> None:
    """Run an upload through add_papers, then refresh what shows the corpus (`outputs`,
    as ChatApp.page_data gives them, the accordion left as the user has it)."""
    from ui import render

    def on_upload(paths, progress=gr.Progress()):  # noqa: B008 - Gradio's way to ask for a progress bar
        progress(0, desc="Reading the uploaded files")

        def report(done: int, total: int) -> None:
            progress((done, total), desc="Embedding new chunks", unit="chunks")

        files = [(Path(p), Path(p).name) for p in paths or []]
        try:
            r = add_papers(handlers.settings, files, progress=report)
        except AskPapersError as e:
            status, _ = handlers.index_status()
            return (render.build_failed_status(str(e), status), gr.skip(), gr.skip(),
                    gr.skip(), gr.skip(), None)
        gr.Info(f"Added {r.added} papers ({r.changed} changed, {len(r.skipped)} entries skipped).")
        status, build, examples, listings, _ = handlers.page_data()
        return status, build, examples, listings, gr.skip(), None  # the panel stays open

    box.upload(on_upload, inputs=box, outputs=[*outputs, box], api_name="add_papers",
               concurrency_limit=1, concurrency_id="build")
