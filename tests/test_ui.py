"""The Gradio app served for real (a subprocess on a loopback port) and driven by gradio_client."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port

from rag.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
QUESTION = "what FID does classifier guidance reach?"


def _wait_until_served(proc, url: str, log: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"the app did not answer {url} within {timeout_s} s")


@contextlib.contextmanager
def served_app(home: Path, index_dir: Path | None = None, mode: str = "extractive",
               args: tuple[str, ...] = (), **env):
    """`python -m ui` on a free loopback port; yields (base URL, home). Extra serve flags in
    `args`, extra env as keywords."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ASKPAPERS_")}
    environ.update({"ASKPAPERS_HOME": str(home), "ASKPAPERS_LLM__MODE": mode,
                    "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", **env})
    if index_dir is not None:
        environ["ASKPAPERS_INDEX__DIR"] = str(index_dir)
    log = home / f"serve-{port}.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ui", "--port", str(port), "--no-build",
                                 *args],
                                cwd=REPO, env=environ, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_served(proc, url, log)
        yield url, home
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


@pytest.fixture(scope="module")
def app_url(seed_settings, tmp_path_factory):
    """The app in extractive mode over the seed index, with a private home for feedback."""
    with served_app(tmp_path_factory.mktemp("ui_home"), seed_settings.index_dir) as (url, _):
        yield url


def _client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False)


def _chat(client, question: str, mode: str = "extractive", k: int = 5):
    return client.predict(question, mode, k, "", None, "", "", api_name="/chat")


def _text(message: dict) -> str:
    content = message["content"]
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def test_chat_api_answers_with_linked_citation_and_sources(app_url):
    messages, panel, _ = _chat(_client(app_url), QUESTION)
    assert [m["role"] for m in messages] == ["user", "assistant"]
    answer = _text(messages[-1])
    assert 'class="ap-cite" href="#src-0-' in answer
    assert "<mark>" in panel and 'id="src-0-1"' in panel
    assert "Diffusion Models Beat GANs on Image Synthesis" in panel


def test_follow_up_keeps_history_per_session(app_url):
    first, second = _client(app_url), _client(app_url)
    _chat(first, QUESTION)
    messages, panel, _ = _chat(first, "and on ImageNet 512x512?")
    assert len(messages) == 4 and 'href="#src-1-' in _text(messages[-1])
    assert 'data-turn="1"' in panel
    alone, _, _ = _chat(second, "What is REPresentation Alignment?")
    assert len(alone) == 2  # the other browser session's turns did not leak in


def test_library_error_becomes_a_chat_line_and_app_keeps_working(tmp_path, seed_settings):
    closed = f"http://127.0.0.1:{free_port()}/v1"
    with served_app(tmp_path / "home", seed_settings.index_dir, mode="extractive",
                    ASKPAPERS_LLM__OPENAI_BASE_URL=closed, OPENAI_API_KEY="sk-test") as (url, _):
        client = _client(url)
        messages, _, _ = _chat(client, QUESTION, mode="openai")
        failed = _text(messages[-1])
        assert failed.startswith("**Could not answer:**") and "Traceback" not in failed
        messages, panel, _ = _chat(client, QUESTION, mode="extractive")
        assert "ap-cite" in _text(messages[-1]) and "<mark>" in panel


def test_serve_refuses_public_host_without_auth(seed_settings):
    from ui.app import serve

    with pytest.raises(ConfigError, match=r"0\.0\.0\.0.*--auth USER:PASS"):
        serve(seed_settings, host="0.0.0.0", port=free_port())
    with pytest.raises(ConfigError, match="--share.*--auth"):
        serve(seed_settings, share=True, port=free_port())


def test_cli_serve_prints_the_refusal(seed_settings, monkeypatch, capsys):
    from ui.cli import main

    monkeypatch.setenv("ASKPAPERS_HOME", str(seed_settings.home))
    code = main(["serve", "--host", "0.0.0.0", "--port", str(free_port()), "--no-build"])
    err = capsys.readouterr().err
    assert code == 2 and "askpapers: error: Serving on 0.0.0.0" in err and "Traceback" not in err


def test_auth_is_read_from_text_or_file(tmp_path):
    from ui.exposure import check_exposure, parse_auth

    secret = tmp_path / "auth.txt"
    secret.write_text("\nalice:s3cret:x\n")
    assert parse_auth("bob:pw") == ("bob", "pw")
    assert parse_auth(str(secret)) == ("alice", "s3cret:x")
    assert check_exposure("0.0.0.0", str(secret), False) == ("alice", "s3cret:x")
    assert check_exposure("::1", None, False) is None
    with pytest.raises(ConfigError) as e:
        parse_auth("only-a-password")
    assert "only-a-password" not in str(e.value)


def test_feedback_is_appended_without_secrets(seed_settings, tmp_path, monkeypatch):
    import gradio as gr

    from rag import ask
    from rag.config import load_settings
    from ui.app import ChatApp

    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-written")
    settings = load_settings(home=tmp_path, index={"dir": seed_settings.index_dir})
    answer = ask(QUESTION, mode="extractive", settings=settings)
    turns = [{"question": QUESTION, "text": answer.text, "answer": answer, "error": None}]
    app = ChatApp(settings)
    app.like(turns, gr.LikeData(None, {"index": 1, "value": answer.text, "liked": True}))
    app.like(turns, gr.LikeData(None, {"index": 1, "value": answer.text, "liked": False}))
    lines = (tmp_path / "feedback.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["vote"] for r in records] == ["up", "down"]
    assert records[0]["question"] == QUESTION and records[0]["answer"] == answer.text
    assert records[0]["citations"][0]["title"] == answer.citations[0].title
    assert records[0]["mode"] == "extractive" and records[0]["time"]
    assert "sk-never-written" not in "".join(lines)


def test_chat_shows_the_papers_found_before_the_answer(seed_settings, tmp_path):
    from rag.config import load_settings
    from ui import render
    from ui.app import ChatApp

    settings = load_settings(home=tmp_path, index={"dir": seed_settings.index_dir})
    steps = list(ChatApp(settings).chat(QUESTION, [], "extractive", 5, "", None, "", ""))
    panels = [(i, panel) for i, (_, panel, _, _) in enumerate(steps) if isinstance(panel, str)]
    texts = [i for i, (chat, _, _, _) in enumerate(steps) if isinstance(chat, list)
             and chat[-1]["content"] != render.streaming_markdown("")]
    (_, waiting), (found_at, found), (last_at, final) = panels
    assert waiting == render.WAITING_PANEL and found_at < texts[0] and last_at == len(steps) - 1
    assert "Papers found for:" in found and found.count('class="ap-src"') == 5
    assert found.count("<mark>") == 5  # each paper's best sentence
    assert "Sources for:" in final and 'id="src-0-1"' in final
    turn = steps[-1][2][-1]
    assert [s.paper.paper_id for s in turn["retrieved"].sources] == \
        [s.paper.paper_id for s in turn["answer"].sources]


def test_missing_index_is_reported_not_crashed(tmp_path):
    from rag.config import load_settings
    from ui.app import ChatApp

    app = ChatApp(load_settings(home=tmp_path))
    status, shown = app.index_status()
    # No sources configured: the page offers no Build button, only the command to run.
    assert not shown and "No usable index" in status and "index build --source" in status
    configured = ChatApp(load_settings(home=tmp_path, index={"sources": [tmp_path]}))
    assert configured.index_status()[1]
    *_, (messages, _, turns, _) = app.chat(QUESTION, [], "extractive", 5, "", None, "", "")
    assert "No index at" in messages[-1]["content"] and turns[-1]["error"]


@pytest.mark.slow
def test_build_button_builds_a_missing_index(tmp_path):
    # One listing file (the one holding the REPA paper) keeps the build short.
    seed = next(p for p in sorted((REPO / "seeds").iterdir())
                if "REPresentation Alignment" in p.read_text(encoding="utf-8"))
    env = {"ASKPAPERS_INDEX__SOURCES": json.dumps([str(seed)])}
    with served_app(tmp_path / "home", **env) as (url, home):
        client = _client(url)
        status = client.predict(api_name="/build_index")[0]
        assert "papers" in status and "No usable index" not in status
        assert (home / "index" / "CURRENT").is_file()
        messages, panel, _ = _chat(client, "What is REPresentation Alignment?")
        assert "ap-cite" in _text(messages[-1])


def test_the_bibtex_export_folder_is_removed_when_the_process_exits(tmp_path):
    code = "from ui import export; print(export._out_dir())"
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=REPO, check=True)
    folder = Path(out.stdout.strip())
    assert folder.parent == tmp_path and folder.name.startswith("askpapers-bibtex-")
    assert not folder.exists()
