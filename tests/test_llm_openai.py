"""The hosted path: a real llama_cpp.server on loopback, plus fake endpoints for failures."""
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rag.config import load_settings
from rag.errors import ConfigError, EndpointError
from rag.llm import OpenAIChat, get_chat_model

ASK_OK = [{"role": "system", "content": "You are terse."},
          {"role": "user", "content": "Reply with the word OK"}]
SECRET = "sk-secret-test"


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chat(base_url: str, timeout_s: float = 60.0) -> OpenAIChat:
    settings = load_settings(llm={"openai_base_url": base_url, "openai_model": "qwen-small",
                                  "timeout_s": timeout_s})
    return get_chat_model(settings, "openai")


# --- the real server -------------------------------------------------------------------

@pytest.mark.slow
def test_complete_returns_text(openai_server):
    assert _chat(openai_server).complete(ASK_OK, max_tokens=8).strip()


@pytest.mark.slow
def test_stream_yields_several_pieces(openai_server):
    story = [{"role": "user", "content": "Write three sentences about a cat."}]
    pieces = list(_chat(openai_server).stream(story, max_tokens=24))
    assert len(pieces) > 1
    assert "".join(pieces).strip()


@pytest.mark.slow
def test_max_tokens_is_honoured_by_the_server(openai_server):
    # ChatOpenAI alone sends max_completion_tokens, which llama_cpp.server ignores.
    story = [{"role": "user", "content": "Write a long story about a cat."}]
    pieces = list(_chat(openai_server).stream(story, max_tokens=10))
    assert 1 < len(pieces) <= 10


# --- failures ----------------------------------------------------------------------------

def test_refused_port_is_an_endpoint_error_without_the_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with pytest.raises(EndpointError, match="connection refused") as err:
        _chat(f"http://127.0.0.1:{_unused_port()}/v1").complete(ASK_OK, max_tokens=4)
    assert SECRET not in str(err.value)
    assert "ASKPAPERS_LLM__OPENAI_BASE_URL" in str(err.value)


class _FakeEndpoint(BaseHTTPRequestHandler):
    """A fake OpenAI endpoint that misbehaves in the way `behaviour` names (a narrow fake)."""

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
        handler = type("Handler", (_FakeEndpoint,), {"behaviour": behaviour})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/v1"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_http_500_is_an_endpoint_error_naming_the_status(fake_endpoint):
    with pytest.raises(EndpointError, match="HTTP 500") as err:
        _chat(fake_endpoint("500")).complete(ASK_OK, max_tokens=4)
    assert "model crashed" in str(err.value)


def test_key_echoed_by_the_server_is_scrubbed(fake_endpoint, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with pytest.raises(EndpointError, match="HTTP 401") as err:
        _chat(fake_endpoint("401_echoing_key")).complete(ASK_OK, max_tokens=4)
    assert SECRET not in str(err.value)
    assert "OPENAI_API_KEY" in str(err.value)


def test_non_json_answer_is_an_endpoint_error(fake_endpoint):
    with pytest.raises(EndpointError, match="not an OpenAI chat completion"):
        _chat(fake_endpoint("not_json")).complete(ASK_OK, max_tokens=4)


def test_slow_endpoint_times_out_as_an_endpoint_error(fake_endpoint):
    with pytest.raises(EndpointError, match="within 1 s"):
        _chat(fake_endpoint("slow"), timeout_s=1.0).complete(ASK_OK, max_tokens=4)


def test_stream_dropped_midway_is_an_endpoint_error(fake_endpoint):
    stream = _chat(fake_endpoint("drop_midway")).stream(ASK_OK, max_tokens=4)
    with pytest.raises(EndpointError, match="mid-answer|before the answer was complete"):
        list(stream)


def test_unknown_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="local"):
        get_chat_model(load_settings(), "telepathy")
