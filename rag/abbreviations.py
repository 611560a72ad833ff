"""Abbreviations a question uses, spelled out the way the indexed papers define them.

Researchers type "SR", "KD" or "NAS" where an abstract writes "super-resolution (SR)".
Dense search may not know the abbreviation and keyword search misses a paper that spells
it out, so the search text gets the long form the corpus itself gives beside it:
"Is there an SR method ..." is searched as "Is there an SR (super-resolution) method ...".
Nothing is looked up outside the index.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable

# An abbreviation as typed: two to six capitals or digits, a capital first, maybe a plural
# "s" ("SR", "KD", "NAS", "LLMs"; "3D" is not one), standing alone: not part of a
# hyphenated name ("TensorRT-LLM", "GPT-base").
_ALONE = r"(?<![\w\-/]){}(s?)(?![\w\-/])"
_ABBREV = re.compile(_ALONE.format(r"([A-Z][A-Z0-9]{1,5})"))
# Words before a parenthesised abbreviation in corpus text: "... image super-resolution (SR)".
_BEFORE = r"((?:[\w'\-]+\s+){1,6})\(\s*"


def spelled_from(acronym: str, words: str) -> bool:
    """True when the acronym's capitals are, in order, initials of the words before it
    ("Shift-Conv-based Network" -> "SCN"), the first capital from one of them."""
    initials = "".join(w[0] for w in re.split(r"[\s\-]+", words) if w).lower()
    caps = [c.lower() for c in acronym if c.isupper()]
    it = iter(initials)
    return len(caps) >= 2 and all(c in it for c in caps)


def in_question(question: str) -> list[str]:
    """The abbreviations a question uses, once each, in order."""
    return list(dict.fromkeys(m.group(1) for m in _ABBREV.finditer(question)))


def long_form(abbrev: str, text: str) -> str | None:
    """The shortest run of words just before "(ABBREV)" in `text` that starts with the
    abbreviation's first letter and whose initials spell it, lower-cased; None if absent."""
    for m in re.finditer(_BEFORE + re.escape(abbrev) + r"s?\s*\)", text):
        words = m.group(1).split()
        for n in range(1, len(words) + 1):
            run = " ".join(words[-n:])
            if run[0].lower() == abbrev[0].lower() and spelled_from(abbrev, run):
                return run.lower()
    return None


def expand(question: str, texts_using: Callable[[str], Iterable[str]]) -> str:
    """The question with each abbreviation followed by its most frequent long form among
    the texts `texts_using(abbrev)` returns, unless the question spells it out already."""
    out = question
    for abbrev in in_question(question):
        a = re.escape(abbrev)
        if re.search(rf"\(\s*{a}s?\s*\)|\b{a}s?\s*\(", question):
            continue  # defined in the question: "angiography (DSA)", "SR (speech ...)"
        forms = Counter(f for t in texts_using(abbrev) if (f := long_form(abbrev, t)))
        if not forms:
            continue
        form = forms.most_common(1)[0][0]
        if form in question.lower():
            continue
        out = re.sub(_ALONE.format(re.escape(abbrev)), rf"{abbrev}\1 ({form})", out, count=1)
    return out
