"""Shared test fixtures: an offline environment and one real index built on the real seeds."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Tests never touch the network: models load from packages or local paths.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
for _name in [n for n in os.environ if n.startswith("ASKPAPERS_")]:
    del os.environ[_name]  # a developer's own settings must not leak into tests

REPO = Path(__file__).resolve().parent
SEEDS = REPO / "seeds"


@pytest.fixture(scope="session")
def seed_settings(tmp_path_factory):
    """Settings whose index is built once per session from the real seed files."""
    from index.build import build_index
    from rag.config import load_settings

    settings = load_settings(home=tmp_path_factory.mktemp("seed_home"))
    build_index(settings, [SEEDS])
    return settings


@pytest.fixture
def index_copy(seed_settings, tmp_path):
    """A private copy of the seed index, for tests that rebuild or damage it."""
    from rag.config import load_settings

    shutil.copytree(seed_settings.index_dir, tmp_path / "home" / "index", symlinks=True)
    return load_settings(home=tmp_path / "home")
