"""The local path: the packaged 0.5B GGUF run in-process by llama.cpp."""
import pytest

from rag.config import load_settings
from rag.errors import ModelError
from rag.llm import LlamaCppChat, get_chat_model
from rag.prompts import SYSTEM, YES_TAIL

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
    with pytest.raises(ModelError, match="N_CTX"):
        local_chat.yes_probability(too_long)


def test_factory_reuses_one_loaded_model_per_process(small_gguf, local_chat):
    settings = load_settings(llm={"model_path": small_gguf, "n_ctx": 2048, "n_threads": 2})
    first = get_chat_model(settings, "local")
    second = get_chat_model(settings, "local")
    assert first._llama is second._llama is local_chat._llama
    assert first.complete(ASK_OK, max_tokens=8).strip()



def test_prompt_is_rendered_as_llama_cpp_chat_completion_renders_it(local_chat):
    # The prompt is formatted and tokenized here (to count cached tokens); greedy answers
    # must equal llama-cpp-python's own chat completion of the same messages.
    question = [{"role": "system", "content": "You answer in one short sentence."},
                {"role": "user", "content": "What colour is the sky on a clear day?"}]
    ours = local_chat.complete(question, max_tokens=16)
    theirs = local_chat._llama.create_chat_completion(messages=question, max_tokens=16,
                                                      temperature=0.0)
    assert ours == theirs["choices"][0]["message"]["content"]
    assert local_chat.last_call.prompt_tokens == len(local_chat.tokens(question))


def test_warm_prefix_puts_the_system_prompt_in_the_kv_cache(small_gguf):
    system = "You are a careful assistant who answers about papers."
    chat = LlamaCppChat(small_gguf, n_ctx=2048, n_threads=2,
                        warm_head=[{"role": "system", "content": system},
                                   {"role": "user", "content": ""}])
    asked = [{"role": "system", "content": system}, {"role": "user", "content": "Say OK."}]
    chat.complete(asked, max_tokens=4)
    stats = chat.last_call
    assert len(chat._tokenize(system)) < stats.cached_tokens < stats.prompt_tokens
    assert stats.gen_tokens >= 1 and stats.first_s is not None and stats.total_s >= stats.first_s


CATS = ("Sources:\n<<<\n[1] A study of cats\nCats have four legs and sleep sixteen hours a "
        "day.\n>>>\n\nQuestion: ")


def _asks(question: str, tail: str = "") -> list[dict]:
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": CATS + question + (f"\n\n{tail}" if tail else "")}]


def test_the_graded_yes_ranks_questions_the_sources_answer_above_those_they_do_not(local_chat):
    answered = ["How many hours a day do cats sleep?", "How many legs do cats have?"]
    not_answered = ["How many teeth does a shark have?", "What is the boiling point of iron?"]
    p = {q: local_chat.yes_probability(_asks(q, YES_TAIL)) for q in answered + not_answered}
    assert all(0 < v < 1 for v in p.values())
    assert min(p[q] for q in answered) > max(p[q] for q in not_answered)


def test_an_answer_after_the_yes_reads_only_what_follows_the_shared_prefix(local_chat):
    question = "How many hours a day do cats sleep?"
    local_chat.yes_probability(_asks(question, YES_TAIL))
    local_chat.complete(_asks(question), max_tokens=4)
    stats = local_chat.last_call
    assert stats.prompt_tokens - stats.cached_tokens <= 8
