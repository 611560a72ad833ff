"""Whether to answer, and from which papers: small calibrated decisions over cheap signals.

Every signal is measured per question without a model call: how close the best chunk is,
how far ahead the top paper is, how much of the question's vocabulary the top paper
holds, whether dense and keyword search agree, how much of the question the corpus has
never seen, whether the identifiers it names ("YOLOv7", "512x512") are in the top paper or
in any paper, whether any sentence carries the kind of fact asked for (a number for "how
many") and whether such a value stands next to the words asked ("1024 GPUs"), and how much
of what is asked the top paper never mentions. Words are matched by
their stems.
Three logistic regressions, fitted offline by `bench/fit_decision.py` and stored as plain
numbers in the config (`decision.*`), turn them into probabilities:

- `covered`: the index holds a paper on the question's topic (else: abstain);
- `stated`: the top paper's abstract states the asked-for fact (else: "not stated");
- `paper`: a retrieved paper answers the question (it is cited).

Local mode decides covered and stated again with `covered_yes` and `stated_yes`, which also
weigh the local model's graded yes (`model_yes`, rag/generation.py): one prompt evaluation
that the answer then reuses.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

from rag.abbreviations import in_question
from rag.config import DecisionSettings, LogisticSettings
from rag.evidence import (
    TermWeights,
    coverage,
    given_values,
    paper_sentences,
    rank_sentences,
    stem_overlap,
    stems,
    unversioned,
    values,
)
from rag.questions import DEGREE_WORDS, PAPER_WORDS, QuestionKind, asked_head
from rag.text import keyword_tokens
from rag.types import Paper, Source

QUESTION_SIGNALS = ("dense", "margin", "coverage", "match", "keyword", "agree", "unseen",
                    "missing_ids", "unseen_ids", "multi", "quantity", "ask_match",
                    "quantity_ask_match", "ask_unmatched", "ask_missing", "ask_near",
                    "kind_unmatched", "keyword_margin", "count_unstated", "length")
PAPER_SIGNALS = ("dense", "dense_gap", "coverage", "match", "match_ratio", "keyword", "rank",
                 "multi")
# Names a question gives: tokens with a digit or a capital after the first character
# ("YOLOv7", "512x512", "GPT-4", "AdamW", "Lion", "LibriSpeech"); a sentence-initial word
# counts only with a digit or an inner capital.
_NAME = re.compile(r"[\w\-./*]*(?:\d|[A-Z])[\w\-./*]*")  # wherever it stands
_IDENT = re.compile(r"(?<![.?!]\s)(?<!^)\b" + _NAME.pattern)
_FIRST_IDENT = re.compile(r"^\s*([\w\-./*]*(?:\d|(?<=\w)[A-Z])[\w\-./*]*)")
# How many words either side of a value `ask_near` reads for what the value is of.
ASK_NEAR_WINDOW = 5
# The same for `kind_unmatched` (a stated signal, and the kind check when that is on):
# wider. Chosen when it decided on its own: of 3, 5 and 8 words, 8 refused no single-paper
# question of the fit sets (bench/fit_sets.py).
KIND_CHECK_WINDOW = 8
# Distinct content words up to which a question counts as short (the `length` signal; 6
# beat 10 and 14 held out on the 1,136).
SHORT_QUESTION = 6


def probability(model: LogisticSettings, signals: dict[str, float]) -> float:
    """The logistic regression's probability for these signals."""
    z = model.bias + sum(w * signals.get(name, 0.0) for name, w in model.weights.items())
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def _paper_tokens(paper: Paper) -> set[str]:
    return set(keyword_tokens(f"{paper.title} {paper.abstract}"))


def _identifier_matches(question: str) -> list[str]:
    first = _FIRST_IDENT.match(question)
    return [m.group(0) for m in _IDENT.finditer(question)] + ([first.group(1)] if first else [])


def identifiers(question: str) -> set[str]:
    """The names a question gives ("YOLACT", "DiT-XL/2", "512x512"), as written."""
    return {m.strip("./*-") for m in _identifier_matches(question)} - {""}


def _is_name_like(part: str) -> bool:
    """A part of a compound that names a thing: a digit or an inner capital ("GRU", "T5",
    "BatchNorm"), not a modifier ("style", "based", "Judge") or a value ("50", "1K")."""
    return (len(part) > 1 and not part[0].isdigit()
            and any(c.isdigit() or c.isupper() for c in part[1:]))


def _identifier_tokens(question: str) -> set[str]:
    """The keyword tokens of the names a question gives. A compound counts by its name-like
    parts ("GRU-style" is "gru", "Pre-LN" is "ln", "YOLOv8-n" is "yolov8"; else its first),
    and values count not at all ("640px", "65B", "1M-60M"): a corpus writes a work's name,
    not every compound or size a question builds with it."""
    out = set()
    for m in _identifier_matches(question):
        for piece in m.split("/"):
            parts = [p for p in piece.strip(".*-").split("-") if p]
            if not parts or parts[0][0].isdigit():
                continue
            if len(parts) > 1:
                parts = [p for p in parts if _is_name_like(p)] or parts[:1]
            out.update(t for p in parts for t in keyword_tokens(p)
                       if len(t) > 1 and not t[0].isdigit())
    return out


def _plural_forms(token: str) -> set[str]:
    """A name token with and without a plural "s": "LLM" is written "LLMs" too."""
    return {token, token + "s", token.removesuffix("s")}


def _spells(token: str, text: str) -> bool:
    """Whether an acronym ("asr", "llms") is spelled by the initials of a run of the text's
    words ("automatic speech recognition"): an abstract may write a name out in full."""
    token = token.removesuffix("s") if len(token) > 3 else token
    if not (2 <= len(token) <= 5 and token.isalpha()):
        return False
    initials = "".join(w[0] for w in re.findall(r"[A-Za-z]+", text)).lower()
    return token in initials


def missing_identifiers(question: str, paper: Paper, weights: TermWeights) -> float:
    """IDF share of the question's identifiers ("YOLOv7", "ASR") the paper lacks, in any
    plural, with a version, or spelled out."""
    ids = _identifier_tokens(question)
    total = sum(weights.idf(t) for t in ids)
    have = _paper_tokens(paper)
    have |= {unversioned(t) for t in have}  # "MoCo" is in "MoCov2"
    text = f"{paper.title} {paper.abstract}"
    missing = {t for t in ids if not (_plural_forms(t) & have) and not _spells(t, text)}
    return sum(weights.idf(t) for t in missing) / total if total else 0.0


# A name a question compares against ("how much faster than EfficientNet", "versus YOLOv4")
# is not the paper it asks about.
_COMPARED = re.compile(r"\b(?:than|over|versus|vs\.?|against|compared (?:to|with)|relative to|"
                       r"outperform\w*|beat\w*|surpass\w*)\s+(?=((?:[\w\-./]+\s+){0,2}"
                       r"[\w\-./]+))", re.I)


def subject_names(question: str) -> set[str]:
    """The names a question gives, but those it compares against."""
    compared = _COMPARED.findall(question)
    return {n for n in identifiers(question) if not any(
        re.search(rf"(?<![\w\-]){re.escape(n)}(?![\w\-])", c) for c in compared)}


def _work_names(question: str) -> dict[str, set[str]]:
    """The works a question asks about, as written, with their keyword tokens: the
    name-like parts of its subject names in mixed case or with a digit ("YOLOv7", "DINOv2",
    "RegNets"), not acronyms ("LLM", "SR") nor abbreviations of three letters ("IoU",
    "mAP"), which an abstract may spell out, nor values ("512x512", "x4")."""
    out = {}
    for name in subject_names(question):
        for part in re.split(r"[-/]", name):
            bare = part.removesuffix("s")
            if (_is_name_like(part) and not bare.isupper()
                    and not (len(bare) <= 3 and bare.isalpha())
                    and not re.fullmatch(r"[xX]\d+(?:\.\d+)?", part)):
                out[part] = {t for t in keyword_tokens(part) if len(t) > 1}
    return out


def unwritten_names(question: str, text: str, papers: list[Paper]) -> list[str]:
    """The works the question asks about (as it writes them) that the text names and none
    of the papers does: an answer on "YOLOv7" citing only a paper that never names it ties
    the question's work to the wrong paper."""
    have = set().union(*(_paper_tokens(p) for p in papers))
    written = set(keyword_tokens(text))
    return sorted(name for name, tokens in _work_names(question).items()
                  if any(_plural_forms(t) & written and not _plural_forms(t) & have
                         for t in tokens))


# Asked which device ("on which GPU", "what hardware"), a name answers only if it is one of a
# device: common hardware names, not fitted. "a single GPU" or "Triton" (a language) does
# not say which GPU. A model code ("A100", "T4") stands alone or after a count ("8xA100"),
# not inside a word ("GPT4") or a model's size ("ViT-B16"); the product names may follow
# a word run together by PDF extraction ("4timesRTX 3090").
_DEVICE_ASK = re.compile(r"\b(?:gpus?|hardware|accelerators?|devices?|chips?|processors?)\b",
                         re.I)
_DEVICE_NAME = re.compile(r"(?:(?<![A-Za-wyz0-9/-])(?:[ABHVPLK]\d{2,4}|T4|[GB]H200|MI\d{3}X?)"
                          r"|RTX|GTX|Titan|Quadro|Tesla|TPUs?|TPUv\d|Jetson|Orin|Raspberry|"
                          r"Snapdragon|Xeon|EPYC|Ryzen|Gaudi|Ascend|FPGAs?|iPhone|Cerebras|"
                          r"IPUs?)s?\b")


def asks_device(kind: QuestionKind) -> bool:
    """Whether the question asks which device ("Which GPU model ...?")."""
    return kind.asks_name and bool(_DEVICE_ASK.search(kind.ask))


def names_device(text: str) -> bool:
    """Whether the text names a device ("A100", "RTX 3090", "TPU v3")."""
    return bool(_DEVICE_NAME.search(text))


def _name_tokens(names) -> set[str]:
    return {t for name in names for t in keyword_tokens(name) if t[0].isalpha()}


_ITEM = r"[a-z][\w\-]*"


def lists_asked(text: str, question: str, ask: str) -> bool:
    """Whether the text lists two or more things of the asked kind that the question does
    not give, by the ask's last noun: "trend, seasonal and residual components" or
    "components such as trend and season" answer "which components ...?", where no name
    does."""
    words = keyword_tokens(ask)
    if not words:
        return False
    head = rf"{re.escape(next(iter(stems(words[-1]))))}\w*"
    known = set(keyword_tokens(question))
    before = rf"((?:{_ITEM},\s+)*{_ITEM},?\s+(?:and|or)\s+{_ITEM})\s+{head}\b"
    after = rf"\b{head}\s*,?\s+(?:such\s+as|including|like|namely|e\.g\.,?|:)\s+([^.;]+)"
    return any(set(keyword_tokens(m.group(1))) - known
               for pattern in (before, after) for m in re.finditer(pattern, text.lower()))


def names_given(text: str, question: str, papers: list[Paper], device: bool = False,
                ask: str = "") -> bool:
    """Whether the text writes a name ("A100", "ViT-L/14", "Aaren"; not a value, "300M")
    that the question does not (in any plural: "96 GPUs" names nothing asked "which GPU"),
    nor spells by its words' initials ("VLMs" for "vision-language model"), and that one
    of the papers writes as a name (not only to open a sentence) too: an answer to "which teacher model ...?" that names none ("the
    large teacher models [1]") found no name in its sources. Asked which `device`, the
    name must be one of a device (`names_device`); else a list of the things asked (`ask`,
    `lists_asked`) names them too."""
    if device and not names_device(text):
        return False
    if not device and ask and lists_asked(text, question, ask):
        return True
    known = set(keyword_tokens(question))
    # In the text a name may open a sentence ("Aaren can be trained ..."): the papers'
    # side tells a name from a capitalised word.
    written = {t for t in _name_tokens(m.group(0) for m in _NAME.finditer(text))
               if not _plural_forms(t) & known and not _spells(t, question)}
    return any(written & _name_tokens(identifiers(f"{p.title}. {p.abstract}")) for p in papers)


_LETTERS_NUMBER = re.compile(r"([a-z]{3,})(\d+)")


def _in_no_chunk(token: str, weights: TermWeights) -> bool:
    """Whether no indexed chunk holds the token, in any plural or with a version, nor its
    letters and its number apart ("CoRe50" written "CoRe 50")."""
    apart = _LETTERS_NUMBER.fullmatch(token)
    if apart and all(weights.is_written(p) for p in apart.groups()):
        return False
    return not any(weights.is_written(f) for f in _plural_forms(token))


def unseen_names(question: str, weights: TermWeights) -> list[str]:
    """The works the question asks about (as `_work_names` reads them: "YOLOv7", "MedQA",
    "LightGaussian") that no indexed chunk mentions, in any plural. No answer can cite a
    paper for a work the index never names, so the question is not covered: this decides
    it, in every mode. Measured before it was wired in, on the 656 questions of the fit
    sets: 28 unanswerable or not-stated questions, no answerable one; with probe10 and the
    three-letter rule (written after probe10's "IoU"), 33 of 716, no answerable one."""
    return sorted(name for name, tokens in _work_names(question).items()
                  if tokens and all(_in_no_chunk(t, weights) for t in tokens))


def _novel(token: str, weights: TermWeights) -> bool:
    """Whether no indexed chunk holds the token, a compound counting as held when all its
    parts are ("557m-parameter", "non-moe": the question builds it, an abstract writes its
    parts apart). Held out on the 656 questions, the covered decision reading compounds so
    cost 0.1962 per question, against 0.2076 counting every unseen token."""
    if not weights.is_unseen(token):
        return False
    parts = [p for p in token.split("-") if p]
    return len(parts) < 2 or any(weights.is_unseen(p) for p in parts)


def unseen_identifiers(question: str, weights: TermWeights) -> bool:
    """Whether a name the question gives ("YOLOv8", "GRPO") appears in no indexed chunk: a
    question about a work the corpus never mentions counts against being covered (a signal,
    not a veto: a mistyped name must not refuse on its own)."""
    return any(_in_no_chunk(t, weights) for t in _identifier_tokens(question))


# Names of a measure that abstracts often write another way ("top-1" for "accuracy",
# "speedup" for "1.5x training acceleration"): common ML vocabulary, not fitted; each asked
# word here also asks for its equivalents.
METRIC_EQUIVALENTS = {
    "top-1": "accuracy", "top-5": "accuracy", "params": "parameters", "param": "parameters",
    "speedup": "faster acceleration speeds", "speed-up": "faster acceleration speeds",
    "acceleration": "speedup faster", "faster": "speedup acceleration",
    "flops": "macs", "macs": "flops", "map": "ap", "ap": "map", "wer": "word error rate",
    "ppl": "perplexity", "perplexity": "ppl", "throughput": "fps",
    "memory": "footprint", "footprint": "memory", "sota": "state-of-the-art",
    "size": "parameters", "smaller": "reduction reduces", "larger": "increase increases",
}


def _asked_words(kind: QuestionKind, question: str, drop: frozenset[str]) -> dict[str, str]:
    """The stems (`evidence.stems`) naming what is asked, with their `METRIC_EQUIVALENTS`,
    without those in `drop` (compared as stems); when nothing is left ("How much does X cut
    memory?"), the whole question stands for what is asked."""
    dropped = stems(" ".join(drop))  # as stems: "many" is "mani", "study" is "studi"
    asked = {f: t for f, t in stems(kind.ask).items() if f not in dropped}
    also = " ".join(METRIC_EQUIVALENTS.get(t, "") for t in asked.values())  # tokens are folded
    return ({**asked, **stems(also)} if asked
            else {f: t for f, t in stems(question).items() if f not in dropped})


# Words asking for a change relative to something ("how much faster", "what accuracy
# gain"): a relative value ("by 73%", "2.5x", "three times", "twice") states one without
# the word ("speeds up training by 73%"). Common English, not fitted.
COMPARATIVES = frozenset(stems(
    "faster slower quicker better worse higher lower smaller larger bigger cheaper fewer "
    "improvement improve gain boost reduction reduce saving speedup drop"))
_RELATIVE_VALUE = re.compile(r"\d(?:\.\d+)?\s?(?:%|×|x\b|times\b|-?fold\b)|\b(?:twice|thrice)\b"
                             r"|\b(?:two|three|four|five|six|seven|eight|nine|ten)[\s-]"
                             r"(?:times|fold)\b", re.I)


def _stems_spelled(text: str, asked: str) -> dict[str, str]:
    """The text's stems, plus those of a run of asked words that an acronym of the text
    spells exactly ("real-time factor" for "an inference RTF of 0.15"): an abstract often
    writes a measure only by its acronym. A text writing a relative value also holds the
    asked `COMPARATIVES` (held out on the 1,136, extractive cost per question 0.1791 ->
    0.1742; docs/quality-history.md)."""
    out = stems(text)
    if _RELATIVE_VALUE.search(text):
        out = {**out, **{f: t for f, t in stems(asked).items() if f in COMPARATIVES}}
    acronyms = {a.lower() for a in in_question(text)}
    words = list(re.finditer(r"[^\s\-/]+", asked))
    for n in (2, 3, 4):
        for i in range(len(words) - n + 1):
            run = words[i:i + n]
            if "".join(w.group(0)[0] for w in run).lower() in acronyms:
                out = {**out, **stems(asked[run[0].start():run[-1].end()])}
    return out


def ask_match(kind: QuestionKind, question: str, paper: Paper, weights: TermWeights
              ) -> float:
    """How well the paper's best sentence of the asked-for kind matches what is asked: when
    the main ask is which thing ("which vision encoder", "which dataset, and how many
    images?"), only sentences giving a name the question does not ("a vision-language
    Transformer" does not say which one), and asked which device, only sentences naming
    one (`names_device`), which need not write "GPU"; else when any part asks for a number,
    only sentences writing a value the question does not ("22B" does not answer "the
    22-billion-parameter ViT: how many chips?"). 0 when no sentence carries it."""
    ask = _asked_words(kind, question, DEGREE_WORDS)
    given = given_values(question)
    named = {n.lower() for n in identifiers(question)}

    device = asks_device(kind)
    # A device's name says which device without the word: "on a Titan Xp" answers "which GPU".
    device_words = stems(" ".join(_DEVICE_ASK.findall(kind.ask))) if device else {}

    def carries(text: str) -> bool:
        if device:
            return names_device(text)
        if kind.asks_name:  # a new name, not a value ("22B"), or a list of the asked things
            return bool({n.lower() for n in identifiers(text) if not values(n)} - named
                        ) or lists_asked(text, question, kind.ask)
        return not kind.wants_number or bool(values(text) - given)

    return max((stem_overlap(ask, {**_stems_spelled(text, kind.ask), **device_words}, weights)
                for _, _, text in paper_sentences(paper) if carries(text)), default=0.0)


_HARDWARE = re.compile(rf"{_DEVICE_ASK.pattern}|[cgtn]pus?", re.I)
_LINK = re.compile(r"https?:|www\.|github|\.(?:io|com|org|net)\b", re.I)


def name_near(kind: QuestionKind, question: str, paper: Paper,
              window: int = KIND_CHECK_WINDOW) -> bool:
    """Asked which thing: whether a sentence of the paper writes a name the question does
    not give (nor spells by its initials: "VLMs" for "vision-language models"), or a list
    of the asked things (`lists_asked`), within `window` words of an asked word or holding
    one ("Adam-atan2" for "which Adam variant"). "Experiments on three popular datasets on a
    Raspberry Pi 4" names no dataset: the name is of something else."""
    named = {n.lower() for n in identifiers(question)}
    # What is asked, without a clause on the subject ("the dataset <that F5-TTS is trained
    # on>").
    head = replace(kind, ask=asked_head(kind.ask))
    ask = _asked_words(head, question, DEGREE_WORDS | PAPER_WORDS | {"name", "names"})
    # The paper's title words name the paper, not what it uses ("Mathematical
    # Architecture Design for Deep CNN (DeepMAD)"); hardware and links name no solver or
    # dataset.
    known = set(keyword_tokens(f"{question} {paper.title}"))
    for _, _, text in paper_sentences(paper):
        if lists_asked(text, question, kind.ask):
            return True
        for m in _IDENT.finditer(text):
            name = m.group(0).lower()
            if (values(name) or name in named or _spells(name, question)
                    or _plural_forms(name) & known or names_device(m.group(0))
                    or _HARDWARE.fullmatch(name) or _LINK.search(name)):
                continue
            near = text[:m.start()].split()[-window:] + [name] + text[m.end():].split()[:window]
            if set(ask) & set(stems(" ".join(near))):
                return True
    return False


def ask_near(kind: QuestionKind, question: str, paper: Paper, weights: TermWeights,
             window: int = ASK_NEAR_WINDOW) -> float:
    """Asked for a number: the best share of the asked words within `window` words of a
    value the question does not give ("trained on 1024 A100 GPUs" answers "how many
    GPUs"). A sentence can hold the asked words and a number for something else; this reads
    what the number stands next to. 0 when the question asks for no number. (Read the same
    way, names near the asked words for "which GPU" questions raised extractive mode's
    held-out cost, 0.2001 -> 0.2114, so they are not counted.)"""
    if not kind.wants_number:
        return 0.0
    ask = _asked_words(kind, question, DEGREE_WORDS | PAPER_WORDS)
    given = given_values(question)
    best = 0.0
    for _, _, text in paper_sentences(paper):
        words = text.split()
        for i, word in enumerate(words):
            if values(word) - given:
                near = " ".join(words[max(0, i - window):i + window + 1])
                best = max(best, stem_overlap(ask, _stems_spelled(near, kind.ask), weights))
    return best


# "how many X" / "number of X" in what is asked: the counted thing X, the first plural
# noun within three words (an adjective or a name may stand between). A difference ("how
# many fewer epochs", "how many times faster", "how many F1 points better") is no count:
# it is written as a ratio or a percentage.
_COUNT = re.compile(r"\b(?:how\s+many|number\s+of)\s+((?:[\w\-]+\s+){0,2}?)([a-z][\w\-]*?s)\b"
                    r"(?!\s+(?:better|worse|more|fewer|less|higher|lower|faster|slower)\b)", re.I)
_DIFFERENCE = re.compile(r"\b(?:fewer|more|less|times|points?)\b", re.I)
_KINDS = frozenset("types kinds sorts variants".split())
# How many words may stand between a count's value and the counted thing ("8,192 Ascend
# NPUs", "1024 A100 GPUs").
COUNT_WINDOW = 3


def counted(kind: QuestionKind, question: str) -> list[set[str]]:
    """The things the question asks to count (in the part it asks, `kind.ask` or
    `kind.number_ask`), each as its stems with those of its `METRIC_EQUIVALENTS`: "how
    many GPUs and how many days" -> [{"gpu"}, {"day"}]."""
    asked = f"{kind.ask} {kind.number_ask}"
    out = []
    for m in _COUNT.finditer(question):
        if (re.sub(r"^how\s+", "", m.group(0), flags=re.I) not in asked
                or _DIFFERENCE.search(m.group(1)) or _DIFFERENCE.fullmatch(m.group(2))):
            continue
        words = (m.group(1) + m.group(2)).lower().split()
        # "how many CWE types": the CWEs are counted ("150 CWEs").
        noun = words[-2] if words[-1] in _KINDS and len(words) > 1 else words[-1]
        out.append(set(stems(f"{noun} {METRIC_EQUIVALENTS.get(noun, '')}")))
    return out


def count_unstated(kind: QuestionKind, question: str, paper: Paper) -> float:
    """1.0 when the question asks to count things and, for one of them, no value in the
    paper's title or abstract counts it: a value written within `COUNT_WINDOW` words
    before the thing ("trained on 1024 A100 GPUs" counts GPUs; "on A100 GPUs" and "up to
    2.5x faster on 64 nodes" do not count GPUs). 0.0 otherwise."""
    things = counted(kind, question)
    if not things:
        return 0.0
    given = given_values(question)
    words = f"{paper.title}. {paper.abstract}".split()
    found = set()
    for i, word in enumerate(words):
        if values(word) - given:
            found |= set(stems(" ".join(words[i:i + COUNT_WINDOW + 1])))
    return float(any(not t & found for t in things))


def ask_missing(kind: QuestionKind, question: str, paper: Paper, weights: TermWeights
                ) -> float:
    """IDF share of the asked words found nowhere in the paper's title or abstract ("block
    size", "WikiText-103 perplexity"): a detail the abstract never mentions is not stated.
    Words for a paper itself ("which method ...") name no detail and are left out."""
    ask = _asked_words(kind, question, DEGREE_WORDS | PAPER_WORDS)
    text = f"{paper.title} {paper.abstract}"
    return 1.0 - stem_overlap(ask, _stems_spelled(text, kind.ask), weights)


def best_match(query: str, paper: Paper, weights: TermWeights) -> float:
    """The paper's best sentence-level word overlap with the query."""
    return max((ev.match for ev in rank_sentences(paper, query, weights)), default=0.0)


def _number_part(kind: QuestionKind) -> QuestionKind:
    """The kind as asking what its number part asks ("which dataset, and how many images?"
    asks "many images" a number): each part of the question must be stated."""
    return replace(kind, ask=kind.number_ask) if kind.number_ask else kind


def question_signals(query: str, question: str, sources: list[Source], best_dense: float,
                     weights: TermWeights, kind: QuestionKind) -> dict[str, float]:
    """The covered and stated decisions' inputs; all zeros when nothing was retrieved."""
    if not sources:
        return dict.fromkeys(QUESTION_SIGNALS, 0.0)
    top = sources[0].paper
    q = set(keyword_tokens(query))
    q_idf = sum(weights.idf(t) for t in q) or 1.0
    dense = sorted((s.dense_score for s in sources), reverse=True) + [0.0]
    keyword = sorted((s.keyword_score for s in sources), reverse=True) + [0.0]
    by_dense = max(sources, key=lambda s: s.dense_score)
    by_keyword = max(sources, key=lambda s: s.keyword_score)
    asked = ask_match(kind, question, top, weights)
    return {
        "dense": best_dense,
        "margin": dense[0] - dense[1],
        "coverage": coverage(query, top, weights),
        "match": best_match(query, top, weights),
        "keyword": sources[0].keyword_score / q_idf,
        # A long description ties the dense scores of neighbouring papers; its words still
        # set the described paper apart (held out on the 656, the covered decision weighing
        # it cost 0.1707 per question against 0.1798).
        "keyword_margin": (keyword[0] - keyword[1]) / q_idf,
        "agree": float(by_dense.paper.paper_id == by_keyword.paper.paper_id),
        "unseen": sum(weights.idf(t) for t in q if _novel(t, weights)) / q_idf,
        "missing_ids": missing_identifiers(question, top, weights),
        "unseen_ids": float(unseen_identifiers(question, weights)),
        "multi": float(kind.multi),
        "quantity": float(kind.wants_number),
        "ask_match": asked,
        "quantity_ask_match": asked * kind.wants_number,
        "ask_unmatched": float(asked == 0),
        "ask_missing": ask_missing(kind, question, top, weights),
        "ask_near": ask_near(kind, question, top, weights),
        # Asked a number or a name, no sentence carries one near what is asked (weighed
        # by the stated regressions; `kind_checked` when decision.kind_check is on).
        "kind_unmatched": float(
            ((kind.wants_number or kind.asks_name) and asked == 0)
            or (kind.asks_name and not asks_device(kind)
                and not name_near(kind, question, top))
            or (kind.wants_number and ask_near(_number_part(kind), question, top, weights,
                                               KIND_CHECK_WINDOW) == 0)),
        "count_unstated": count_unstated(kind, question, top),
        # A long description of a real paper shares a smaller part of its words with the
        # abstract than a short question does: the covered decision weighs the shares
        # against how far the question runs past `SHORT_QUESTION` words (held out on the
        # 1,136, cost per question 0.2040 -> 0.1791, which-paper refused 0.044 -> 0.024;
        # docs/quality-history.md). A short question keeps its reading.
        "length": max(0.0, math.log1p(len(set(keyword_tokens(question))))
                      - math.log1p(SHORT_QUESTION)),
    }


def paper_signals(query: str, sources: list[Source], weights: TermWeights,
                  kind: QuestionKind) -> list[dict[str, float]]:
    """The paper decision's inputs, one dict per source, in rank order."""
    if not sources:
        return []
    q_idf = sum(weights.idf(t) for t in set(keyword_tokens(query))) or 1.0
    top_dense = max(s.dense_score for s in sources)
    matches = [best_match(query, s.paper, weights) for s in sources]
    top_match = max(matches) or 1.0
    return [{"dense": s.dense_score, "dense_gap": top_dense - s.dense_score,
             "coverage": coverage(query, s.paper, weights), "match": m,
             "match_ratio": m / top_match, "keyword": s.keyword_score / q_idf,
             "rank": math.log(i + 1), "multi": float(kind.multi)}
            for i, (s, m) in enumerate(zip(sources, matches))]


@dataclass(frozen=True)
class Verdict:
    """What the decision says about one question."""

    covered: float  # P(the index has a paper on the topic)
    stated: float  # P(the top paper states the asked-for fact)
    papers: list[Source]  # the papers to answer from, best first
    # Probabilities near a threshold: a model mode confirms them with its check.
    unsure_covered: bool
    unsure_stated: bool
    signals: dict[str, float] = field(default_factory=dict)  # the decisions' inputs
    unseen: tuple[str, ...] = ()  # works the question names that the index never mentions

    @property
    def abstain(self) -> bool:
        return self.covered < 0.5

    @property
    def not_stated(self) -> bool:
        return not self.abstain and self.stated < 0.5

    @property
    def needs_check(self) -> bool:
        """A model mode asks its check: a probability is near its threshold, and no sure
        one already refuses."""
        sure_refusal = ((self.abstain and not self.unsure_covered)
                        or (self.not_stated and not self.unsure_stated))
        return (self.unsure_covered or self.unsure_stated) and not sure_refusal


def calibrated(p: float, model: LogisticSettings) -> float:
    """Maps the model's threshold to 0.5 (monotone), so every verdict compares with 0.5."""
    t = min(max(model.threshold, 1e-6), 1 - 1e-6)
    return 0.5 * p / t if p < t else 0.5 + 0.5 * (p - t) / (1 - t)


def decide(cfg: DecisionSettings, query: str, question: str, sources: list[Source],
           best_dense: float, weights: TermWeights, kind: QuestionKind) -> Verdict:
    """The verdict for one retrieval: answer, abstain or "not stated", and from which papers."""
    sig = question_signals(query, question, sources, best_dense, weights, kind)
    unseen = tuple(unseen_names(question, weights))
    if unseen:
        return Verdict(0.0, 0.0, sources[:1], False, False, sig, unseen)
    covered = calibrated(probability(cfg.covered, sig), cfg.covered)
    # A multi-paper question, or one asking which work it is, asks for papers: they are
    # named or the topic is not covered; "not stated" does not apply.
    whole = kind.multi or kind.identity
    stated = _stated(cfg.stated, sig, whole)
    return replace(verdict(covered, stated, choose_papers(cfg, query, sources, weights, kind),
                           whole, cfg.grey), signals=sig)


def _stated(model: LogisticSettings, sig: dict[str, float], whole: bool) -> float:
    """The calibrated stated probability: 1 for a question asking for papers (`whole`); 0
    when it asks to count a thing no value in the top paper counts (`count_unstated`), in
    every mode: no model can read a count from an abstract that writes none."""
    if whole:
        return 1.0
    return 0.0 if sig.get("count_unstated") else calibrated(probability(model, sig), model)


def kind_checked(cfg: DecisionSettings, v: Verdict, kind: QuestionKind) -> Verdict:
    """Extractive mode's verdict: with no model to read the abstract, a question about one
    paper whose top paper has no sentence carrying the asked kind of fact
    (`kind_unmatched`) is "not stated" (`decision.kind_check`). Model modes leave it to
    the model, which may know that a "Titan Xp" is a GPU."""
    if cfg.kind_check and not (kind.multi or kind.identity) and v.signals.get("kind_unmatched"):
        return replace(v, stated=0.0, unsure_stated=False)
    return v


def yes_log_odds(p: float) -> float:
    """The model's yes as the `model_yes` signal: its log-odds, kept finite."""
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def yes_signals(signals: dict[str, float], yes: float) -> dict[str, float]:
    """The model's yes as signals: `model_yes`, and the same again where no sentence of the
    top paper carries the asked kind of fact (`model_yes_unmatched`), so the stated decision
    can weigh a yes there differently (held out on the 1,436 at the same cost, single
    refused 0.044 -> 0.036, nothing else moved; docs/quality-history.md)."""
    odds = yes_log_odds(yes)
    return {"model_yes": odds, "model_yes_unmatched": odds * signals.get("kind_unmatched", 0.0)}


def with_model_yes(cfg: DecisionSettings, before: Verdict, yes: float, kind: QuestionKind
                   ) -> Verdict:
    """The verdict again, by the covered and stated decisions that also weigh the local
    model's graded yes (`covered_yes`, `stated_yes`); the papers stay."""
    sig = {**before.signals, **yes_signals(before.signals, yes)}
    covered = calibrated(probability(cfg.covered_yes, sig), cfg.covered_yes)
    whole = kind.multi or kind.identity
    stated = _stated(cfg.stated_yes, sig, whole)
    return replace(verdict(covered, stated, before.papers, whole, cfg.grey), signals=sig)


def verdict(covered: float, stated: float, papers: list[Source], asks_papers: bool,
            grey: float) -> Verdict:
    """The verdict for these calibrated probabilities, with the ones near 0.5 (within `grey`)
    marked for a model mode's check; `asks_papers`: "not stated" does not apply."""
    unsure_covered = abs(covered - 0.5) < grey
    # "Not stated" is only a question when the topic is (or may be) covered.
    unsure_stated = (not asks_papers and abs(stated - 0.5) < grey
                     and (covered >= 0.5 or unsure_covered))
    return Verdict(covered, stated, papers, unsure_covered, unsure_stated)


def choose_papers(cfg: DecisionSettings, query: str, sources: list[Source],
                  weights: TermWeights, kind: QuestionKind) -> list[Source]:
    """The top paper, plus every other retrieved paper the paper decision keeps (at most
    `multi_papers` for a multi-paper question, with its own threshold, `single_papers`
    otherwise)."""
    most = cfg.multi_papers if kind.multi else cfg.single_papers
    model = cfg.paper.model_copy(update={"threshold": cfg.multi_paper_threshold}) \
        if kind.multi else cfg.paper
    sig = paper_signals(query, sources, weights, kind)
    keep = [s for s, x in zip(sources[1:], sig[1:])
            if calibrated(probability(model, x), model) >= 0.5]
    return (sources[:1] + keep)[:most]
