"""Readers for a researcher's library: BibTeX, RIS, CSL-JSON, Better BibTeX JSON and PDFs,
deduplication across formats, and a build from them with the real builder."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from index.bib_readers import read_export
from index.readers import ReadReport, read_sources
from rag.types import Paper

ABSTRACT = ("We propose Lantern sampling for diffusion models. It reaches an FID of 1.9 on "
            "ImageNet while halving the number of sampling steps.")

BIB = r"""
@article{lantern2024,
  title = {Lantern {Sampling} for Quiet Diffusion Models},
  author = {Lovelace, Ada and Turing, Alan M.},
  year = {2024},
  doi = {https://doi.org/10.1234/LANTERN.2024},
  eprint = {2401.01234v2}, archivePrefix = {arXiv},
  keywords = {diffusion, sampling},
  abstract = {We propose Lantern sampling for diffusion models. It reaches an FID of 1.9 on ImageNet while halving the number of sampling steps.},
}
@misc{noabstract, title = {A Paper Without an Abstract}, year = 2020}
@article{broken, title = {Missing brace
@book{tidal, title = {Tidal Forecasting with Graph Networks}, author = {Noether, Emmy},
  url = {https://example.org/tidal}, abstract = {Graph networks forecast coastal tides from sensor stations.}}
"""

RIS = f"""TY  - JOUR
TI  - Lantern Sampling for Quiet Diffusion Models (journal version)
AU  - Lovelace, Ada
PY  - 2024
DO  - 10.1234/lantern.2024
AB  - {ABSTRACT}
KW  - diffusion
ER  -

TY  - JOUR
TI  - Sparse Attention for Legal Documents
AU  - Hopper, Grace
PY  - 2023
UR  - https://arxiv.org/abs/2305.00001v1
AB  - Sparse attention lets transformers read legal documents of 100k tokens.
ER  -

TY  - JOUR
TI  - An Entry With No Abstract
ER  -
"""

CSL = [
    {"id": "http://zotero.org/1", "type": "article-journal", "title": "Protein Folding under Low Light",
     "author": [{"family": "Franklin", "given": "Rosalind"}], "issued": {"date-parts": [[2022, 5]]},
     "DOI": "10.5555/FOLD", "URL": "https://example.org/fold", "keyword": "proteins, microscopy",
     "abstract": "We fold proteins observed under low light microscopy with a denoising network."},
    {"id": "dup", "title": "Sparse attention for legal documents", "note": "arXiv: 2305.00001",
     "abstract": "Sparse attention lets transformers read legal documents of 100k tokens, longer."},
    {"id": "empty", "title": "Only a title"},
]

BBT = {"config": {}, "items": [
    {"itemType": "journalArticle", "title": "Quantum Error Correction at Scale",
     "creators": [{"firstName": "Peter", "lastName": "Shor", "creatorType": "author"}],
     "date": "2021-03-01", "DOI": "10.7777/qec", "abstractNote": "Surface codes correct errors.",
     "tags": [{"tag": "quantum"}], "citationKey": "shor2021"}]}


def make_pdf(lines: list[str], title: str = "") -> bytes:
    """A one-page PDF with a real text layer (Helvetica), written by hand."""
    text = " ".join(f"({line.replace('(', '[').replace(')', ']')}) Tj 0 -14 Td" for line in lines)
    stream = f"BT /F1 10 Tf 50 750 Td {text} ET".encode("latin-1")
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
               f"<< /Title ({title}) /Author (Ada Lovelace) >>".encode("latin-1")]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


PDF_LINES = ["Lantern Sampling for Quiet Diffusion Models", "Ada Lovelace", "arXiv:2401.01234v1",
             "Abstract", ABSTRACT, "1 Introduction", "Diffusion models are slow."]


def blank_pdf() -> bytes:
    """A PDF whose page has no text layer (what a scan without OCR gives)."""
    import io

    from pypdf import PdfWriter

    w, buf = PdfWriter(), io.BytesIO()
    w.add_blank_page(612, 792)
    w.write(buf)
    return buf.getvalue()


def encrypted_pdf() -> bytes:
    import io

    from pypdf import PdfReader, PdfWriter

    w, buf = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(PDF_LINES)))), io.BytesIO()
    w.encrypt(user_password="secret", owner_password="owner")
    w.write(buf)
    return buf.getvalue()


@pytest.fixture
def library(tmp_path) -> Path:
    """A folder holding one export of each format and three PDFs (one good, two bad)."""
    lib = tmp_path / "library"
    lib.mkdir()
    (lib / "refs.bib").write_text(BIB, encoding="utf-8")
    (lib / "refs.ris").write_text(RIS, encoding="utf-8")
    (lib / "zotero.json").write_text(json.dumps(CSL), encoding="utf-8")
    (lib / "bbt.json").write_text(json.dumps(BBT), encoding="utf-8")
    (lib / "paper.pdf").write_bytes(make_pdf(PDF_LINES))
    (lib / "scan.pdf").write_bytes(blank_pdf())
    (lib / "locked.pdf").write_bytes(encrypted_pdf())
    return lib


def _read(path: Path) -> tuple[list[Paper], list[str]]:
    skipped: list[str] = []
    return list(read_export(path, skipped)), skipped


def test_bibtex_keeps_ids_and_metadata_and_counts_skips(library):
    papers, skipped = _read(library / "refs.bib")
    lantern = papers[0]
    assert lantern.title == "Lantern Sampling for Quiet Diffusion Models"
    assert lantern.authors == ["Ada Lovelace", "Alan M. Turing"] and lantern.year == 2024
    assert (lantern.doi, lantern.arxiv_id) == ("10.1234/lantern.2024", "2401.01234")
    assert lantern.categories == ["diffusion", "sampling"] and lantern.abstract == ABSTRACT
    assert lantern.link == "https://doi.org/10.1234/lantern.2024"
    assert "refs.bib: entry noabstract: no abstract" in skipped
    assert any("malformed BibTeX" in s for s in skipped)


def test_ris_csl_and_better_bibtex_json(library):
    ris, ris_skipped = _read(library / "refs.ris")
    assert [p.doi for p in ris] == ["10.1234/lantern.2024", ""]
    assert ris[1].arxiv_id == "2305.00001" and ris[1].url == "https://arxiv.org/abs/2305.00001v1"
    assert ris_skipped == ["refs.ris: record 3: no abstract"]
    csl, csl_skipped = _read(library / "zotero.json")
    assert csl[0].authors == ["Rosalind Franklin"] and csl[0].year == 2022
    assert csl[0].doi == "10.5555/fold" and csl[0].categories == ["proteins", "microscopy"]
    assert csl[1].arxiv_id == "2305.00001" and csl_skipped == ["zotero.json: item empty: no abstract"]
    bbt, _ = _read(library / "bbt.json")
    assert (bbt[0].authors, bbt[0].year, bbt[0].categories) == (["Peter Shor"], 2021, ["quantum"])


def test_pdf_first_page_and_the_bad_pdfs(library):
    (paper,), _ = _read(library / "paper.pdf")
    assert paper.title == "Lantern Sampling for Quiet Diffusion Models"
    assert paper.abstract == ABSTRACT and paper.arxiv_id == "2401.01234"
    assert _read(library / "scan.pdf") == ([], ["scan.pdf: no text layer (a scanned PDF?); skipped"])
    assert _read(library / "locked.pdf") == (
        [], ["locked.pdf: encrypted PDF (a password is needed); skipped"])


def test_duplicates_merge_by_doi_or_arxiv_id_then_title(library):
    report = read_sources([library])
    by_title = {p.title: p for p in report.papers}
    # Lantern: .bib, .ris (other title, same DOI) and the PDF (same arXiv id): one paper.
    lantern = [p for p in report.papers if p.doi == "10.1234/lantern.2024"]
    assert len(lantern) == 1 and lantern[0].arxiv_id == "2401.01234"
    assert {x.source for x in lantern[0].listings} == {"refs.bib", "refs.ris", "paper.pdf"}
    # Sparse attention: RIS and CSL (same arXiv id, titles differ in case): the longer abstract.
    sparse = [p for p in report.papers if p.arxiv_id == "2305.00001"]
    assert len(sparse) == 1 and sparse[0].abstract.endswith("longer.")
    assert len(report.papers) == 5, sorted(by_title)
    assert sum("no abstract" in s for s in report.skipped) == 3


def test_a_build_from_the_library_keeps_links_and_answers(library, tmp_path):
    from index.build import build_index
    from rag import ask
    from rag.config import load_settings

    settings = load_settings(home=tmp_path / "home")
    report = build_index(settings, [library])
    assert report.papers == 5 and sum("no abstract" in s for s in report.skipped) == 3
    again = build_index(settings, [library])
    assert (again.added, again.changed, again.removed, again.embedded) == (0, 0, 0, 0)
    answer = ask("What FID does Lantern sampling reach?", mode="extractive", settings=settings)
    cite = answer.citations[0]
    assert cite.doi == "10.1234/lantern.2024" and cite.url == "https://doi.org/10.1234/lantern.2024"
    bib = answer.to_bibtex()
    assert bib.startswith("@article{lovelace2024lantern,") and "doi = {10.1234/lantern.2024}" in bib
    import bibtexparser

    parsed = bibtexparser.parse_string(bib)
    assert not parsed.failed_blocks and parsed.entries[0]["eprint"] == "2401.01234"


def test_seed_papers_without_ids_get_valid_bibtex(seed_settings):
    import bibtexparser

    from rag import ask

    answer = ask("what FID does classifier guidance reach?", mode="extractive",
                 settings=seed_settings)
    bib = answer.to_bibtex()
    parsed = bibtexparser.parse_string(bib)
    assert not parsed.failed_blocks
    assert len(parsed.entries) == len({c.n for c in answer.citations}) > 0
    assert all(e.entry_type == "misc" and e["title"] and e["abstract"] for e in parsed.entries)


def test_arxiv_jsonl_keeps_the_id(tmp_path):
    row = {"id": "2401.01234", "doi": "10.1000/X", "title": "A Title", "abstract": "An abstract.",
           "update_date": "2024-01-02"}
    (tmp_path / "a.jsonl").write_text(json.dumps(row) + "\n")
    paper, = read_sources([tmp_path / "a.jsonl"]).papers
    assert (paper.arxiv_id, paper.doi, paper.url) == ("2401.01234", "10.1000/x",
                                                      "https://arxiv.org/abs/2401.01234")


def test_read_report_counts_files(library):
    report = ReadReport()
    from index.readers import iter_papers

    list(iter_papers(sorted(library.iterdir()), report))
    assert len(report.files) == 7
