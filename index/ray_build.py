"""Distributed rebuild: reading, chunking and embedding as Ray Data pipelines.

`ray_steps(address)` connects to (or starts) a Ray cluster and yields the `BuildSteps`
that `index.build` runs in place of its in-process ones; the lock, the resumable stage,
incremental reuse, writing and the atomic publish stay in `index.build`. Each step returns
what the in-process step returns: the files' papers in reading order, chunks numbered from
0 in paper order, each embedding batch's vectors in the order of its texts.

Embedding runs as one Ray Data job per group of the stage's resumable batches (enough to
keep every worker busy for a while): an actor pool loads the model once per worker per
group, and each batch is saved by the stage as soon as all its rows are back, so a killed
Ray build resumes like a local one.

Workers run this process's own `rag` and `index` packages (shipped as Ray `py_modules`),
so cluster nodes need only the dependencies (`pip install 'askpapers[scale]'`) and the
source files at the same paths.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from index.chunking import chunk_paper, make_splitter
from index.identifiers import same_paper_ids
from index.readers import ReadReport, read_path
from index.steps import BuildReport, BuildSteps
from rag.config import ChunkSettings, Settings
from rag.errors import AskPapersError, ClusterError, MissingExtraError
from rag.types import Chunk, Paper

log = logging.getLogger(__name__)

# Environment a worker needs to load models the way this process does (offline, same cache).
_PASSED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "TOKENIZERS_PARALLELISM")
_CONNECT_TIMEOUT_S = 5.0
_PAPERS_PER_CHUNK_BATCH = 256
_PLAN_PAGE = 50_000  # papers sent to the cluster per chunking job
_BATCHES_PER_WORKER = 8  # resumable embedding batches per worker in one Ray Data job
# Ray's own console chatter (token notices, "execution finished" lines, errors we re-raise
# as typed errors anyway) is silenced unless we log at INFO.
_RAY_LOGGERS = ("ray", "ray.data")


def _import_ray():
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # never report usage, whoever started the cluster
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise MissingExtraError(
            "Distributed builds need Ray; run: pip install 'askpapers[scale]'") from None
    return ray


def _check_reachable(address: str) -> None:
    """Fail within seconds, not Ray's minute of retries, when nothing listens at host:port."""
    if address in ("local", "auto"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ClusterError(f"Ray address {address!r} is not host:port, ray://host:port or "
                           "'auto'; give --ray alone to start a local Ray.")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), _CONNECT_TIMEOUT_S):
            pass
    except OSError as e:
        raise ClusterError(
            f"No Ray cluster answers at {address} ({e.strerror or e}); start one with "
            "`ray start --head` or check the address. The live index is unchanged.") from None


@contextlib.contextmanager
def _loopback_only(local: bool) -> Iterator[None]:
    """For a Ray started here: keep every server on 127.0.0.1.

    Ray 2.60 turns 127.0.0.1 into the machine's public address, and binds its gRPC servers
    to all interfaces, unless multi-node support is off; that switch is the only way to a
    loopback-only Ray, and it matters only while the node starts.
    """
    if not local:
        yield
        return
    from ray._private import ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


@contextlib.contextmanager
def _backend_log_level(level: str) -> Iterator[None]:
    """Ray's C++ core logs to stderr (e.g. a notice about every actor pool); quiet it."""
    saved = os.environ.get("RAY_BACKEND_LOG_LEVEL")
    os.environ["RAY_BACKEND_LOG_LEVEL"] = saved or level
    try:
        yield
    finally:
        if saved is None:
            del os.environ["RAY_BACKEND_LOG_LEVEL"]


def _connect(ray, address: str) -> None:
    import index
    import rag

    env = {name: os.environ[name] for name in _PASSED_ENV if name in os.environ}
    kwargs = dict(address=address, runtime_env={"py_modules": [rag, index], "env_vars": env},
                  configure_logging=False, log_to_driver=False, logging_level=logging.WARNING)
    if address == "local":
        kwargs.update(include_dashboard=False, _node_ip_address="127.0.0.1")
    verbose = log.isEnabledFor(logging.INFO)
    try:
        with _loopback_only(address == "local"), _backend_log_level("info" if verbose else "fatal"):
            ray.init(**kwargs)
    except (ConnectionError, RuntimeError, TimeoutError, ValueError) as e:
        raise ClusterError(f"Cannot use the Ray cluster at {address}: {e}. Check that it runs "
                           "(`ray status`) and the address. The live index is unchanged.") from None
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the library is quiet; the CLI shows progress
    context.print_on_execution_start = False
    context.enable_auto_log_stats = False
    context.raise_original_map_exception = True  # a SourceError on a worker stays one


def _cause(error: BaseException) -> BaseException:
    """The user-code exception inside Ray's wrappers (task error, Ray Data's UserCodeException)."""
    seen = error
    while True:
        inner = getattr(seen, "cause", None) or seen.__cause__
        if inner is None or inner is seen:
            return seen
        seen = inner


@contextlib.contextmanager
def ray_steps(address: str) -> Iterator[BuildSteps]:
    """Build steps that run on the Ray cluster at `address`; "local" starts one in-process.

    Raises MissingExtraError without Ray, ClusterError when the cluster cannot be reached
    or fails; an error a worker hits reading sources (SourceError, ModelError) is re-raised
    as itself.
    """
    ray = _import_ray()
    levels = {name: logging.getLogger(name).level for name in _RAY_LOGGERS}
    for name in _RAY_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if log.isEnabledFor(logging.INFO)
                                         else logging.CRITICAL)
    owned = not ray.is_initialized()
    try:
        if owned:
            _check_reachable(address)
            _connect(ray, address)
        yield BuildSteps(read=read_on_ray, chunk=chunk_on_ray, embed=embed_on_ray,
                         plan_page=_PLAN_PAGE)
    except (AskPapersError, ray.exceptions.RayError) as e:
        cause = _cause(e)
        if not isinstance(cause, AskPapersError):
            raise ClusterError(f"The Ray build failed: {cause}. The live index is unchanged.") from None
        # A worker's error comes back in a Ray subclass, with retry advice appended.
        cls = next(c for c in type(cause).__mro__ if c.__module__ == AskPapersError.__module__)
        message = cause.args[0] if cause.args and isinstance(cause.args[0], str) else str(cause)
        raise cls(message.split("\n", 1)[0]) from None
    finally:
        if owned:
            ray.shutdown()
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


# ---------------------------------------------------------------- reading

def _read_file(row: dict) -> dict:
    """Worker side: one file's papers and skipped entries, as JSON, tagged with its place."""
    report = ReadReport()
    papers = [p.to_dict() for p in read_path(Path(row["path"]), report)]
    return {"file": row["file"], "papers": json.dumps(papers), "skipped": json.dumps(report.skipped)}


def read_on_ray(files: list[Path], report: ReadReport) -> Iterator[Paper]:
    """`index.readers.iter_papers` with one Ray task per file; same papers, same order,
    the same ids for papers sharing a DOI or arXiv id.

    Raises SourceError as iter_papers does.
    """
    return same_paper_ids(_read_in_order(files, report))


def _read_in_order(files: list[Path], report: ReadReport) -> Iterator[Paper]:
    import ray

    items = [{"file": i, "path": str(p)} for i, p in enumerate(files)]
    rows = ray.data.from_items(items, override_num_blocks=len(items)).map(_read_file).iter_rows()
    report.files.extend(str(p) for p in files)
    waiting: dict[int, dict] = {}  # files finished ahead of their turn
    turn = 0
    for row in rows:
        waiting[int(row["file"])] = row
        while turn in waiting:  # file order decides merge ties, as in-process
            done = waiting.pop(turn)
            turn += 1
            report.skipped.extend(json.loads(done["skipped"]))
            yield from (Paper.from_dict(d) for d in json.loads(done["papers"]))


# ---------------------------------------------------------------- chunking

def _chunk_batch(batch: dict, cfg: dict) -> dict:
    """Worker side: the chunks of a batch of abstracts, tagged with paper row and position."""
    splitter = make_splitter(ChunkSettings(**cfg))
    out: dict[str, list] = {"paper": [], "n": [], "start": [], "end": [], "text": []}
    for row, pid, abstract in zip(batch["paper"], batch["paper_id"], batch["abstract"], strict=True):
        for n, c in enumerate(chunk_paper(Paper(str(pid), "", str(abstract)), splitter, 0)):
            for key, value in zip(out, (row, n, c.start, c.end, c.text), strict=True):
                out[key].append(value)
    return {key: np.asarray(values) for key, values in out.items()}


def chunk_on_ray(papers: list[Paper], cfg: ChunkSettings) -> list[Chunk]:
    """`index.chunking.chunk_papers` as Ray tasks over batches of papers; same chunks and ids."""
    import ray

    items = [{"paper": i, "paper_id": p.paper_id, "abstract": p.abstract}
             for i, p in enumerate(papers)]
    ds = ray.data.from_items(items).map_batches(
        _chunk_batch, batch_size=_PAPERS_PER_CHUNK_BATCH, batch_format="numpy",
        fn_kwargs={"cfg": cfg.model_dump()})
    rows = sorted(ds.take_all(), key=lambda r: (int(r["paper"]), int(r["n"])))
    return [Chunk(i, papers[int(r["paper"])].paper_id, int(r["start"]), int(r["end"]), str(r["text"]))
            for i, r in enumerate(rows)]


# ---------------------------------------------------------------- embedding

class EmbedWorker:
    """One per Ray actor: loads the embedding model once, then embeds batch after batch."""

    def __init__(self, model: str, batch_size: int):
        from rag.embedder import load_embedder

        self.embedder = load_embedder(model)
        self.batch_size = batch_size

    def __call__(self, batch: dict) -> dict:
        texts = [str(t) for t in batch["text"]]
        over = [self.embedder.count_tokens(t) > self.embedder.max_tokens for t in texts]
        return {"batch": batch["batch"], "pos": batch["pos"], "over": np.asarray(over),
                "vector": self.embedder.embed(texts, batch_size=self.batch_size)}


def embed_on_ray(settings: Settings, report: BuildReport):
    """A batch embedder (index.staging.BatchEmbedder) running on a pool of EmbedWorker
    actors, one per cluster CPU; counts over-long texts on `report`."""
    def embed(batches: Iterable[tuple[int, list[str]]]) -> Iterator[tuple[int, np.ndarray]]:
        import ray

        workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        pending = iter(batches)
        while group := list(itertools.islice(pending, workers * _BATCHES_PER_WORKER)):
            yield from _embed_group(group, workers, settings, report)
    return embed


def _embed_group(group: list[tuple[int, list[str]]], workers: int, settings: Settings,
                 report: BuildReport) -> Iterator[tuple[int, np.ndarray]]:
    """One Ray Data job over a group of batches; yields each batch once all its rows are back."""
    import ray

    size = settings.embedder.batch_size
    ds = ray.data.from_items([{"batch": j, "pos": i, "text": t}
                              for j, texts in group for i, t in enumerate(texts)])
    ds = ds.map_batches(EmbedWorker, fn_constructor_args=(settings.embedder.model, size),
                        batch_size=size, batch_format="numpy", num_cpus=1,
                        compute=ray.data.ActorPoolStrategy(size=workers))
    lengths = {j: len(texts) for j, texts in group}
    vectors: dict[int, np.ndarray] = {}
    filled = dict.fromkeys(lengths, 0)
    for part in ds.iter_batches(batch_size=None, batch_format="numpy"):
        report.over_limit += int(part["over"].sum())
        for j, pos, vec in zip(part["batch"], part["pos"], part["vector"], strict=True):
            j = int(j)
            if j not in vectors:
                vectors[j] = np.zeros((lengths[j], len(vec)), dtype=np.float32)
            vectors[j][int(pos)] = vec
            filled[j] += 1
            if filled[j] == lengths[j]:
                yield j, vectors.pop(j)
    log.info("embedded %d batches on %d Ray workers", len(group), workers)
