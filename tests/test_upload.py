"""Adding papers from the page: the real app (a subprocess on 127.0.0.1) over a private copy
of the seed index, driven by gradio_client; then the BibTeX export of the sources panel."""
from __future__ import annotations

from pathlib import Path

import pytest
from test_bib_readers import BIB, blank_pdf
from test_ui import _chat, _client, _text, served_app

from rag import store

LANTERN_Q = "What FID does Lantern sampling reach on ImageNet?"


@pytest.fixture
def upload_app(index_copy, tmp_path):
    with served_app(tmp_path / "serve_home", index_copy.index_dir,
                    ASKPAPERS_HOME=str(index_copy.home)) as (url, _):
        yield url, index_copy


def _upload(client, path: Path):
    from gradio_client import handle_file

    return client.predict([handle_file(str(path))], api_name="/add_papers")


def test_an_upload_adds_papers_answerable_in_the_same_session(upload_app, tmp_path):
    url, settings = upload_app
    before = store.read_manifest(store.current_build(settings.index_dir))["counts"]["papers"]
    client = _client(url)
    bib = tmp_path / "my library.bib"
    bib.write_text(BIB, encoding="utf-8")
    status = _upload(client, bib)[0]
    assert "**Index:**" in status and f"{before + 2} papers" in status
    stored = list((settings.home / "uploads").iterdir())
    assert len(stored) == 1 and stored[0].name.endswith("-my_library.bib")
    messages, panel, _ = _chat(client, LANTERN_Q)
    assert "1.9" in _text(messages[-1])
    assert 'href="https://doi.org/10.1234/lantern.2024"' in panel  # the paper's page


def test_a_bad_upload_says_why_and_leaves_the_index_alone(upload_app, tmp_path):
    url, settings = upload_app
    live = store.current_build(settings.index_dir)
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(blank_pdf())
    status = _upload(_client(url), scan)[0]
    assert status.startswith("**Build failed:**") and "scan.pdf" in status
    assert "holds no papers" in status and "no text layer" in status and str(tmp_path) not in status
    assert store.current_build(settings.index_dir) == live
    assert not (settings.home / "uploads").exists() or not any((settings.home / "uploads").iterdir())


def test_bibtex_export_of_the_cited_papers(seed_settings):
    from rag import ask
    from ui.app import ChatApp
    from ui.export import bibtex_file

    answer = ask("what FID does classifier guidance reach?", mode="extractive", settings=seed_settings)
    turns = [{"question": answer.question, "text": "", "answer": answer, "error": None}]
    update = bibtex_file(turns)
    assert update["visible"] is True
    text = Path(update["value"]).read_text(encoding="utf-8")
    assert text == answer.to_bibtex() and text.count("@misc{") == len({c.n for c in answer.citations})
    assert bibtex_file([])["visible"] is False
    ChatApp(seed_settings)  # the handlers the page wires it beside still build
