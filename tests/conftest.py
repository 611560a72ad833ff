# --- LLM fixtures (models, servers) ---
# Self-contained section owned by the LLM work: the packaged 0.5B GGUF, cached across runs,
# and a real OpenAI-compatible server (llama_cpp.server) on loopback.
import socket as _llm_socket
import subprocess as _llm_subprocess
import sys as _llm_sys
import time as _llm_time
import urllib.request as _llm_urlrequest
from pathlib import Path as _LLMPath

import pytest as _llm_pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with _llm_socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@_llm_pytest.fixture(scope="session")
def small_gguf() -> _LLMPath:
    """The packaged Qwen2.5-Coder-0.5B GGUF, assembled once into ~/.askpapers/models and reused."""
    from rag.config import load_settings
    from rag.models import resolve_gguf

    settings = load_settings(home=_LLMPath("~/.askpapers").expanduser(),
                             llm={"local_model": "0.5b", "model_path": None})
    return resolve_gguf(settings)


def _wait_for_server(proc, url: str, log_path: _LLMPath, timeout_s: float = 120) -> None:
    deadline = _llm_time.monotonic() + timeout_s
    while _llm_time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited early:\n{log_path.read_text()[-2000:]}")
        try:
            with _llm_urlrequest.urlopen(url, timeout=2):
                return
        except OSError:
            _llm_time.sleep(0.5)
    raise RuntimeError(f"llama_cpp.server did not answer {url} within {timeout_s} s")


@_llm_pytest.fixture(scope="module")
def openai_server(small_gguf, tmp_path_factory) -> str:
    """A real llama_cpp.server with the 0.5B model; yields its base URL (ending in /v1)."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    cmd = [_llm_sys.executable, "-m", "llama_cpp.server", "--model", str(small_gguf),
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
           "--n_threads", "2", "--logits_all", "false"]
    with log_path.open("w") as log:
        proc = _llm_subprocess.Popen(cmd, stdout=log, stderr=_llm_subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_for_server(proc, base_url + "/models", log_path)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except _llm_subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# A fake OpenAI-compatible endpoint that fails in one named way (a narrow fake: the real
# server above covers success). Used by test_llm_openai.py and the bad-input matrix.
import json as _llm_json
import threading as _llm_threading
from http.server import BaseHTTPRequestHandler as _LLMHandler
from http.server import ThreadingHTTPServer as _LLMHTTPServer


class FakeEndpoint(_LLMHandler):
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
        self._send(500, _llm_json.dumps({"error": {"message": "model crashed"}}).encode())

    def _401_echoing_key(self):
        said = self.headers.get("Authorization", "")
        self._send(401, _llm_json.dumps({"error": {"message": f"Bad key: {said}"}}).encode())

    def _not_json(self):
        self._send(200, b"<html>this is not an API</html>", ctype="text/html")

    def _slow(self):
        _llm_time.sleep(3)
        self._send(500, b"{}")

    def _drop_midway(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        event = {"id": "1", "object": "chat.completion.chunk", "created": 0, "model": "m",
                 "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]}
        data = f"data: {_llm_json.dumps(event)}\n\n".encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.write(b"400\r\npartial")  # a chunk promised and never finished
        self.wfile.flush()
        self.close_connection = True


@_llm_pytest.fixture
def fake_endpoint():
    """Start a fake endpoint with a chosen behaviour; yields a function returning its base URL."""
    servers = []

    def start(behaviour: str) -> str:
        handler = type("Handler", (FakeEndpoint,), {"behaviour": behaviour})
        server = _LLMHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        server.handle_error = lambda *args: None  # a client hanging up on purpose is no error
        _llm_threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/v1"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
# --- end LLM fixtures ---
