"""Split abstracts into token-bounded, sentence-aligned chunks with character offsets."""
from __future__ import annotations

from collections.abc import Iterable

from rag.config import ChunkSettings
from rag.tokens import count_tokens, get_encoding
from rag.types import Chunk, Paper

# Split at sentence ends first, then clauses, then words; never inside a word unless forced.
_SEPARATORS = [r"(?<=[.!?])\s+(?=[A-Z0-9(\[])", r"(?<=[;:])\s+", r"(?<=,)\s+", r"\s+", ""]


def make_splitter(cfg: ChunkSettings):
    """LangChain's recursive splitter, measuring length in tiktoken tokens."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    get_encoding(cfg.encoding)  # make the BPE file available offline before LangChain asks
    return RecursiveCharacterTextSplitter(
        separators=_SEPARATORS,
        is_separator_regex=True,
        keep_separator="end",
        chunk_size=cfg.chunk_tokens,
        chunk_overlap=cfg.overlap_tokens,
        length_function=lambda t: count_tokens(t, cfg.encoding),
        strip_whitespace=True,
    )


def chunk_paper(paper: Paper, splitter, first_id: int) -> list[Chunk]:
    """Chunks of one abstract; offsets index into `paper.abstract`."""
    chunks = []
    cursor = 0
    for piece in splitter.split_text(paper.abstract):
        start = paper.abstract.find(piece, max(0, cursor - len(piece)))
        if start < 0:  # cannot happen with strip-only splitting; keep the text anyway
            start = paper.abstract.find(piece)
        end = start + len(piece)
        chunks.append(Chunk(first_id + len(chunks), paper.paper_id, start, end, piece))
        cursor = start + 1
    return chunks


def chunk_papers(papers: Iterable[Paper], cfg: ChunkSettings, first_id: int = 0) -> list[Chunk]:
    """Chunks of many papers, numbered consecutively from `first_id`."""
    splitter = make_splitter(cfg)
    out: list[Chunk] = []
    for p in papers:
        out.extend(chunk_paper(p, splitter, first_id + len(out)))
    return out
