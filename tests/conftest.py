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
# --- end LLM fixtures ---
