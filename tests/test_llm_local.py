"""The local path: the packaged 0.5B GGUF run in-process by llama.cpp."""
import pytest

from rag.config import load_settings
from rag.errors import ModelError
from rag.llm import LlamaCppChat, get_chat_model

pytestmark = pytest.mark.slow

ASK_OK = [{"role": "system", "content": "You are terse."},
          {"role": "user", "content": "Reply with the word OK"}]


@pytest.fixture(scope="module")
def local_chat(small_gguf) -> LlamaCppChat:
    return LlamaCppChat(small_gguf, n_ctx=2048, n_threads=2)


def test_answers_a_simple_instruction(local_chat):
    answer = local_chat.complete(ASK_OK, max_tokens=8)
    assert "ok" in answer.lower()


def test_stream_yields_several_pieces(local_chat):
    story = [{"role": "user", "content": "Write three sentences about a cat."}]
    pieces = list(local_chat.stream(story, max_tokens=24))
    assert len(pieces) > 1
    assert all(isinstance(p, str) and p for p in pieces)


def test_max_tokens_bounds_the_answer(local_chat):
    story = [{"role": "user", "content": "Write a long story about a cat."}]
    assert len(list(local_chat.stream(story, max_tokens=6))) <= 6


def test_prompt_longer_than_the_context_is_a_model_error(local_chat):
    too_long = [{"role": "user", "content": "word " * 3000}]
    with pytest.raises(ModelError, match="N_CTX"):
        local_chat.complete(too_long, max_tokens=4)


def test_factory_reuses_one_loaded_model_per_process(small_gguf, local_chat):
    settings = load_settings(llm={"model_path": small_gguf, "n_ctx": 2048, "n_threads": 2})
    first = get_chat_model(settings, "local")
    second = get_chat_model(settings, "local")
    assert first._llama is second._llama is local_chat._llama
    assert first.complete(ASK_OK, max_tokens=8).strip()

