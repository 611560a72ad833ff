"""Records on disk (records.sqlite): filters in SQL agree with paper_matches; shared by threads."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from index.build import build_index
from rag import store
from rag.config import load_settings
from rag.filters import paper_matches

AUTHORS = ["Jürgen Müller", "ANNA STRAßE", "Li Wei", "Ola Nordmann", "Zoë Ünal"]
CATEGORIES = ["cs.LG", "cs.CL", "stat.ML", "CS.CV", "q-bio.NC"]


def _arxiv_rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        rows.append({
            "title": f"Study {i} of sparse attention in model family {i % 4}",
            "abstract": f"We measure sparse attention variant {i} on benchmark {i % 3}. "
                        "It reduces memory while keeping accuracy within one point.",
            "authors": f"{AUTHORS[i % 5]} and {AUTHORS[(i + 2) % 5]}" if i % 6 else "",
            "categories": f"{CATEGORIES[i % 5]} {CATEGORIES[(i + 1) % 5]}" if i % 7 else "",
            "update_date": f"{2019 + i % 5}-0{1 + i % 9}-1{i % 10}" if i % 8 else "",
        })
    return rows


@pytest.fixture(scope="module")
def arxiv_index(tmp_path_factory):
    home = tmp_path_factory.mktemp("records_home")
    a, b = home / "a.jsonl", home / "b.jsonl"
    rows = _arxiv_rows(30)
    a.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows[:20]))
    # b repeats papers 15-19 (merged listings) and adds 10 more
    b.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows[15:]))
    settings = load_settings(home=home)
    build_index(settings, [a, b])
    return store.load_index(settings.index_dir, settings)


FILTERS = [
    {}, {"year": 2021}, {"year": "2023"}, {"author": "müller"}, {"author": "anna strasse"},
    {"author": "ZOË"}, {"author": "wei"}, {"author": "nobody"}, {"category": "cs.cv"},
    {"category": "cs"}, {"category": "STAT.ML"}, {"source": "b.jsonl"}, {"source": "2020-0"},
    {"source": "A.JSONL 2022"}, {"year": 2022, "author": "nordmann", "category": "cs.lg"},
    {"author": "", "year": None, "category": []}, {"source": "\x1f"},
]


@pytest.mark.parametrize("filters", FILTERS, ids=[json.dumps(f, ensure_ascii=False) for f in FILTERS])
def test_rows_where_equals_paper_matches(arxiv_index, filters):
    passing = {pid for pid, p in arxiv_index.papers.items() if paper_matches(p, filters)}
    expected = [c.chunk_id for c in arxiv_index.chunks if c.paper_id in passing]
    got = arxiv_index.rows_where(filters)
    assert got.dtype == np.int64 and got.tolist() == expected


def test_filters_select_something_and_listings_were_merged(arxiv_index):
    assert 0 < len(arxiv_index.rows_where({"author": "müller"})) < len(arxiv_index.chunks)
    both = [p for p in arxiv_index.papers.values() if len(p.listings) == 2]
    assert len(both) == 5 and len(arxiv_index.papers) == 30


def test_records_read_as_mapping_and_sequence(arxiv_index):
    papers, chunks = arxiv_index.papers, arxiv_index.chunks
    pid = next(iter(papers))
    assert pid in papers and "nope" not in papers and papers[pid].paper_id == pid
    assert len(list(papers.values())) == len(papers) == len(dict(papers.items()))
    assert [c.chunk_id for c in chunks] == list(range(len(chunks)))
    assert chunks[-1].chunk_id == len(chunks) - 1 and chunks[1:3] == [chunks[1], chunks[2]]
    with pytest.raises(IndexError):
        chunks[len(chunks)]
    rows = [3, 0, 3, len(chunks) - 1]
    assert arxiv_index.paper_ids_of(rows) == [chunks[r].paper_id for r in rows]
    assert all(c.paper_id == pid for c in arxiv_index.chunks_of(pid))


def test_one_index_is_shared_by_threads(arxiv_index):
    n = len(arxiv_index.chunks)

    def work(i: int) -> bool:
        c = arxiv_index.chunks[i % n]
        return (arxiv_index.paper_ids_of([c.chunk_id]) == [c.paper_id]
                and arxiv_index.papers[c.paper_id].paper_id == c.paper_id
                and c.chunk_id in arxiv_index.rows_where({"year": arxiv_index.papers[c.paper_id].year}
                                                          if arxiv_index.papers[c.paper_id].year else {}))

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(work, range(400)))
