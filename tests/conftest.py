"""Shared test fixtures: an offline environment, one real index built on the real seeds,
the packaged 0.5B GGUF, a real OpenAI-compatible server (llama_cpp.server) on loopback, and
a narrow fake endpoint that fails in one named way."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

# Tests never touch the network: models load from packages or local paths.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
for _name in [n for n in os.environ if n.startswith("ASKPAPERS_")]:
    del os.environ[_name]  # a developer's own settings must not leak into tests

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"


@pytest.fixture(scope="session")
def seed_settings(tmp_path_factory):
    """Settings whose index is built once per session from the real seed files."""
    from index.build import build_index
    from rag.config import load_settings

    settings = load_settings(home=tmp_path_factory.mktemp("seed_home"))
    build_index(settings, [SEEDS])
    return settings


@pytest.fixture
def index_copy(seed_settings, tmp_path):
    """A private copy of the seed index, for tests that rebuild or damage it."""
    from rag.config import load_settings

    shutil.copytree(seed_settings.index_dir, tmp_path / "home" / "index", symlinks=True)
    return load_settings(home=tmp_path / "home")


# ---------------------------------------------------------------- LLM models and servers

def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def small_gguf() -> Path:
    """The packaged Qwen2.5-Coder-0.5B GGUF, assembled once into ~/.askpapers/models and reused."""
    from rag.config import load_settings
    from rag.models import resolve_gguf

    settings = load_settings(home=Path("~/.askpapers").expanduser(),
                             llm={"local_model": "0.5b", "model_path": None})
    return resolve_gguf(settings)


def _wait_for_server(proc, url: str, log_path: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited early:\n{log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"llama_cpp.server did not answer {url} within {timeout_s} s")


@pytest.fixture(scope="module")
def openai_server(small_gguf, tmp_path_factory) -> str:
    """A real llama_cpp.server with the 0.5B model; yields its base URL (ending in /v1)."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(small_gguf),
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
           "--n_threads", "2", "--logits_all", "false"]
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_for_server(proc, base_url + "/models", log_path)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# A fake OpenAI-compatible endpoint that fails in one named way (a narrow fake: the real
# server above covers success). Used by test_llm_openai.py and the bad-input matrix.
class FakeEndpoint(BaseHTTPRequestHandler):
    """A fake OpenAI endpoint that misbehaves in the way `behaviour` names."""

    behaviour = "500"
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        getattr(self, "_" + self.behaviour)()

    def _send(self, status, body: bytes, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _500(self):
        self._send(500, json.dumps({"error": {"message": "model crashed"}}).encode())

    def _401_echoing_key(self):
        said = self.headers.get("Authorization", "")
        self._send(401, json.dumps({"error": {"message": f"Bad key: {said}"}}).encode())

    def _not_json(self):
        self._send(200, b"<html>this is not an API</html>", ctype="text/html")

    def _slow(self):
        time.sleep(3)
        self._send(500, b"{}")

    def _drop_midway(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        event = {"id": "1", "object": "chat.completion.chunk", "created": 0, "model": "m",
                 "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]}
        data = f"data: {json.dumps(event)}\n\n".encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.write(b"400\r\npartial")  # a chunk promised and never finished
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def fake_endpoint():
    """Start a fake endpoint with a chosen behaviour; yields a function returning its base URL."""
    servers = []

    def start(behaviour: str) -> str:
        handler = type("Handler", (FakeEndpoint,), {"behaviour": behaviour})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        server.handle_error = lambda *args: None  # a client hanging up on purpose is no error
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/v1"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
