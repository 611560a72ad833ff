"""Distributed rebuild on a real two-node Ray cluster (a head and a worker on this machine).

The cluster is started with the `ray` CLI, each node in its own session so teardown can
stop exactly the processes it started (by session id, never by name) and check none remain.
The nodes use 127.0.0.2: Ray 2.60 rewrites 127.0.0.1 to the machine's public address on a
multi-node cluster, while 127.0.0.2 is loopback and taken as given. A per-test token keeps
the cluster to this test (Ray binds its gRPC ports on all interfaces for any node address
but 127.0.0.1).
"""
from __future__ import annotations

import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import free_port

from index.build import build_index
from rag import store
from rag.config import load_settings
from rag.errors import ClusterError, MissingExtraError

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"
ONE_PAGE = SEEDS / "001_cd12900632336ae9.txt"
NODE_IP = "127.0.0.2"


def _cluster_ports(n: int) -> list[int]:
    """n distinct free ports below the kernel's ephemeral range and above Ray's worker ports.

    Ray's own components take ephemeral ports (port 0) as they start, so a port picked
    there beforehand could be handed out again before Ray binds it: a CI run failed when the
    raylet's object manager took the port chosen for the client server, and the head then
    stopped. Below the ephemeral range the kernel never hands a port out by itself.
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    candidates = list(range(20000, low))
    random.shuffle(candidates)
    ports = []
    for port in candidates:
        try:
            with socket.socket() as s:
                s.bind(("0.0.0.0", port))
        except OSError:
            continue
        ports.append(port)
        if len(ports) == n:
            return ports
    raise RuntimeError(f"fewer than {n} free ports between 20000 and {low}")


def _session_pids(sids: set[int]) -> list[int]:
    """Live processes in the given sessions (each `ray start` below leads its own)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) in sids and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def _start_node(args: list[str], log: Path, env: dict, ready: str) -> subprocess.Popen:
    ray_cli = Path(sys.executable).parent / "ray"
    with log.open("w") as out:
        proc = subprocess.Popen([str(ray_cli), "start", *args, "--block"], stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while ready not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"ray start failed:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    return proc


def _node_ports(ports: list[int], workers: tuple[int, int]) -> list[str]:
    """Every port one node opens, fixed, so no two of the nodes' servers can meet."""
    names = ["--node-manager-port", "--object-manager-port", "--metrics-export-port",
             "--runtime-env-agent-port", "--dashboard-agent-grpc-port",
             "--dashboard-agent-listen-port"]
    flags = [item for name, port in zip(names, ports, strict=True) for item in (name, str(port))]
    return [*flags, "--min-worker-port", str(workers[0]), "--max-worker-port", str(workers[1])]


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each `ray start --block` (it stops its node), then SIGKILL what is left."""
    sids = {p.pid for p in procs}
    for p in procs:
        p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    while _session_pids(sids) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in _session_pids(sids):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for p in procs:
        p.wait(timeout=30)
    deadline = time.monotonic() + 10
    while _session_pids(sids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _session_pids(sids), "Ray processes left behind"


@pytest.fixture(scope="module")
def ray_cluster():
    """A head and a worker node (1 CPU each) on loopback; yields the head's address."""
    work = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths
    token = work / "token"
    token.write_text(secrets.token_hex(32))
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    env = {**os.environ, **auth, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ADDRESS": ""}
    port, client, dashboard, *node_ports = _cluster_ports(15)
    address = f"{NODE_IP}:{port}"
    common = ["--node-ip-address", NODE_IP, "--num-cpus", "1", "--disable-usage-stats"]
    procs: list[subprocess.Popen] = []
    with pytest.MonkeyPatch.context() as mp:
        for name, value in auth.items():
            mp.setenv(name, value)
        try:
            procs.append(_start_node(
                ["--head", "--port", str(port), "--include-dashboard=false",
                 "--temp-dir", str(work), "--ray-client-server-port", str(client),
                 "--dashboard-port", str(dashboard), *common,
                 *_node_ports(node_ports[:6], (10002, 14999))],
                work / "head.log", env, "Ray runtime started"))
            try:
                procs.append(_start_node(
                    ["--address", address, *common, *_node_ports(node_ports[6:], (15000, 19999))],
                    work / "worker.log", env, "Ray runtime started"))
            except RuntimeError as exc:  # often the head stopped: show why
                raise RuntimeError(f"{exc}\nhead:\n{(work / 'head.log').read_text()[-3000:]}") from exc
            yield address
        finally:
            _stop(procs)


def _records(settings):
    build = store.current_build(settings.index_dir)
    papers, chunks = store.read_records(build)  # on-disk views: compare their contents
    return dict(papers), list(chunks), store.read_embeddings(build), store.read_manifest(build)


def _assert_same_index(ray_settings, local_settings) -> None:
    papers, chunks, emb, manifest = _records(ray_settings)
    papers0, chunks0, emb0, manifest0 = _records(local_settings)
    assert papers == papers0 and chunks == chunks0 and len(chunks) > 0
    assert manifest["paper_hashes"] == manifest0["paper_hashes"]
    assert emb.dtype == np.float32 and emb.shape == emb0.shape
    assert float(np.abs(emb - emb0).max()) <= 1e-5


@pytest.mark.slow
def test_ray_build_equals_single_process_build(ray_cluster, seed_settings, tmp_path):
    from rag.embedder import load_embedder
    from rag.retrieval import HybridRetriever

    settings = load_settings(home=tmp_path / "home")
    report = build_index(settings, [SEEDS], ray_address=ray_cluster)
    assert report.papers == 478 and report.embedded == report.chunks
    _assert_same_index(settings, seed_settings)

    index = store.load_index(settings.index_dir, settings)
    retriever = HybridRetriever(index, load_embedder(settings.embedder.model), settings.retrieval)
    titles = [s.paper.title for s in retriever.search("classifier guidance FID on ImageNet", k=5).sources]
    assert "Diffusion Models Beat GANs on Image Synthesis" in titles

    again = build_index(settings, [SEEDS], ray_address=ray_cluster)  # incremental reuse kept
    assert again.embedded == 0 and again.reused == report.chunks


@pytest.mark.slow
def test_cli_ray_build_matches_and_stays_quiet(ray_cluster, tmp_path):
    local = load_settings(home=tmp_path / "local")
    build_index(local, [ONE_PAGE])
    ray_home = tmp_path / "ray"
    proc = subprocess.run(
        [sys.executable, "-m", "ui.cli", "index", "build", "--ray", ray_cluster,
         "--source", str(ONE_PAGE), "--index-dir", str(ray_home / "index")],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Index at" in proc.stdout and "83 papers" in proc.stdout
    assert "streaming_executor" not in proc.stderr and "Token authentication" not in proc.stderr
    _assert_same_index(load_settings(home=ray_home), local)


@pytest.mark.slow
def test_ray_build_resumes_a_stage_left_by_an_interrupted_build(ray_cluster, tmp_path):
    from index.build import _build
    from index.steps import BuildSteps, embed_in_process

    def stop_at_second_batch(settings_, report):
        inner = embed_in_process(settings_, report)

        def embed(batches):
            for n, item in enumerate(inner(batches)):
                if n == 1:
                    raise KeyboardInterrupt  # as Ctrl-C: the stage is kept for resuming
                yield item
        return embed

    settings = load_settings(home=tmp_path / "ray", index={"embed_batch": 64})
    with pytest.raises(KeyboardInterrupt):
        _build(settings, [ONE_PAGE], False, None, BuildSteps(embed=stop_at_second_batch))
    report = build_index(settings, [ONE_PAGE], ray_address=ray_cluster)
    assert report.resumed_batches == 1 and report.batches >= 3
    local = load_settings(home=tmp_path / "local", index={"embed_batch": 64})
    build_index(local, [ONE_PAGE])
    _assert_same_index(settings, local)


def test_unreachable_ray_address_is_a_typed_error_and_keeps_the_index(index_copy):
    live = store.current_build(index_copy.index_dir)
    before = sorted(p.name for p in index_copy.index_dir.rglob("*"))
    with pytest.raises(ClusterError, match=r"No Ray cluster answers at 127\.0\.0\.1:\d+.*ray start"):
        build_index(index_copy, [SEEDS], full=True, ray_address=f"127.0.0.1:{free_port()}")
    with pytest.raises(ClusterError, match="not host:port"):
        build_index(index_copy, [SEEDS], ray_address="no-port-here")
    assert store.current_build(index_copy.index_dir) == live
    assert sorted(p.name for p in index_copy.index_dir.rglob("*")) == before
    assert len(store.load_index(index_copy.index_dir, index_copy).papers) == 478


def test_missing_ray_says_which_extra_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail, as uninstalled
    with pytest.raises(MissingExtraError, match=r"pip install 'askpapers\[scale\]'"):
        build_index(load_settings(home=tmp_path), [ONE_PAGE], ray_address="local")
    assert store.current_build(load_settings(home=tmp_path).index_dir) is None


def test_cli_and_build_do_not_import_ray():
    code = "import sys, ui.cli, index.build; ui.cli.make_parser(); print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == "False", out.stderr
