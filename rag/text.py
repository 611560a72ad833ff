"""Plain text helpers shared by indexing and answering: keyword tokens, sentences, and
corpus text made inert before it is shown or quoted."""
from __future__ import annotations

import re
import unicodedata

# Words, numbers with decimals/units ("86.2", "4.7x", "256times256"), hyphenated names.
# Latin letters and digits only: words of other scripts are not searched, so a question
# with a few of them ("(中文 вопрос)") is not judged by words no abstract here has.
_TOKEN = re.compile(r"[a-z0-9]+(?:[.\-][a-z0-9]+)*")
# A sentence ends at . ! ? followed by space and a capital, digit or bracket.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[\"'])")
# Abbreviations that end with a period but rarely end a sentence.
_NO_BREAK = re.compile(r"(?:\b(?:e\.g|i\.e|et al|vs|cf|Fig|Eq|Sec|approx|resp)\.|\b[A-Z]\.)$")

# Corpus text is data. `as_data` swaps characters one for one (so character offsets into
# an abstract stay valid): square brackets become parentheses, which ends citation markers
# ("[2]") and markdown links and images ("![x](url)", "[x](url)", "[x]: url"); "<" before
# a letter, "/", "!" or "?" becomes "‹", which ends raw HTML tags, comments and autolinks;
# the colon of a script URL scheme becomes "∶", so no "javascript:" URL is left.
_DATA_CHARS = str.maketrans({"[": "(", "]": ")"})
_TAG_OPEN = re.compile(r"<(?=[A-Za-z/!?])")
_SCRIPT_SCHEME = re.compile(r"\b((?:java|vb)script\s*):", re.I)

STOPWORDS = frozenset(
    "a an and are as at be but by can do does for from has have how in into is it its of on "
    "or our paper papers that the their them these this those to was we were what when where "
    "which while who why will with than then there so such via use used using also both each "
    "more most other over same some very not no only own after before between during about "
    "against all any because been being did doing further had having he her here hers him "
    "his i me my myself once out she should up you your yours".split()
)


def fold(text: str) -> str:
    """Unicode-normalised, case-folded text for matching."""
    return unicodedata.normalize("NFKC", text).casefold()


def _without_accents(text: str) -> str:
    """"Fréchet" as "Frechet": the accents a user may or may not type are dropped."""
    return "".join(ch for ch in unicodedata.normalize("NFKD", text)
                   if not unicodedata.combining(ch))


def keyword_tokens(text: str) -> list[str]:
    """Lower-case content tokens for BM25 and lexical overlap; stopwords dropped.

    Hyphenated and dotted words also yield their parts, so "Pre-LN" matches "LN"; accents
    are dropped, so "Fréchet" matches "Frechet" and "naïve" matches "naive".
    """
    out = []
    for tok in _TOKEN.findall(fold(_without_accents(text))):
        if tok in STOPWORDS:
            continue
        out.append(tok)
        if "-" in tok:
            out.extend(p for p in tok.split("-") if p and p not in STOPWORDS)
    return out


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans (start, end) of the sentences of `text`."""
    spans, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        if _NO_BREAK.search(text[start:m.start()]):
            continue
        spans.append((start, m.start()))
        start = m.end()
    if start < len(text.rstrip()):
        spans.append((start, len(text.rstrip())))
    return [(s, e) for s, e in spans if e > s]


def as_data(text: str) -> str:
    """Corpus text made inert for a prompt, a quote or the page: no citation marker,
    markdown link or image, HTML tag or script URL survives; the length is unchanged."""
    text = text.translate(_DATA_CHARS)
    text = _TAG_OPEN.sub("\u2039", text)
    return _SCRIPT_SCHEME.sub("\\1\u2236", text)
