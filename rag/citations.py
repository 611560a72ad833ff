"""Citation markers: parse, validate, attach quotes, and repair or drop uncited claims.

A model may invent [7] when it was given three sources, cite nothing, or cite the wrong
paper. None of that is shown: invalid markers are removed, and every claim-bearing
sentence ends up with a valid citation and a supporting quote, or is dropped.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from rag.evidence import TermWeights, rank_sentences
from rag.text import as_data, keyword_tokens, split_sentences
from rag.types import Citation, Source

MARKER = re.compile(r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")
# A sentence with fewer content words than this is connective tissue, not a claim.
MIN_CLAIM_TOKENS = 3
# A model's own citation stands if its support (see rag.generation.claim_support) reaches
# this; a citation added by repair needs more. Calibrated on dev answers.
MIN_CITED_SUPPORT = 0.6
MIN_REPAIR_SUPPORT = 1.0
# ...and it must not trail the best-supporting source by more than this (wrong paper).
CITED_MARGIN = 0.35


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


# How strongly a source supports a claim (higher is stronger); see rag.generation.claim_support.
Support = Callable[[str, Source], float]


def _quote(source: Source, claim: str, weights: TermWeights) -> Citation:
    best = max(rank_sentences(source.paper, claim, weights), key=lambda ev: ev.match)
    return Citation(source.n, source.paper.paper_id, source.paper.title, as_data(best.text),
                    best.start, best.end)


def _numbers(text: str) -> set[str]:
    return {t for t in keyword_tokens(text) if any(ch.isdigit() for ch in t)}


def _number_sources(claim: str, cited: list[int], by_n: dict[int, Source]) -> list[int]:
    """Sources that alone hold a number the claim states: "29.8 vs 34.1" cites both papers."""
    missing = _numbers(claim)
    for n in cited:
        missing -= _numbers(f"{by_n[n].paper.title} {by_n[n].paper.abstract}")
    extra = []
    for n, source in sorted(by_n.items()):
        found = missing & _numbers(f"{source.paper.title} {source.paper.abstract}")
        if n not in cited and found:
            extra.append(n)
            missing -= found
    return extra


def _cite_claim(claim: str, nums: list[int], hint: list[int], by_n: dict[int, Source],
                support: Support) -> list[int]:
    """The sources that support a claim: the model's own picks that hold up, else the
    nearest citation of the paragraph, else the best supporting source; plus any source
    that alone holds a number the claim states. None: the claim is dropped."""
    best, best_n = max((support(claim, s), -s.n) for s in by_n.values())

    def holds(n: int) -> bool:
        score = support(claim, by_n[n])
        return score >= MIN_CITED_SUPPORT and score >= best - CITED_MARGIN

    cited = [n for n in nums if holds(n)] or [n for n in hint if holds(n)][:1]
    if not cited and best >= MIN_REPAIR_SUPPORT:
        cited = [-best_n]
    return sorted(cited + _number_sources(claim, cited, by_n))


def _sentences_with_markers(text: str) -> list[tuple[str, list[int]]]:
    """Sentences with their markers; a marker after the full stop belongs to the sentence."""
    text = re.sub(r"([.!?])\s*((?:\[[\d,;\s]+\])+)", r" \2\1", text)
    out = []
    for start, end in split_sentences(text):
        sentence = text[start:end].strip()
        claim = " ".join(MARKER.sub("", sentence).split())
        out.append((re.sub(r"\s+([.,;:!?])", r"\1", claim), marker_numbers(sentence)))
    return out


def check_citations(text: str, sources: list[Source], weights: TermWeights,
                    support: Support) -> CheckedAnswer:
    """Validate an answer's markers sentence by sentence and attach one quote per citation.

    A claim whose markers don't hold up is re-cited to the source that supports it, or
    dropped; markers are moved to the end of their sentence.
    """
    by_n = {s.n: s for s in sources}
    parts = _sentences_with_markers(keep_valid_markers(text, set(by_n)))
    kept, dropped, cites = [], [], {}
    for i, (claim, nums) in enumerate(parts):
        if len(keyword_tokens(claim)) < MIN_CLAIM_TOKENS:
            if not nums and claim:
                kept.append(claim)  # connective text ("In short:"), not a claim
            continue
        hint = [n for _, later in parts[i + 1:] for n in later][:1] + \
               [n for _, earlier in reversed(parts[:i]) for n in earlier][:1]
        nums = _cite_claim(claim, nums, hint, by_n, support)
        if not nums:
            dropped.append(claim)
            continue
        kept.append(_with_markers(claim, nums))
        for n in nums:
            cites.setdefault(n, _quote(by_n[n], claim, weights))
    return CheckedAnswer(" ".join(kept), [cites[n] for n in sorted(cites)], dropped)


def _with_markers(claim: str, nums: list[int]) -> str:
    marks = "".join(f"[{n}]" for n in nums)
    if claim[-1] in ".!?":
        return f"{claim[:-1].rstrip()} {marks}{claim[-1]}"
    return f"{claim} {marks}"
