"""Readers against the real seed pages, arXiv JSON Lines and folders of papers."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from index.readers import read_sources

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
FIRST_TITLE = ("STU-Net: Scalable and Transferable Medical Image Segmentation Models "
               "Empowered by Large-Scale Supervised Pre-training")


@pytest.fixture(scope="module")
def seed_papers():
    return read_sources([SEEDS]).papers


def test_seed_pages_give_478_unique_papers(seed_papers):
    assert len(seed_papers) == 478
    assert len({p.paper_id for p in seed_papers}) == 478


def test_glued_subscribe_is_removed_from_the_first_title(seed_papers):
    titles = {p.title for p in seed_papers}
    assert FIRST_TITLE in titles
    assert not any(t.startswith("Subscribe") for t in titles)


def test_page_furniture_is_dropped(seed_papers):
    furniture = {"new", "Subscribe", "byAK and the research community", "Mar 13", "May 22"}
    for p in seed_papers:
        assert p.title not in furniture
        assert "Get trending papers" not in p.title + p.abstract
        assert len(p.abstract) > 100


def test_papers_in_several_files_keep_every_listing(seed_papers):
    counts = sorted((len(p.listings) for p in seed_papers), reverse=True)
    assert counts[0] == 3
    three = next(p for p in seed_papers if len(p.listings) == 3)
    assert len({x.source for x in three.listings}) == 3
    dated = [x for x in three.listings if x.source.startswith("00") and x.date]
    assert dated, "listing dates from pages 001-004 are kept"


def test_paper_ids_do_not_depend_on_file_order(seed_papers):
    files = sorted(SEEDS.iterdir(), reverse=True)
    again = read_sources(files).papers
    assert [(p.paper_id, p.title, p.abstract) for p in again] == \
        [(p.paper_id, p.title, p.abstract) for p in seed_papers]


def test_text_is_kept_as_written(seed_papers):
    assert any("256times256" in p.abstract for p in seed_papers)
    assert all("  " not in p.abstract and "\n" not in p.abstract for p in seed_papers)


def test_arxiv_jsonl_keeps_metadata_and_skips_bad_lines(tmp_path):
    f = tmp_path / "arxiv.jsonl"
    good = {"id": "2101.00001", "title": "A  Good\nPaper", "abstract": " We study things. ",
            "authors": "Ada Lovelace, Alan Turing and Grace Hopper", "categories": "cs.LG cs.AI",
            "update_date": "2021-01-05"}
    lines = [json.dumps(good), json.dumps({"id": "x", "title": "No abstract"}),
             json.dumps({"id": "y", "title": 3, "abstract": ["wrong", "type"]}), "{not json", "[]"]
    f.write_text("\n".join(lines) + "\n")
    report = read_sources([f])
    assert len(report.papers) == 1 and len(report.skipped) == 4
    p = report.papers[0]
    assert (p.title, p.abstract) == ("A Good Paper", "We study things.")
    assert p.authors == ["Ada Lovelace", "Alan Turing", "Grace Hopper"]
    assert p.categories == ["cs.LG", "cs.AI"] and p.year == 2021


def test_folder_of_text_and_markdown_papers(tmp_path):
    (tmp_path / "a.txt").write_text("Paper A\nFirst line of A.\nSecond line.\n")
    (tmp_path / "b.md").write_text("# Paper B\n\nAbstract of B.\n")
    (tmp_path / "ignored.pdf").write_bytes(b"%PDF")
    papers = read_sources([tmp_path]).papers
    assert sorted((p.title, p.abstract) for p in papers) == [
        ("Paper A", "First line of A. Second line."), ("Paper B", "Abstract of B.")]


# Bad sources (empty, truncated, non-UTF-8, binary, no abstract, ...) are rows of the
# bad-input matrix, tests/test_bad_inputs.py.
