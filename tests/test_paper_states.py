"""Saved KV states of each paper's prompt head (rag.paper_states): the file format and its
checks on their own, then the real 0.5B model reading a head once and loading it after."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from rag.config import load_settings
from rag.llm import LlamaCppChat
from rag.paper_states import MAGIC, SUFFIX, PaperStates

IDS = [11, 22, 33]


def _states(tmp_path, budget=2**30, model="model-a") -> PaperStates:
    return PaperStates(tmp_path / "states", model, budget)


def test_a_written_state_reads_back(tmp_path):
    states = _states(tmp_path)
    assert states.read(IDS) is None and not states.has(IDS)
    assert states.write(IDS, b"payload bytes")
    assert states.has(IDS)
    assert states.read(IDS) == b"payload bytes"
    assert states.read(IDS + [44]) is None  # another head is another file


def test_a_state_of_another_model_is_not_loaded(tmp_path):
    _states(tmp_path, model="model-a").write(IDS, b"payload")
    other = _states(tmp_path, model="model-b")
    assert other.read(IDS) is None
    # Even under the other model's name for the same head, the header says model-a.
    os.replace(tmp_path / "states" / (_states(tmp_path).key(IDS) + SUFFIX),
               tmp_path / "states" / (other.key(IDS) + SUFFIX))
    assert other.read(IDS) is None


@pytest.mark.parametrize("damage", ["flip a payload byte", "truncate", "not a state",
                                    "header not json"])
def test_a_damaged_state_file_is_not_loaded(tmp_path, damage):
    states = _states(tmp_path)
    states.write(IDS, b"x" * 1000)
    path = tmp_path / "states" / (states.key(IDS) + SUFFIX)
    data = bytearray(path.read_bytes())
    if damage == "flip a payload byte":
        data[-10] ^= 0xFF
    elif damage == "truncate":
        data = data[:-1]
    elif damage == "not a state":
        data = b"#!/bin/sh\n" + data
    else:
        data = MAGIC + b"{not json\n" + b"x" * 1000
    path.write_bytes(bytes(data))
    assert states.read(IDS) is None


def test_a_symlinked_state_is_not_followed(tmp_path):
    states = _states(tmp_path)
    elsewhere = _states(tmp_path / "elsewhere")
    elsewhere.write(IDS, b"payload")
    (tmp_path / "states").mkdir()
    (tmp_path / "states" / (states.key(IDS) + SUFFIX)).symlink_to(
        tmp_path / "elsewhere" / "states" / (states.key(IDS) + SUFFIX))
    assert states.read(IDS) is None


def test_the_least_recently_used_states_go_first_beyond_the_budget(tmp_path):
    states = _states(tmp_path, budget=2500)
    heads = [[i] for i in range(4)]
    for i, ids in enumerate(heads):
        states.write(ids, b"x" * 1000)
        path = tmp_path / "states" / (states.key(ids) + SUFFIX)
        os.utime(path, ns=(10**18 + i, 10**18 + i))  # written in this order
    os.utime(tmp_path / "states" / (states.key(heads[0]) + SUFFIX))  # then head 0 was used
    kept = states.trim()
    assert kept <= 2500
    assert [states.has(ids) for ids in heads] == [True, False, False, True]


def test_an_unwritable_folder_only_loses_the_state(tmp_path):
    (tmp_path / "states").write_text("a file where the folder should be")
    states = _states(tmp_path)
    assert states.write(IDS, b"payload") is False
    assert states.read(IDS) is None


# ---------------------------------------------------------------- the real model

HEAD_TEXT = ("Sources:\n<<<\n[1] A paper\nWe propose a method that trains quickly. "
             "It reaches 91.2% accuracy on the benchmark with 3 GPUs. ")
QUESTIONS = ["What accuracy does it reach?", "How many GPUs does it use?"]


def _messages(question: str) -> list[dict]:
    return [{"role": "system", "content": "Answer from the sources."},
            {"role": "user", "content": f"{HEAD_TEXT}\n>>>\n\nQuestion: {question}"}]


@pytest.mark.slow
def test_a_head_is_read_once_then_loaded_with_the_same_answer(small_gguf, tmp_path):
    states = _states(tmp_path, model="small")
    chat = LlamaCppChat(small_gguf, n_ctx=2048, n_threads=2, states=states)
    plain = LlamaCppChat(small_gguf, n_ctx=2048, n_threads=2)
    fixed = len(HEAD_TEXT)
    answers, new_tokens = [], []
    for question in QUESTIONS:
        # Nothing of the last prompt beyond the system prompt stays in the KV cache.
        chat.warm([_messages(question)[0]], cut=True)
        answers.append(chat.complete(_messages(question), max_tokens=12, fixed=fixed))
        new_tokens.append(chat.last_call.prompt_tokens - chat.last_call.cached_tokens)
    assert states.saves == 1 and states.loads == 1
    head_tokens = len(chat._head_ids(_messages(QUESTIONS[0]), fixed))
    assert new_tokens[0] > head_tokens - 15  # the head was read ...
    assert new_tokens[1] < new_tokens[0] - head_tokens + 15  # ... then loaded, not read again
    # A loaded head gives the answer a freshly read one gives.
    chat.warm([_messages(QUESTIONS[1])[0]], cut=True)
    states.folder.joinpath(states.key(chat._head_ids(_messages(QUESTIONS[1]), fixed))
                           + SUFFIX).unlink()
    assert chat.complete(_messages(QUESTIONS[1]), max_tokens=12, fixed=fixed) == answers[1]
    assert states.saves == 2
    # Without states, the same prompt (read in one go) gives a sensible answer too.
    plain.warm([_messages(QUESTIONS[1])[0]], cut=True)
    assert plain.complete(_messages(QUESTIONS[1]), max_tokens=12).strip()


@pytest.mark.slow
def test_a_damaged_saved_head_is_read_again_and_replaced(small_gguf, tmp_path):
    states = _states(tmp_path, model="small")
    chat = LlamaCppChat(small_gguf, n_ctx=2048, n_threads=2, states=states)
    msgs, fixed = _messages(QUESTIONS[0]), len(HEAD_TEXT)
    chat.warm([msgs[0]], cut=True)
    expected = chat.complete(msgs, max_tokens=12, fixed=fixed)
    (path,) = states.folder.glob("*" + SUFFIX)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    chat.warm([msgs[0]], cut=True)
    assert chat.complete(msgs, max_tokens=12, fixed=fixed) == expected
    assert states.loads == 0 and states.saves == 2
    assert states.read(chat._head_ids(msgs, fixed)) is not None  # replaced by a good one


@pytest.mark.slow
def test_ask_and_the_warm_command_save_each_paper_once(seed_settings, small_gguf, tmp_path):
    from rag import ask
    from rag.llm import get_chat_model
    from rag.prompts import HEAD

    settings = load_settings(home=tmp_path / "home", index={"dir": seed_settings.index_dir},
                             llm={"model_path": small_gguf, "n_ctx": 2048})
    env = {**os.environ, "ASKPAPERS_HOME": str(tmp_path / "home"),
           "ASKPAPERS_INDEX__DIR": str(seed_settings.index_dir),
           "ASKPAPERS_LLM__MODEL_PATH": str(small_gguf), "ASKPAPERS_LLM__N_CTX": "2048"}
    cmd = [sys.executable, "-m", "ui.cli", "index", "warm", "--limit", "2"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "state of 2 papers" in out.stdout
    saved = sorted((tmp_path / "home" / "states").glob("*" + SUFFIX))
    assert len(saved) == 2
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert "state of 0 papers" in again.stdout and "2 were saved already" in again.stdout

    # A question about a paper: its head is read and saved the first time only; after the
    # KV cache is cut back to the system prompt, the second time loads it from disk.
    question = "What mask mAP does YOLACT reach on MS COCO?"
    first = ask(question, mode="local", settings=settings)
    get_chat_model(settings, "local").warm(HEAD, cut=True)
    second = ask(question, mode="local", settings=settings)
    assert first.citations and second.citations
    assert len(list((tmp_path / "home" / "states").glob("*" + SUFFIX))) == 3
    assert second.timings["new_prompt_tokens"] < first.timings["new_prompt_tokens"] - 100


def test_the_warm_command_stops_before_the_disk_runs_low(seed_settings, small_gguf, tmp_path,
                                                       monkeypatch):
    import rag.paper_states
    from rag.engine import get_engine
    from rag.generation import save_paper_states

    settings = load_settings(home=tmp_path / "home", index={"dir": seed_settings.index_dir},
                             llm={"model_path": small_gguf, "n_ctx": 2048})
    states = tmp_path / "home" / "states"
    free = shutil.disk_usage(tmp_path).free
    # A reserve just above what is free now: the first paper's state must not be written.
    monkeypatch.setattr(rag.paper_states, "MIN_FREE_BYTES", free + 2**30)
    result = save_paper_states(get_engine(settings), limit=2)
    assert result["full"] == "disk" and result["saved"] == 0
    assert not list(states.glob("*" + SUFFIX))
    monkeypatch.setattr(rag.paper_states, "MIN_FREE_BYTES", 0)
    result = save_paper_states(get_engine(settings), limit=2)
    assert result["full"] == "" and result["saved"] == 2


@pytest.mark.slow
def test_the_server_reads_papers_added_while_it_runs(seed_settings, small_gguf, tmp_path,
                                                      monkeypatch):
    import threading
    import time

    import rag.generation
    import ui.app
    from index.build import build_index
    from index.readers import read_sources

    monkeypatch.setattr(rag.generation, "IDLE_S", 0.0)
    monkeypatch.setattr(ui.app, "WARM_POLL_S", 0.2)
    papers = read_sources([seed_settings.sources[0]]).papers[:3]
    folder = tmp_path / "papers"
    folder.mkdir()
    settings = load_settings(home=tmp_path / "home", llm={"model_path": small_gguf,
                                                           "n_ctx": 2048})
    states = tmp_path / "home" / "states"

    def add(paper, name):
        (folder / name).write_text(f"{paper.title}\n{paper.abstract}\n")
        build_index(settings, [folder])

    def saved(n):
        deadline = time.monotonic() + 300
        while len(list(states.glob("*" + SUFFIX))) < n and time.monotonic() < deadline:
            time.sleep(0.2)
        return len(list(states.glob("*" + SUFFIX)))

    add(papers[0], "a.txt")
    add(papers[1], "b.txt")
    stop = threading.Event()
    reader = threading.Thread(target=ui.app._read_papers, args=(settings, stop))
    reader.start()
    try:
        assert saved(2) == 2
        add(papers[2], "c.txt")  # a new index is published while the server runs
        assert saved(3) == 3
    finally:
        stop.set()
        reader.join(timeout=60)
    assert not reader.is_alive()


@pytest.mark.slow
def test_reading_in_the_background_stops_for_a_question(seed_settings, small_gguf, tmp_path,
                                                        monkeypatch):
    import threading
    import time

    import rag.generation
    from rag import ask
    from rag.engine import get_engine
    from rag.llm import get_chat_model

    monkeypatch.setattr(rag.generation, "IDLE_S", 0.0)
    settings = load_settings(home=tmp_path / "home", index={"dir": seed_settings.index_dir},
                             llm={"model_path": small_gguf, "n_ctx": 2048})
    turns = get_chat_model(settings, "local")._turns
    result = {}
    reader = threading.Thread(target=lambda: result.update(rag.generation.save_paper_states(
        get_engine(settings), limit=3, give_way=True)))
    reader.start()
    deadline = time.monotonic() + 120
    while not turns.lock.locked() and time.monotonic() < deadline:
        time.sleep(0.01)  # until the reader holds the model
    answer = ask("What mask mAP does YOLACT reach on MS COCO?", mode="local", settings=settings)
    reader.join(timeout=600)
    # The model answered while the reader waited (the small model's reply may give no
    # number, which the number check turns into "not stated": still a cited answer).
    assert answer.model_output and answer.citations
    assert result["gave_way"] >= 1  # it stopped reading for the question ...
    assert result["saved"] == 3  # ... and read that paper again afterwards
    assert len(list((tmp_path / "home" / "states").glob("*" + SUFFIX))) == 4  # + the answer's


@pytest.mark.parametrize("question", ["What mask mAP does YOLACT reach on MS COCO?",
                                      "How many FLOPs does ConvNeXt need?"])
def test_the_head_warm_reads_is_the_head_a_question_s_prompt_starts_with(seed_settings,
                                                                         question):
    # If the two drifted apart, `askpapers index warm` would save states no answer loads.
    from rag import prompts
    from rag.answer import retrieve
    from rag.decision import decide
    from rag.engine import get_engine
    from rag.generation import build_context, paper_head
    from rag.questions import classify

    engine = get_engine(seed_settings)
    kind = classify(question)
    ret = retrieve(engine, question, kind)
    papers = decide(seed_settings.decision, ret.query, question, ret.sources, ret.best_dense,
                    engine.weights, kind).papers
    context = build_context(engine, ret, papers, kind)
    asked = prompts.messages(context, question)
    warmed, fixed = paper_head(papers[0].paper)
    assert fixed == prompts.fixed_head(context)
    assert asked[0] == warmed[0]
    assert asked[-1]["content"][:fixed] == warmed[-1]["content"][:fixed]
    assert papers[0].paper.abstract.split(".")[-2] in warmed[-1]["content"][:fixed]
