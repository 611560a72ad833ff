"""The data that crosses module boundaries: papers, chunks, sources, citations, what was
retrieved for a question, answers.

Plain dataclasses so they serialise to JSON without surprises and import nothing heavy.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


def paper_link(doi: str = "", arxiv_id: str = "", url: str = "") -> str:
    """A paper's page: `url` when it is http(s), else its DOI or arXiv page, else ""."""
    if url.startswith(("https://", "http://")):
        return url
    if doi:
        return f"https://doi.org/{doi}"
    if arxiv_id:
        return f"https://arxiv.org/abs/{arxiv_id}"
    return ""


@dataclass(frozen=True)
class Listing:
    """One place a paper was found: a source file and, for listing pages, its date."""

    source: str
    date: str = ""


@dataclass
class Paper:
    """One paper as read from a source, before chunking."""

    paper_id: str
    title: str
    abstract: str
    listings: list[Listing] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)  # arXiv categories or keywords
    year: int | None = None
    doi: str = ""  # bare DOI, lower case: "10.1000/xyz"
    arxiv_id: str = ""  # "2401.01234" or "hep-th/9901001", no version
    url: str = ""  # the paper's page as its source gave it

    @property
    def link(self) -> str:
        """The paper's page: its own URL, else its DOI or arXiv page, else ""."""
        return paper_link(self.doi, self.arxiv_id, self.url)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Paper:
        d = dict(d)
        d["listings"] = [Listing(**x) for x in d.get("listings", [])]
        return cls(**d)


@dataclass(frozen=True)
class Chunk:
    """A span of one paper's abstract; `start`/`end` are character offsets into it."""

    chunk_id: int
    paper_id: str
    start: int
    end: int
    text: str

    def embed_text(self, title: str) -> str:
        """The text the embedder and keyword index see (see `embed_text`)."""
        return embed_text(title, self.text)


def embed_text(title: str, text: str) -> str:
    """The one text the embedder and the keyword index see of a chunk: title first, then the span."""
    return f"{title}\n{text}"


@dataclass
class Source:
    """A retrieved paper with its ranking signals and the chunks that matched."""

    n: int
    paper: Paper
    score: float
    dense_score: float
    keyword_score: float
    chunks: list[Chunk] = field(default_factory=list)


@dataclass
class Citation:
    """A [n] marker in an answer, resolved to a paper and its supporting sentence."""

    n: int
    paper_id: str
    title: str
    quote: str
    start: int
    end: int
    doi: str = ""
    arxiv_id: str = ""
    url: str = ""  # the paper's page (Paper.link)


def link_citations(citations: list[Citation], sources: list[Source]) -> None:
    """Give each citation its paper's DOI, arXiv id and page, from the source of its number."""
    papers = {s.n: s.paper for s in sources}
    for c in citations:
        if (p := papers.get(c.n)) is not None and p.paper_id == c.paper_id:
            c.doi, c.arxiv_id, c.url = p.doi, p.arxiv_id, p.link


@dataclass(frozen=True)
class Retrieved:
    """What `ask_stream` yields first, before any model runs: the papers found for a
    question, each with its best-matching sentence, so they can be shown at once."""

    question: str
    sources: list[Source]  # the same papers, in the same order, as the final Answer's
    best: dict[int, Citation]  # source number -> its best sentence and that sentence's span
    timings: dict[str, float] = field(default_factory=dict)  # retrieve_s

    def link_citations(self) -> Retrieved:
        """Give each best sentence its paper's DOI, arXiv id and page; returns self."""
        link_citations(list(self.best.values()), self.sources)
        return self


@dataclass
class Answer:
    """The result of a question: cited text, or an abstention, plus what produced it."""

    question: str
    text: str
    citations: list[Citation]
    sources: list[Source]
    abstained: bool
    mode: str
    prompt: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    model_output: str = ""  # the model's raw text, before citation checking

    def to_prediction(self, qid: str) -> dict:
        """The JSON line format of `askpapers ask --batch` and the eval scorer."""
        return {
            "id": qid,
            "answer": self.text,
            "citations": [
                {"n": c.n, "title": c.title, "paper_id": c.paper_id, "quote": c.quote}
                for c in self.citations
            ],
            "retrieved": [s.paper.title for s in self.sources],
            "abstained": self.abstained,
        }

    def to_dict(self) -> dict:
        return asdict(self)

    def link_citations(self) -> Answer:
        """Give each citation its paper's DOI, arXiv id and page (from the sources); returns self."""
        link_citations(self.citations, self.sources)
        return self

    def to_bibtex(self) -> str:
        """The cited papers as BibTeX entries, generated from the records ("" if none)."""
        from rag.bibtex import answer_bibtex

        return answer_bibtex(self)
