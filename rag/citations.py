"""Citation markers: parse, validate, attach quotes, and repair or drop uncited claims.

A model may invent [7] when it was given three sources, cite nothing, or cite the wrong
paper. None of that is shown: invalid markers are removed, and every claim-bearing
sentence ends up with a valid citation and a supporting quote, or is dropped.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from rag.evidence import TermWeights, rank_sentences
from rag.text import keyword_tokens, split_sentences
from rag.types import Citation, Source

MARKER = re.compile(r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")
# A sentence with fewer content words than this is connective tissue, not a claim.
MIN_CLAIM_TOKENS = 3
# A repaired citation needs at least this share of the claim's IDF mass in one sentence.
MIN_REPAIR_SUPPORT = 0.5


def marker_numbers(text: str) -> list[int]:
    """Every number cited in `text`, in order of appearance, repeats removed."""
    seen: list[int] = []
    for m in MARKER.finditer(text):
        for part in re.split(r"[,;]", m.group(1)):
            n = int(part)
            if n not in seen:
                seen.append(n)
    return seen


def keep_valid_markers(text: str, valid: set[int]) -> str:
    """`text` with markers naming no given source removed; `[1, 9]` becomes `[1]`."""
    def fix(m: re.Match) -> str:
        nums = [p.strip() for p in re.split(r"[,;]", m.group(1))]
        good = [p for p in nums if int(p) in valid]
        return "".join(f"[{p}]" for p in good)

    return re.sub(r"\s+([.,;:!?])", r"\1", MARKER.sub(fix, text)).strip()


class MarkerFilter:
    """Streams text while holding back an unfinished `[..` until it is known to be valid."""

    def __init__(self, valid: set[int]):
        self.valid, self._held = valid, ""

    def feed(self, piece: str) -> str:
        text = self._held + piece
        cut = text.rfind("[")
        if cut != -1 and "]" not in text[cut:] and len(text) - cut <= 12:
            self._held, text = text[cut:], text[:cut]
        else:
            self._held = ""
        return MARKER.sub(lambda m: m.group(0) if all(
            int(p) in self.valid for p in re.split(r"[,;]", m.group(1))) else "", text)

    def flush(self) -> str:
        held, self._held = self._held, ""
        return "" if MARKER.fullmatch(held.strip()) is None and held.startswith("[") else held


@dataclass
class CheckedAnswer:
    text: str
    citations: list[Citation]
    dropped: list[str]


def _quote(source: Source, claim: str, weights: TermWeights) -> Citation:
    best = rank_sentences(source.paper, claim, weights)[0]
    return Citation(source.n, source.paper.paper_id, source.paper.title, best.text,
                    best.start, best.end)


def _best_source(claim: str, sources: list[Source], weights: TermWeights) -> Source | None:
    scored = [(rank_sentences(s.paper, claim, weights)[0].score, -s.n, s) for s in sources]
    score, _, best = max(scored, key=lambda x: x[:2])
    return best if score >= MIN_REPAIR_SUPPORT else None


def check_citations(text: str, sources: list[Source], weights: TermWeights) -> CheckedAnswer:
    """Validate an answer's markers sentence by sentence and attach one quote per citation.

    A claim without a valid marker gets the source that best supports it, or is dropped.
    """
    by_n = {s.n: s for s in sources}
    text = keep_valid_markers(text, set(by_n))
    kept, dropped, cites = [], [], {}
    for start, end in split_sentences(text):
        sentence = text[start:end].strip()
        nums = marker_numbers(sentence)
        claim = MARKER.sub("", sentence)
        if not nums and len(keyword_tokens(claim)) >= MIN_CLAIM_TOKENS:
            src = _best_source(claim, sources, weights)
            if src is None:
                dropped.append(sentence)
                continue
            sentence, nums = _add_marker(sentence, src.n), [src.n]
        kept.append(sentence)
        for n in nums:
            cites.setdefault(n, _quote(by_n[n], claim, weights))
    return CheckedAnswer(" ".join(kept), [cites[n] for n in sorted(cites)], dropped)


def _add_marker(sentence: str, n: int) -> str:
    body = sentence.rstrip()
    if body and body[-1] in ".!?":
        return f"{body[:-1]} [{n}]{body[-1]}"
    return f"{body} [{n}]"
