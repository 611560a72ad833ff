"""Build or refresh the index: read sources, chunk, embed what changed, publish atomically.

The steps and their on-disk state live in index/staging.py; the step seam (BuildSteps,
BuildReport) in index/steps.py."""
from __future__ import annotations

import logging
import shutil
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from index.readers import ReadReport, expand_sources, no_papers_error
from index.staging import Stage, new_stage, plan_of, resumable_stage
from index.steps import BuildReport, BuildSteps
from rag import store
from rag.config import Settings
from rag.embedder import load_embedder
from rag.errors import AskPapersError
from rag.faults import disk_full_error, is_disk_full
from rag.publish import BuildLock, remove_stale_builds
from rag.vectorstores import make_backend

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


def _previous_build(index_dir: Path, settings: Settings) -> Path | None:
    """The live build when its chunks and vectors can be reused, else None."""
    try:
        build = store.current_build(index_dir)
        if build is None:
            return None
        manifest = store.read_manifest(build)
        if store.embedding_mismatches(manifest, settings):
            log.info("previous index was built with other settings; embedding everything")
            return None
        store.check_build(build, manifest)  # never reuse vectors or text changed after the build
        records = store.open_records(build)
        n_chunks = records.counts()["chunks"]
        records.close()
        if len(store.read_embeddings(build)) != n_chunks:
            return None
    except AskPapersError as e:
        log.warning("previous index unusable (%s); embedding everything", e)
        return None
    return build


def _live_build(index_dir: Path) -> Path | None:
    """The live build, when its records are readable: what a build report compares against
    (a --full build too), or None."""
    try:
        build = store.current_build(index_dir)
        if build is not None:
            store.open_records(build).close()
        return build
    except AskPapersError:
        return None


def _fill_stage(stage: Stage, files: list[Path], settings: Settings, report: BuildReport,
                progress: Progress | None, steps: BuildSteps) -> tuple[np.ndarray, dict]:
    """Collect, plan, embed and assemble into the stage; returns (embeddings, manifest part)."""
    t0 = time.perf_counter()
    read = ReadReport()
    got = stage.collect(steps.read(files, read), lambda: {"skipped": read.skipped})
    if not got["papers"]:
        raise no_papers_error(ReadReport(skipped=got["skipped"]))
    plan = stage.plan(settings, steps.chunk, steps.plan_page)
    report.papers, report.skipped = got["papers"], got["skipped"]
    report.added, report.removed = plan["added"], plan["removed"]
    report.changed = plan.get("changed", plan["fresh"] - plan["added"])
    report.unchanged = got["papers"] - report.added - report.changed
    report.chunks, report.embedded, report.reused = plan["chunks"], plan["embed"], plan["reused"]
    report.seconds["read_chunk"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    size = settings.index.embed_batch
    report.batches, report.resumed_batches = stage.embed(size, steps.embed(settings, report), progress)
    report.seconds["embed"] = time.perf_counter() - t1
    dim = stage.dim() or load_embedder(settings.embedder.model).dim
    emb = stage.assemble(size, report.batches, dim)
    manifest = {**store.shaping_settings(settings, dim), "paper_hashes": stage.paper_hashes(),
                "skipped": got["skipped"]}
    return emb, manifest


def build_index(settings: Settings, sources: Sequence[Path] | None = None, *, full: bool = False,
                progress: Progress | None = None, ray_address: str | None = None,
                steps: BuildSteps | None = None) -> BuildReport:
    """Build the index from `sources` (default: the configured ones), reusing unchanged papers.

    Streams the sources into a stage on disk and embeds in batches; a build that was killed
    is resumed by the next build with the same sources and settings. With `ray_address`
    ("local" for a Ray started in this process, "auto", "host:port" or "ray://host:port")
    reading, chunking and embedding run on that Ray cluster; staging, writing and
    publishing stay here. `steps` replaces the in-process steps (index/steps.py; a test's
    fake embedder, say). Raises SourceError for unusable sources (the live index is
    untouched), IndexBusyError when another build runs, IndexWriteError when the index
    folder is not writable, MissingExtraError / ClusterError when Ray is not installed or
    the cluster fails.
    """
    if ray_address is None:
        return _build(settings, sources, full, progress, steps or BuildSteps())
    from index.ray_build import ray_steps

    with ray_steps(ray_address) as steps:
        return _build(settings, sources, full, progress, steps)


def _discard_stage(stage: Stage | None, path: Path, error: BaseException) -> None:
    """Remove a failed build's stage, after closing what holds its files open (SQLite
    connections, memory maps in the failed calls' frames) so its space comes back now."""
    if stage is not None:
        stage.close()
    while error is not None:  # the error and those it was raised from
        traceback.clear_frames(error.__traceback__)
        error = error.__context__
    shutil.rmtree(path, ignore_errors=True)


def _build(settings: Settings, sources: Sequence[Path] | None, full: bool,
           progress: Progress | None, steps: BuildSteps) -> BuildReport:
    index_dir = settings.index_dir
    sources = [Path(s) for s in (sources or settings.sources)]
    t0 = time.perf_counter()
    with BuildLock(index_dir):
        backend = make_backend(settings.index)  # an unreachable vector store fails here, early
        files = expand_sources(sources)
        previous = None if full else _previous_build(index_dir, settings)
        plan = plan_of(files, settings, full, previous)
        resumed = resumable_stage(index_dir, plan)
        remove_stale_builds(index_dir, keep=resumed, vector_uri=settings.index.vector_uri)
        path = resumed or new_stage(index_dir, plan)
        report = BuildReport(build_dir=index_dir)
        stage = None
        try:
            stage = Stage(path, previous, live=_live_build(index_dir))
            emb, manifest = _fill_stage(stage, files, settings, report, progress, steps)
            t2 = time.perf_counter()
            _, report.build_dir = stage.publish(
                index_dir, emb, {**manifest, "sources": [str(s) for s in sources]}, backend)
            report.seconds["write"] = time.perf_counter() - t2
        except KeyboardInterrupt:
            raise  # an interrupted build keeps its stage, to be resumed
        except BaseException as e:
            full = is_disk_full(e, path)  # before the stage's space is given back
            emb = None  # noqa: F841 - its memory map holds the stage's embeddings.npy open
            _discard_stage(stage, path, e)
            if full:
                raise disk_full_error(path) from None
            raise
    report.seconds["total"] = time.perf_counter() - t0
    return report
