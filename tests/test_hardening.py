"""Hardening (issue #12): the index folder as a sealed box, hostile corpora, config and
faults, shell plumbing. Real parts throughout: the seed index (index_copy), real builds,
real files, a real tmpfs for the full disk, real subprocesses and pipes.

More single bad inputs of each class are rows of the matrix, tests/test_bad_inputs.py.
"""
from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import free_port

from index.build import build_index
from index.readers import ReadReport, iter_papers, read_sources
from index.staging import Stage, merge_papers
from rag import integrity, store
from rag.config import Settings, load_settings
from rag.errors import ConfigError, IndexCorruptError, IndexMismatchError, IndexWriteError
from ui.cli import main

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"


def _cli(*args, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ui.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})}, cwd=REPO, **kw)


def _manifest(build: Path) -> dict:
    return json.loads((build / "manifest.json").read_text())


def _write_manifest(build: Path, m: dict) -> None:
    (build / "manifest.json").write_text(json.dumps(m))


# ---------------------------------------------------------------- 2. the index is a sealed box

@pytest.mark.parametrize("part", ["records.sqlite", "bm25", "embeddings.npy", "vectors.faiss",
                                  "bm25/params.index.json", "build folder", "builds folder"])
def test_no_part_of_the_index_is_followed_out_through_a_link(index_copy, tmp_path, part):
    build = store.current_build(index_copy.index_dir)
    target = {"build folder": build, "builds folder": build.parent}.get(part, build / part)
    outside = tmp_path / "elsewhere"
    shutil.move(target, outside)  # the real content, intact, just outside the index folder
    target.symlink_to(outside)
    with pytest.raises(IndexCorruptError, match="is a symbolic link"):
        store.load_index(index_copy.index_dir, index_copy)


def test_a_link_that_stays_inside_the_build_is_refused_too(index_copy):
    build = store.current_build(index_copy.index_dir)
    (build / "bm25" / "copy.json").symlink_to(build / "bm25" / "params.index.json")
    with pytest.raises(IndexCorruptError, match="copy.json is a symbolic link"):
        store.load_index(index_copy.index_dir, index_copy)


@pytest.mark.parametrize("file, says", [
    ("/etc/passwd", "not one of its files"), ("../../../x.faiss", "not one of its files"),
    ("bm25/vocab.index.json", "vocab.index.json is unreadable")])  # its own, but not FAISS
def test_the_manifest_cannot_name_a_vector_file_outside_its_own(index_copy, file, says):
    build = store.current_build(index_copy.index_dir)
    m = _manifest(build)
    m["vector_store"]["file"] = file
    _write_manifest(build, m)
    with pytest.raises(IndexCorruptError, match=says):
        store.load_index(index_copy.index_dir, index_copy)


def _rewrite_titles(build: Path) -> None:
    import sqlite3

    with sqlite3.connect(build / "records.sqlite") as con:
        con.execute("UPDATE papers SET title = upper(title)")
    con.close()


def _swap_vectors(build: Path) -> None:
    emb = np.load(build / "embeddings.npy")
    np.save(build / "embeddings.npy", emb[::-1].copy())  # another build's rows, same shape


def _random_faiss(build: Path) -> None:
    import faiss

    d = faiss.read_index(str(build / "vectors.faiss")).d
    n = faiss.read_index(str(build / "vectors.faiss")).ntotal
    index = faiss.IndexFlatIP(d)
    x = np.random.default_rng(1).standard_normal((n, d)).astype(np.float32)
    index.add(x / np.linalg.norm(x, axis=1, keepdims=True))
    faiss.write_index(index, str(build / "vectors.faiss"))


@pytest.mark.parametrize("tamper", [_rewrite_titles, _swap_vectors, _random_faiss],
                         ids=["titles rewritten", "rows of vectors swapped", "random FAISS vectors"])
def test_same_shape_tampered_files_are_refused_by_their_hash(index_copy, tamper):
    build = store.current_build(index_copy.index_dir)
    sizes = {p: p.stat().st_size for p in build.rglob("*") if p.is_file()}
    tamper(build)
    assert {p: p.stat().st_size for p in build.rglob("*") if p.is_file()} == sizes  # same shape
    with pytest.raises(IndexCorruptError, match="does not match the hash in its manifest"):
        store.load_index(index_copy.index_dir, index_copy)
    assert main(["index", "verify", "--index-dir", str(index_copy.index_dir)]) == 4


def test_counts_and_dimension_are_checked_against_the_data(index_copy):
    build = store.current_build(index_copy.index_dir)
    m = _manifest(build)
    for edit, says in [({"embedder": {**m["embedder"], "dim": 256}}, "manifest says 256-d"),
                       ({"counts": {**m["counts"], "chunks": m["counts"]["chunks"] + 1}},
                        "chunk records but")]:
        _write_manifest(build, {**m, **edit})
        with pytest.raises(IndexCorruptError, match=says):
            store.load_index(index_copy.index_dir, index_copy)
    _write_manifest(build, m)
    assert store.load_index(index_copy.index_dir, index_copy).vectors.d == 384


def test_an_older_format_says_which_command_to_run(index_copy):
    build = store.current_build(index_copy.index_dir)
    m = _manifest(build)
    m["format_version"] = store.FORMAT_VERSION - 1
    m["files"] = {name: e["bytes"] for name, e in m["files"].items()}  # how format 2 listed them
    _write_manifest(build, m)
    for settings in (index_copy, None):
        with pytest.raises(IndexMismatchError, match="run: askpapers index build --full"):
            store.load_index(index_copy.index_dir, settings)


def test_manifest_records_a_hash_of_every_file(seed_settings):
    build = store.current_build(seed_settings.index_dir)
    files = _manifest(build)["files"]
    on_disk = {str(p.relative_to(build)) for p in build.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(files) == on_disk
    for name, entry in files.items():
        assert entry == integrity.file_entry(build / name)


def test_verify_reads_every_byte_where_loading_samples(index_copy, monkeypatch, capsys):
    # Reseal with tiny limits so this small index is checked the way a large one is at load.
    monkeypatch.setattr(integrity, "FULL_HASH_LIMIT", 1024)
    monkeypatch.setattr(integrity, "SAMPLE_BLOCKS", 2)
    monkeypatch.setattr(integrity, "SAMPLE_BYTES", 4096)
    build = store.current_build(index_copy.index_dir)
    m = _manifest(build)
    m["files"] = integrity.seal(build)
    _write_manifest(build, m)
    assert main(["index", "verify", "--index-dir", str(index_copy.index_dir)]) == 0
    assert "is intact" in capsys.readouterr().out
    path = build / "embeddings.npy"
    with open(path, "r+b") as f:  # one byte in the middle: outside both sampled blocks
        f.seek(path.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x01]))
    store.load_index(index_copy.index_dir, index_copy)  # the sample cannot see it
    assert main(["index", "verify", "--index-dir", str(index_copy.index_dir)]) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "embeddings.npy does not match the hash" in err[0]
    assert "askpapers index build --full" in err[0]


def test_verify_catches_vectors_that_are_not_unit_length(index_copy):
    build = store.current_build(index_copy.index_dir)
    emb = np.load(build / "embeddings.npy")
    emb[7] *= 2.0
    np.save(build / "embeddings.npy", emb)
    m = _manifest(build)
    m["files"]["embeddings.npy"] = integrity.file_entry(build / "embeddings.npy")  # a forger
    _write_manifest(build, m)
    store.load_index(index_copy.index_dir, index_copy)
    with pytest.raises(IndexCorruptError, match="Vector 7 of .*embeddings.npy is not unit length"):
        store.verify_index(index_copy.index_dir, index_copy)


class _Listener:
    """A TCP port that records every connection made to it (a Milvus nobody should call)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.calls, self._stop = 0, threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.calls += 1
            conn.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self):
        self._stop.set()
        self.sock.close()


def test_clean_up_never_contacts_an_address_only_an_old_manifest_names(index_copy):
    listener = _Listener()
    try:
        old = index_copy.index_dir / "builds" / "20000101T000000000000-1"
        old.mkdir()
        (old / "manifest.json").write_text(json.dumps({"vector_store": {
            "backend": "milvus", "uri": listener.url, "collection": "askpapers_x_old"}}))
        stage = index_copy.index_dir / "builds" / ".tmp-20000101T000000000000-2"
        stage.mkdir()
        (stage / "vector_store.json").write_text(json.dumps(
            {"backend": "milvus", "uri": listener.url, "collection": "askpapers_x_stage"}))
        build_index(index_copy, [SEEDS])
        assert not old.exists() and not stage.exists()
        assert listener.calls == 0
    finally:
        listener.close()


def test_a_linked_stage_is_neither_resumed_nor_followed(index_copy, tmp_path):
    from index.readers import expand_sources
    from index.staging import PLAN_FILE, plan_of, resumable_stage

    outside = tmp_path / "outside-stage"
    outside.mkdir()
    plan = plan_of(expand_sources([SEEDS]), index_copy, False, store.current_build(index_copy.index_dir))
    (outside / PLAN_FILE).write_text(json.dumps(plan, sort_keys=True))  # a matching plan
    link = index_copy.index_dir / "builds" / ".tmp-20991231T000000000000-1"
    link.symlink_to(outside)
    assert resumable_stage(index_copy.index_dir, plan) is None
    build_index(index_copy, [SEEDS])
    assert not link.is_symlink() and [p.name for p in outside.iterdir()] == [PLAN_FILE]


# ---------------------------------------------------------------- 4. hostile corpora

def _one_title_many_dates(path: Path, n: int) -> Path:
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"title": "One Title", "abstract": f"Abstract {i % 3} here.",
                                "update_date": f"{1900 + i // 336}-{1 + i // 28 % 12:02d}-"
                                               f"{1 + i % 28:02d}"}) + "\n")
    return path


def _python_calls(fn) -> int:
    """How many Python-level function calls `fn()` makes (a count, not a clock)."""
    calls = 0

    def count(frame, event, arg):
        nonlocal calls
        calls += event == "call"
    sys.setprofile(count)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls


def _collect(path: Path, stage_dir: Path) -> list:
    stage_dir.mkdir()
    stage = Stage(stage_dir, None)
    report = ReadReport()
    stage.collect(iter_papers([path], report), lambda: {"skipped": report.skipped})
    rows = stage.con.execute("SELECT listings, abstract FROM papers").fetchall()
    stage.close()
    return rows


def test_one_title_under_many_dates_costs_linear_work(tmp_path):
    small = _one_title_many_dates(tmp_path / "small.jsonl", 2000)
    large = _one_title_many_dates(tmp_path / "large.jsonl", 4000)
    work = {}
    for name, path in (("small", small), ("large", large)):
        work[name] = (_python_calls(lambda path=path, name=name: _collect(path, tmp_path / f"stage-{name}")),
                      _python_calls(lambda path=path: merge_papers(iter_papers([path], ReadReport()))))
    for small_calls, large_calls in zip(work["small"], work["large"], strict=True):
        assert large_calls < 2.5 * small_calls  # twice the rows, about twice the work
    (listings, abstract), = _collect(large, tmp_path / "stage-check")
    listings = json.loads(listings)
    assert len(listings) == 4000 and listings == sorted(listings) and abstract == "Abstract 0 here."
    merged, = merge_papers(iter_papers([large], ReadReport()))
    assert [[x.source, x.date] for x in merged.listings] == listings


def test_hostile_json_lines_are_skipped_and_counted(tmp_path):
    good = {"title": "A Good Paper", "abstract": "Fine words."}
    lines = [json.dumps(good), "[" * 200_000 + "]" * 200_000,
             json.dumps({"title": "Deep", "abstract": "x", "extra": json.loads("[" * 18 + "]" * 18)}),
             '{"title": "' + "x" * 3_000_000 + '"}', "{" * 50 + "}" * 50,
             json.dumps({"title": "Second Good Paper", "abstract": "Also [[fine]] {{words}}."})]
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join(lines) + "\n")
    report = read_sources([path])
    assert sorted(p.title for p in report.papers) == ["A Good Paper", "Second Good Paper"]
    assert [s.split(": ", 1)[1] for s in report.skipped] == [
        "nested deeper than 16 levels", "nested deeper than 16 levels",
        "line longer than 1,000,000 bytes", "nested deeper than 16 levels"]
    assert [s.split(":")[1] for s in report.skipped] == ["2", "3", "4", "5"]


# ---------------------------------------------------------------- 6. config and faults

def _float_fields(model=Settings, prefix: str = "ASKPAPERS") -> list[str]:
    """Every float setting, nested sections included, as its variable name (fields added
    later included)."""
    names = []
    for key, field in model.model_fields.items():
        name = f"{prefix}__{key}" if prefix != "ASKPAPERS" else f"{prefix}_{key}"
        if hasattr(field.annotation, "model_fields"):
            names += _float_fields(field.annotation, name)
        elif field.annotation in (float, "float") or str(field.annotation) == "float":
            names.append(name.upper())
    return names


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity"])
def test_every_float_setting_refuses_non_finite_values(monkeypatch, value):
    names = _float_fields()
    assert "ASKPAPERS_DECISION__GREY" in names and len(names) >= 5
    for name in names:
        monkeypatch.setenv(name, value)
        with pytest.raises(ConfigError, match=f"finite number; set {name}"):
            load_settings()
        monkeypatch.delenv(name)


@pytest.mark.parametrize("value", ["not-json", '{"a": 1}', "[1, 2]", '"seeds"', ""])
def test_a_list_setting_must_be_a_json_list(monkeypatch, value):
    monkeypatch.setenv("ASKPAPERS_INDEX__SOURCES", value)
    with pytest.raises(ConfigError, match=r"ASKPAPERS_INDEX__SOURCES must be a JSON list of strings"):
        load_settings()


def test_a_json_list_of_sources_is_read(monkeypatch, tmp_path):
    monkeypatch.setenv("ASKPAPERS_INDEX__SOURCES", json.dumps([str(tmp_path), "~/papers"]))
    assert load_settings().sources == [tmp_path, Path("~/papers")]


@pytest.mark.parametrize("name", ["askpapers_lmm__mode", "Askpapers_Colour", "ASKPAPERS_LLMS"])
def test_unknown_variables_are_refused_in_any_case(monkeypatch, name):
    monkeypatch.setenv(name, "x")
    with pytest.raises(ConfigError, match=f"Unknown setting {name.upper()}"):
        load_settings()


def test_known_variables_are_read_in_any_case(monkeypatch):
    monkeypatch.setenv("askpapers_llm__mode", "extractive")
    assert load_settings().llm.mode == "extractive"
    monkeypatch.setenv("askpapers_llm__modde", "extractive")  # a typo below a known section
    with pytest.raises(ConfigError, match="Unknown setting llm.modde; remove ASKPAPERS_LLM__MODDE"):
        load_settings()


@pytest.mark.parametrize("name", ["ASKPAPERS_HOME", "ASKPAPERS_INDEX__DIR", "ASKPAPERS_LLM__MODEL_PATH"])
@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_path_is_refused(monkeypatch, tmp_path, name, value):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=f"is empty .*working directory.*set {name}"):
        load_settings()


def test_config_errors_reach_the_cli_as_one_line(monkeypatch, capsys):
    for name, value in [("ASKPAPERS_DECISION__COVERED__THRESHOLD", "nan"),
                        ("ASKPAPERS_INDEX__SOURCES", "not-json"), ("askpapers_nope", "1"),
                        ("ASKPAPERS_HOME", "")]:
        monkeypatch.setenv(name, value)
        assert main(["index", "info"]) == ConfigError.exit_code
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("askpapers: error: ") and name.upper() in err[0]
        monkeypatch.delenv(name)


def _tiny_jsonl(path: Path, titles: list[str]) -> Path:
    path.write_text("".join(json.dumps({"title": t, "abstract": f"All about {t.lower()}."}) + "\n"
                            for t in titles))
    return path


def test_a_full_build_reports_what_was_removed(tmp_path):
    settings = load_settings(home=tmp_path / "home")
    build_index(settings, [_tiny_jsonl(tmp_path / "a.jsonl", ["Alpha", "Beta", "Gamma"])])
    source = _tiny_jsonl(tmp_path / "b.jsonl", ["Alpha", "Beta Changed", "Delta"])
    r = build_index(settings, [source], full=True)
    assert (r.papers, r.added, r.changed, r.removed, r.unchanged) == (3, 2, 0, 2, 1)
    assert r.embedded == r.chunks and r.reused == 0  # --full re-embeds everything
    source.write_text(source.read_text().replace("about delta", "about a changed delta"))
    r = build_index(settings, [source])
    assert (r.added, r.changed, r.removed, r.unchanged) == (0, 1, 0, 2)


@pytest.fixture
def small_disk(tmp_path):
    """A real tmpfs mounted at tmp_path/disk (root only); yields a function that sizes it."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = []

    def mount(size_kb: int) -> Path:
        out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(disk)],
                             capture_output=True, text=True)
        if out.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({out.stderr.strip()})")
        mounted.append(disk)
        return disk
    yield mount
    gc.collect()  # a loaded index (a reference cycle) keeps its memory maps until collected
    for d in mounted:
        subprocess.run(["umount", str(d)], check=True)  # fails if a file there is still open


def _du_kb(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) // 1024


# Free space past the copied index, and where the build then runs out (measured): in
# SQLite while collecting, in FAISS writing vectors.faiss, in NumPy writing bm25/.
@pytest.mark.parametrize("spare_kb", [32, 4500, 6000], ids=["sqlite", "faiss", "numpy"])
def test_a_full_disk_during_a_build_says_so_and_keeps_the_old_index(
        index_copy, small_disk, capsys, spare_kb):
    index_kb = _du_kb(index_copy.index_dir)
    disk = small_disk(index_kb + spare_kb)  # fits the index and part of a second build
    shutil.copytree(index_copy.index_dir, disk / "index")
    settings = load_settings(home=index_copy.home, index={"dir": disk / "index"})
    before = store.current_build(settings.index_dir)
    with pytest.raises(IndexWriteError,
                       match=f"No space left on {disk} .*the previous index is untouched"):
        build_index(settings, [SEEDS])
    assert main(["index", "build", "--index-dir", str(disk / "index")]) == IndexWriteError.exit_code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on" in err[0] and "Traceback" not in err[0]
    assert store.current_build(settings.index_dir) == before
    assert not list((disk / "index" / "builds").glob(".tmp-*"))  # the stage gave its space back
    store.verify_index(settings.index_dir, settings)


# ---------------------------------------------------------------- 7. shell plumbing

def test_a_reader_that_leaves_early_gets_no_traceback(seed_settings):
    env = {"ASKPAPERS_HOME": str(seed_settings.home)}
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte: every write fails (EPIPE)
    try:
        out = subprocess.run([sys.executable, "-m", "ui.cli", "index", "info", "--json"],
                             stdout=write, stderr=subprocess.PIPE, text=True, cwd=REPO,
                             timeout=120, env={**os.environ, **env})
    finally:
        os.close(write)
    assert out.returncode == 141 and out.stderr == ""
    shell = subprocess.run(["bash", "-o", "pipefail", "-c",
                            f"{sys.executable} -m ui.cli index info --json | head -1"],
                           capture_output=True, text=True, cwd=REPO, timeout=120,
                           env={**os.environ, **env})
    assert shell.stdout == "{\n" and "Traceback" not in shell.stderr and "Error" not in shell.stderr


# ---------------------------------------------------------------- 6. faults: stopping the server

class _SlowEndpoint:
    """A FAKE OpenAI endpoint (narrow: only its timing matters) that notes each request,
    then answers HTTP 500 after 3 s, so an answer is in flight for that long."""

    def __init__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        got = self.got = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                got.set()
                time.sleep(3)
                body = b'{"error": {"message": "slow and broken"}}'
                self.send_response(500)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# A runner started in the background (no job control) ignores SIGINT, and an ignored
# signal stays ignored across exec: the server is given SIGINT as a terminal's Ctrl-C has
# it by its first line. (Not by a preexec_fn: forking a process whose gRPC threads run,
# left by the Milvus tests, aborted the child now and then.)
_SERVE_WITH_SIGINT = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                      "from ui.cli import main; sys.exit(main(sys.argv[1:]))")


def _serve(index_dir: Path, home: Path, **env) -> tuple[subprocess.Popen, str, Path]:
    """`askpapers serve` on a free loopback port, started and answering; (process, URL, log)."""
    import urllib.request

    port = free_port()
    home.mkdir(parents=True)
    log = home / "serve.log"
    environ = {k: v for k, v in os.environ.items() if not k.upper().startswith("ASKPAPERS_")}
    environ.update({"ASKPAPERS_HOME": str(home), "ASKPAPERS_LLM__MODE": "extractive",
                    "PYTHONFAULTHANDLER": "1", **env})
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-c", _SERVE_WITH_SIGINT, "serve", "--no-build",
                                 "--port", str(port), "--index-dir", str(index_dir)], cwd=REPO,
                                env=environ, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(600):
        assert proc.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(url, timeout=2):
                return proc, url, log
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"serve did not answer at {url}:\n{log.read_text()}")


def _exit_code(proc: subprocess.Popen, log: Path, timeout: float = 60) -> int:
    """The server's exit code; if it does not exit in time, fail with its log and where
    each of its threads was (faulthandler prints them on SIGABRT)."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        proc.wait(timeout=30)
        pytest.fail(f"serve did not exit within {timeout:.0f} s:\n{log.read_text()[-8000:]}")


@pytest.mark.slow
def test_serve_exits_130_on_sigint_and_drains_on_sigterm(seed_settings, tmp_path):
    from gradio_client import Client

    proc, _, log = _serve(seed_settings.index_dir, tmp_path / "a")
    proc.send_signal(signal.SIGINT)
    assert _exit_code(proc, log) == 130
    assert "askpapers: interrupted" in log.read_text() and "Traceback" not in log.read_text()

    endpoint = _SlowEndpoint()
    try:
        proc, url, log = _serve(seed_settings.index_dir, tmp_path / "b", OPENAI_API_KEY="sk-x",
                                ASKPAPERS_LLM__OPENAI_BASE_URL=endpoint.url,
                                ASKPAPERS_LLM__OPENAI_MODEL="fake", ASKPAPERS_LLM__TIMEOUT_S="20")
        job = Client(url, verbose=False).submit(
            "what FID does classifier guidance reach?", "openai", 5, "", None, "", "", api_name="/chat")
        assert endpoint.got.wait(timeout=120)  # the answer is now in flight
        proc.send_signal(signal.SIGTERM)
        assert _exit_code(proc, log) == 0
    finally:
        endpoint.close()
    text = log.read_text()
    assert "waiting up to 10 s for 1 answer(s) in flight" in text and "Traceback" not in text
    assert job.done()
    reply = job.outputs()[-1][0][-1]["content"]
    assert "Could not answer" in str(reply) and "slow and broken" in str(reply)


def test_serve_rebuilds_only_a_missing_or_older_index(index_copy, tmp_path):
    from ui.cli import why_build

    assert why_build(index_copy) is None
    reason, sources = why_build(load_settings(home=tmp_path / "empty"))
    assert "No index yet" in reason and sources == index_copy.sources
    build = store.current_build(index_copy.index_dir)
    m = _manifest(build)
    library = tmp_path / "library.bib"  # what the live index was built from, not the config
    _write_manifest(build, {**m, "format_version": store.FORMAT_VERSION - 1,
                            "sources": [str(library)]})
    reason, sources = why_build(index_copy)
    assert f"format {store.FORMAT_VERSION - 1}" in reason and "rebuilding" in reason
    assert sources == [library] and str(library) in reason
