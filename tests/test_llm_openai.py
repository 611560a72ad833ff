"""The hosted path: a real llama_cpp.server on loopback; the key never leaks from failures."""

import pytest
from conftest import free_port

from rag.config import load_settings
from rag.errors import ConfigError, EndpointError
from rag.llm import OpenAIChat, get_chat_model

ASK_OK = [{"role": "system", "content": "You are terse."},
          {"role": "user", "content": "Reply with the word OK"}]
SECRET = "sk-secret-test"


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


# --- failures ---------------------------------------------------------------------------
# Refused, timed-out, 500, non-JSON and dropped endpoints are cases of the bad-input matrix
# (tests/test_bad_inputs.py); the fake endpoint lives in tests/conftest.py.

def test_key_echoed_by_the_server_is_scrubbed(fake_endpoint, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with pytest.raises(EndpointError, match="HTTP 401") as err:
        _chat(fake_endpoint("401_echoing_key")).complete(ASK_OK, max_tokens=4)
    assert SECRET not in str(err.value)
    assert "OPENAI_API_KEY" in str(err.value)


def test_refused_port_error_does_not_carry_the_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with pytest.raises(EndpointError, match="connection refused") as err:
        _chat(f"http://127.0.0.1:{free_port()}/v1").complete(ASK_OK, max_tokens=4)
    assert SECRET not in str(err.value)


def test_unknown_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="local"):
        get_chat_model(load_settings(), "telepathy")
