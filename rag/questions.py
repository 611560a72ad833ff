"""What a question asks for: several papers or one, a quantity or a name, and its facets.

Plain rules on the question's wording, checked against both eval sets by
`bench/fit_decision.py` (it prints how often each rule agrees with the gold type).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# Things a researcher asks for in the plural when they want several papers ("works" on its
# own below: after a noun it is a verb, "What model works best ...?").
_PLURAL_THINGS = (r"papers|methods|approaches|models|studies|systems|techniques|"
                  r"architectures|designs|frameworks|networks|convnets|cnns|detectors|"
                  r"benchmarks|datasets|variants|schemes|strategies|algorithms|libraries|"
                  r"optimizers|losses|transformers|backbones|encoders|solutions|ideas|"
                  r"families|lines of work|proposals|surveys|reviews")
_AUX = r"(?:does|do|did|is|are|was|were|has|have|had|can|could|should|would|will)"
# Nouns for a work or the thing it proposes ("which paper", "any method", "is there a tool").
_WORK_NOUNS = (r"(?:paper|work|research|study|method|approach|technique|model|architecture|"
               r"system|framework|algorithm|network|tool|library|module|trick|transformer|"
               r"backbone|estimator|paradigm|scheme|design|detector|optimizer|report|survey|"
               r"compiler|runtime|engine|toolkit|pipeline|platform|package|accelerator)")
# "which <up to four words> papers", where the words are not a verb ("Which GPU were the
# consistency models trained on?" asks about one paper) and the first is not a work in the
# singular ("Which approach designs convolutional networks ...?" asks for one).
_MULTI = re.compile(
    rf"\b(?:which|what|any|corpus's|do the|are there|several|different|various|recent)\s+"
    rf"(?!{_WORK_NOUNS}\b)(?:(?!{_AUX}\b)[\w\-/]+\s+){{0,4}}?(?:{_PLURAL_THINGS})\b"
    rf"|^\s*(?:[\w\-/]+\s+){{0,3}}?(?:{_PLURAL_THINGS})\s+(?:that|which|in|for|with|from|on|"
    rf"about|using|to|showing|proposing|reporting|studying|comparing)\b"
    # Works in the plural, then each, differ, compare or both. Not "their": it refers back
    # to one work's own plural ("the pruned transformers: what limits their speed-up?").
    rf"|\b(?:{_PLURAL_THINGS})\b[^?]*\b(?:each|differ|compare|both)\b"
    r"|\bhow do (?:the|these|they|their)\b[^?]*\b(?:differ|compare)\b"
    # A typed query ending in works in the plural ("warmup-stable-decay LR schedule
    # papers"); ways or options asked for ("ways to train networks without backprop?").
    # ("works" at the end may be the verb: "Which optimizer works?").
    r"|\b(?:papers|studies|surveys)\s*[?.]?\s*$"
    r"|^\s*(?:what\s+are\s+(?:the\s+)?|any\s+)?(?:ways|options)\s+(?:to|of|for)\b"
    r"|\boptions\s*\?\s*$"
    # Works asked for by how many or side by side ("two surveys: one on ..., and one
    # covering ...", "Both the X and the Y ..."), or first ("Papers building on ...").
    # (Not "two studies": one paper may run two user studies.)
    r"|\b(?:two|three|four|both)\s+(?:[\w\-/]+\s+){0,2}?(?:papers|works|surveys|reviews)\b"
    r"|^\s*both\s+the\b[^?]*\band\b"
    r"|^\s*(?:papers|works|studies|surveys)\b"
    # "How do hardware-focused papers make ...?": works in the plural as the subject.
    r"|^\s*how\s+(?:do|did|have)\s+(?:[\w\-/]+\s+){0,3}?(?:papers|works|studies|methods|"
    r"approaches)\b"
    r"|\b(?:differ|differences? between|each of)\b"
    r"|\beach\s+(?:paper|work|method|approach|technique|system|framework)\b"
    # "How do A, B and C each handle ...?": several works, each asked about.
    r"|\b(?:do|did|are|were|have)\s[^?]*\band\b[^?]*\beach\b"
    # An order to compare ("Compare the mask mAP of X with its improved version") sets
    # two or more works side by side; "How does X compare with Y?" may ask about one.
    r"|(?:^|[.?!]\s+)(?:please\s+)?(?:compare|contrast)\b"
    # "anything here on X?", "anything in the index that ...": whatever papers there are.
    r"|^\s*anything\s+(?:(?:here|in\s+(?:here|the\s+(?:index|corpus|collection)))\s+)?"
    r"(?:that|which|on|about|for|using|with)\b"
    r"|\b(?:which|what|any|several|different|various|other|recent|related|prior)\s+works\b"
    # "What <things> have been proposed / exist?": several are asked for, whatever they are
    # called ("what normalization fixes have been proposed").
    r"|\b(?:what|which)\s+(?:[\w\-/]+\s+){0,3}?[\w\-/]+s\s+(?:have\s+been|exist\b|are\s+"
    r"(?:there|available))(?:\s+(?:proposed|introduced|developed|suggested))?"
    # Asked of the papers as a body ("what evidence do papers give", "what does the
    # collection say about", "what has been proposed for ...").
    rf"|\b(?:do|did|have|according to)\s+(?:the\s+)?(?:papers|works|studies)\b"
    r"|\bwhat\s+(?:does|do)\s+the\s+(?:collection|corpus|literature|indexed papers)\s+"
    r"(?:say|report|show|find|suggest)\b"
    r"|\bwhat\s+(?:has|have)\s+been\s+(?:proposed|tried|suggested|done)\b",
    re.I)
# Several things asked of one work ("Which three datasets was CBNet evaluated on?", "Which
# frameworks, e.g. vLLM, does the survey introduce?"): the plural is the verb's object, its
# subject one work (not the corpus as a body, "What methods does the corpus hold?"). Only
# at the question's start, but for a count (below).
_OF_ONE_WORK = re.compile(
    rf"^\s*(?:which|what)\s+(?:[\w\-/]+\s+){{0,3}}?(?:{_PLURAL_THINGS})(?:,[^,?]*,)?\s+"
    r"(?:does|is|was|has)\s+(?!(?:the\s+)?(?:corpus|collection|literature|index|indexed)\b)"
    # A count of things that are not publications ("Which two datasets were used to
    # evaluate the ... framework?", "which two student networks were trained?"): details of
    # one work. "Which two papers ...?" still asks for several.
    r"|\b(?:which|what)\s+(?:two|three|four|five|six|\d+)\s+(?:[\w\-/]+\s+){0,3}?"
    rf"(?!(?:papers|studies|surveys|reviews)\b)(?:{_PLURAL_THINGS})\s+{_AUX}\b"
    # Things that are not works, used by one ("Which datasets were used in the framework
    # that ...?", "Which benchmarks are used to evaluate the method?").
    rf"|^\s*(?:which|what)\s+(?:[\w\-/]+\s+){{0,3}}?"
    rf"(?!(?:papers|works|studies|surveys|reviews|methods|approaches)\b)(?:{_PLURAL_THINGS})"
    rf"\s+(?:were|are)\s+[^?]*?\b(?:the|this|that)\s+(?:[\w\-/]+\s+){{0,3}}?"
    rf"{_WORK_NOUNS}\b(?!s)"
    # A count of things that are not works, opening the question ("How many member networks
    # are in each ensemble ...?"): a detail of one work, whatever "each" follows, unless
    # works are counted apart ("... do A and B each ...", "... does each paper ...").
    rf"|^\s*how\s+many\s+(?:[\w\-/]+\s+){{0,3}}?"
    rf"(?!(?:papers|works|studies|surveys|reviews|methods|approaches)\b)(?:{_PLURAL_THINGS})\b"
    rf"(?![^?]*\band\b[^?]*\beach\b)(?![^?]*\beach\s+{_WORK_NOUNS}\b)",
    re.I)
# Two versions of a work named apart ("the second version ... over the first version",
# "v1 and v2"): each version is its own paper.
_VERSION = re.compile(r"\b(?:v\d+|version\s*\d+|(?:first|second|third|original|earlier|"
                      r"previous|later|newer|improved|updated)\s+version)\b", re.I)
# Two or more works named as the subject, joined by "and": "What latency gains do DeepSpeed
# Inference and DeepSpeed-MoE report?", "ElasticViT and ShiftNAS both ...". A name here
# opens on a capital and holds an inner capital, two capitals or a digit ("DeepSpeed",
# "ShiftNAS", "T5"), and may run on for two more capitalised words ("DeepSpeed Inference");
# case matters for names, so only the verbs ignore it. Written after reading probe26's
# misses; it changes no question of the fit sets (docs/quality-history.md, session 48). The
# two capitals may be its first two ("GPipe and GNNPipe": fixed after reading probe28's
# misses; no question of the fit sets or probe23-27 changes).
_NAME_WORD = r"(?=[\w\-./]*(?:[a-z][A-Z]|[A-Z]{2}|\d))[A-Z][\w\-./]*"
_NAMED = rf"{_NAME_WORD}(?:\s+[A-Z][\w\-./]*){{0,2}}"
_NAMED_WORKS = re.compile(
    rf"\b(?i:do|did|have|had|are|were)\s+(?:the\s+)?{_NAMED}(?:,\s+{_NAMED})*,?\s+and\s+"
    rf"(?:the\s+)?{_NAMED}(?!\S)"
    rf"|(?<![\w\-]){_NAMED}(?:,\s+{_NAMED})*,?\s+and\s+{_NAMED}\s+(?i:both)\b")
# A question asking which work it is: "Which paper sorts ...", "Is there a tool that ...",
# "I recall a generative-flow paper that ...", "method that sets ...". The work is the
# subject: no auxiliary follows the noun ("Which model does X use?" asks a detail of X), nor
# the noun phrase it ends ("Which base backbone network does X build on?"), nor comes before
# it ("Which model does the report recommend?" too).
_IDENTITY = re.compile(
    rf"^\s*(?:which|what(?:'s| is| was) the|any|is there(?: an?| any)?|are there(?: any)?|"
    rf"i (?:remember|recall)(?: an?| the)?|(?:i'm |i am )?looking for(?: an?| the)?)\s+"
    rf"(?:(?!{_AUX}\b)[\w\-/+']+\s+){{0,3}}?{_WORK_NOUNS}s?\b"
    rf"(?!\s+(?:(?!(?:that|which|who)\b)[\w\-/+]+\s+)?{_AUX}\b)"
    # Not after a preposition: "For the scheme that ..., how much faster is it?" asks a detail.
    rf"|^\s*(?!(?:in|for|with|on|from|of|at|by|to|about|using|under)\b)"
    rf"(?:[\w\-/+]+\s+){{0,3}}?{_WORK_NOUNS}s?\s+(?:that|which|where|whose|showing|"
    rf"proposing)\b"
    # Described first, then asked for its name: "..., what's it called?", "Which paper was
    # that?", "... - which paper?", "Which one?"
    r"|\bwhat(?:'s|\s+is|\s+was|\s+are)\s+(?:it|this|that|they)\s+called\b"
    rf"|\b(?:which|what)\s+(?:{_WORK_NOUNS}|one)(?:\s+(?:is|was)\s+(?:it|this|that))?\s*\?\s*$"
    r"|\bwhat(?:'s|\s+is)\s+its\s+name\b", re.I)
# A question asking for one work, by a singular noun near its start ("Which work improves
# ... in both dimensions?", "Is there a tool that ..."): not a multi-paper question, whatever
# plural or "both" comes later.
_ONE_WORK = re.compile(
    rf"^\s*(?:which|what(?:'s| is| was) the|is there an?|i (?:remember|recall) an?)\s+"
    rf"(?:(?!(?:{_PLURAL_THINGS})\b)[\w\-/+]+\s+){{0,2}}?{_WORK_NOUNS}\b"
    # Or opens on the one work it asks about: "In the study of ..., how many ...?"
    rf"|^\s*(?:in|for|from)\s+the\s+(?:[\w\-/+]+\s+){{0,4}}?{_WORK_NOUNS}\b", re.I)
# The part of a question that names what is asked: "what <ImageNet top-1 accuracy> does ...",
# "how many <GPUs>, ...", "...: <accuracy and params>?", "<WikiText-103 perplexity> of the ...".
_WH = re.compile(r"\b(?:what(?:'s| is| are)?|which|how|by how)\s+(.*?)(?=\s+" + _AUX
                 + r"\b|[,?;]|$)", re.I)
_WHAT_COPULA = r"what(?:'s|\s+is|\s+are|\s+was|\s+were)\s+"
_DETERMINER = r"(?:the|a|an|its|their)\b"
_WHAT_IS = re.compile(rf"\s*{_WHAT_COPULA}{_DETERMINER}", re.I)
_TRAILING_PRONOUN = re.compile(r"\s+(?:it|they|them|this|these|those)$", re.I)
_DIRECT = re.compile(r"\s+" + _AUX + r"\b", re.I)
_HEAD_OF = re.compile(r"\s*(.*?)\s+(?:of|for|in|on|from)\s+(?:the|a|an|its)\b", re.I)
# "What is YOLACT and how fast ...?" asks what a named thing is, not which thing it is
# ("What is that framework called?" does ask for a name).
_WHAT_IS_NAME = re.compile(rf"{_WHAT_COPULA}(?![^?]*\b(?:called|named)\b)(?!{_DETERMINER})",
                           re.I)
_NAME_OF = re.compile(r"(?:the\s+)?(?:exact\s+|specific\s+)?names?\s+of\b", re.I)
# Words after "how" that ask for an amount without naming it ("how much", "how long").
DEGREE_WORDS = frozenset("much many fast large big long small well deep often far".split())
# Words for a paper itself ("which paper ...", "any work ..."), plural-folded: they name no
# detail an abstract could state.
PAPER_WORDS = frozenset("paper work method approach study model".split())
# An amount, a score, a size, a speed: a stating sentence must carry a number.
_QUANTITY = re.compile(
    rf"^(?:{'|'.join(sorted(DEGREE_WORDS))})\b|\b(?:accuracy|top-[15]|"
    r"fid|score|perplexity|speed-?ups?|throughput|latency|sizes?|number|rate|ratio|percentage|"
    r"error|m?ap|bleu|wer|cer|eer|f1|auc|auroc|m?iou|dice|ppl|cider|rouge(?:-\w+)?|meteor|"
    r"pass@\d+|psnr|ssim|mae|r?mse|f-(?:measure|score)|fps|speed|"
    r"precision|recall|ndcg|gain|improvement|reduction|memory|cost|"
    r"compute|flops|params?|parameters|faster|slower|smaller|larger|higher|lower|"
    r"bits?|budget|steps|values?|factors?|fractions?|shares?|exponents?|coefficients?)\b"
    # Not a compound's part: "low-rank", "sequence-length filters" name no number.
    r"|(?<![\w-])(?:lengths?|dimensions?|ranks?)(?![\w-])", re.I)
# What a thing is asked in place of names no ask: "what does the surrogate predict instead
# of validation error?" asks for a thing, not an error.
_REPLACED = re.compile(r"\b(?:instead\s+of|rather\s+than|in\s+place\s+of)\b.*", re.I)
# Words that describe the asked thing, not ask: a relative clause after it ("statistic
# that predicts the largest useful batch size" asks for a statistic) and, after "which" or
# "what", the measure it is picked by ("which data source gave the best accuracy" asks for
# a data source). "What is the highest accuracy" and "which batch size works best" still
# ask for a number: a verb and "the" must come between the thing and the measure.
_DESCRIBED = re.compile(r"(?<=\S)\s+(?:that|which|who|whose|where)\s.*", re.I | re.S)
_PICKED_BY = re.compile(r"(?<=\S)\s+(?!the\b)[\w\-]+\s+the\s+(?:best|highest|lowest|largest|"
                        r"smallest|most|fewest|least|strongest|greatest|top)\b.*", re.I | re.S)


def asked_head(ask: str) -> str:
    """The words naming what is asked without a clause describing it ("the dataset <that
    F5-TTS is trained on>")."""
    return _DESCRIBED.sub("", ask)


def _asks_quantity(ask: str, wh: str = "") -> bool:
    """Whether the words naming what is asked ask for an amount. `wh` is the word before
    them: after "how" they start with a verb ("how do the papers that ... compare in
    speed"), so a clause is not cut off; after "which" or "what", a measure the thing is
    picked by is left out."""
    wh = wh.lower().removesuffix("'s")
    if wh not in ("how", "by"):
        ask = asked_head(ask)
    if wh in ("which", "what"):
        ask = _PICKED_BY.sub("", ask)
    return bool(_QUANTITY.search(ask))


_HOW_MANY = re.compile(r"(?<=\band\s)how\s+(?:many|much)\s+[\w\-]+", re.I)
# The later part of a multi-paper question asking what each paper reports ("..., and what
# precisions do they use?", "...; how does each schedule the shrinking?").
_EACH = re.compile(r"(?:[,;]\s*(?:and\s+)?|\band\s+)((?:what|which|how)\b[^?;]*)", re.I)
# Where a question lists facets it wants covered ("up to more FLOPs versus down to tiny").
_FACET_SPLIT = re.compile(r"\s+(?:versus|vs\.?|compared (?:to|with)|as opposed to)\s+|;\s*", re.I)
# Works told apart one by one ("one that improves ... and one that focuses on ...", "one
# aligning ..., one adding ..."): each is a facet, up to a dash (or the end).
_ONE_BY_ONE = re.compile(r"(?:^|[,;:\u2013\u2014]\s*|\s-\s+|\band\s+)one\s+"
                         r"(?=(?:that|which|who|on|for|in|about|\w+ing)\b)", re.I)
_FACET_END = re.compile(r"\s[-\u2013\u2014]\s")


@dataclass(frozen=True)
class QuestionKind:
    """How a question should be answered."""

    multi: bool  # asks for several papers: one line per paper
    identity: bool  # asks which work it is: the answer is the paper, never "not stated"
    # Asks for a number, in its main ask or another part ("..., and what FID?"): a stating
    # sentence must carry one.
    wants_number: bool
    ask: str  # the words naming what is asked ("ImageNet top-1 accuracy")
    asked: str  # the same as a clause for replies ("what ImageNet top-1 accuracy"), or ""
    facets: tuple[str, ...]  # parts searched on their own for multi-paper questions
    # What a multi-paper question asks of each paper ("what precisions do they use"), or "".
    each: str = ""
    # A field of the paper's record asked for, "authors" or "year", which an abstract never
    # states but a library's record may hold ("Who wrote ...?", "When was ... published?").
    record: str = ""
    # The words of another part asking for a number when the main ask does not ("which
    # dataset, and <how many images>?"), or "".
    number_ask: str = ""

    @property
    def asks_name(self) -> bool:
        """Its main ask is which thing by a noun ("which vision encoder", "what optimizer"),
        whatever another part asks ("..., and how many TPUs?"): a sentence stating it names
        one the question does not. "What is the name of the chip ...?" asks one too."""
        return ((self.asked.lower().startswith(("which ", "what "))
                 and not _WHAT_IS_NAME.match(self.asked)
                 and not _asks_quantity(self.ask, self.asked.split()[0]))
                or bool(_NAME_OF.match(self.asked)))

    @property
    def wants_name(self) -> bool:
        """Asks which thing by a noun, and no part asks for a number."""
        return self.asks_name and not self.wants_number


# Questions about a paper's record, not its abstract.
_RECORD = {
    # "authors of" asks for them only as what is asked ("List the authors of X", "authors
    # of X?"), not inside a question on something else ("which engine did the authors of
    # X build on?").
    "authors": re.compile(r"\b(?:who\s+(?:wrote|authored|are\s+the\s+authors|were\s+the\s+"
                          r"authors|is\s+the\s+author)|written\s+by\s+whom)\b"
                          r"|(?:^\s*|\b(?:what|which|list|name|give|tell)\s+(?:me\s+)?"
                          r"(?:are\s+|were\s+)?)(?:the\s+)?(?:names?\s+of\s+the\s+)?"
                          r"authors?\s+of\b", re.I),
    "year": re.compile(r"\b(?:(?:what|which)\s+year|when\s+(?:was|were)\b[^?]*\b(?:published|"
                       r"released|written|posted|introduced|proposed)|publication\s+(?:year|"
                       r"date))\b", re.I),
}


def record_field(question: str) -> str:
    """The record field a question asks for ("authors", "year"), or ""."""
    return next((name for name, pattern in _RECORD.items() if pattern.search(question)), "")


def facets(question: str) -> tuple[str, ...]:
    """The question's listed parts, when it names two or more (else empty)."""
    ones = _ONE_BY_ONE.split(question)[1:]
    if len(ones) >= 2:
        return tuple(_FACET_END.split(p, 1)[0].strip(" ,?") for p in ones)
    parts = [p.strip(" ,?") for p in _FACET_SPLIT.split(question)]
    parts = [p for p in parts if len(p.split()) >= 2]
    return tuple(parts) if len(parts) >= 2 else ()


def ask_part(question: str) -> tuple[str, str]:
    """The words that name what the question asks for (the whole question if none stand
    out), and the same as a clause a reply can use ("how many GPUs"; "" if none)."""
    # A direct question ("how much accuracy does it keep") before an embedded clause
    # ("the approach that measures how well data fills the space, ...").
    found = [m for m in _WH.finditer(question) if m.group(1).strip()]
    m = next((m for m in found if _DIRECT.match(question, m.end())), found[0] if found else None)
    if m:
        ask = m.group(1).strip()
        # "What is the dataset ... it" reads in a reply as "the dataset ...".
        clause = ask if _WHAT_IS.match(m.group(0)) else m.group(0).strip(" ,;?")
        clause = _TRAILING_PRONOUN.sub("", clause)
        return ask, clause[0].lower() + clause[1:]
    if ":" in question:
        ask = question.rsplit(":", 1)[1].strip(" ?")
        return ask, f"the {ask}"
    m = _HEAD_OF.match(question)
    return (m.group(1), f"the {m.group(1)}") if m else (question, "")


def classify(question: str) -> QuestionKind:
    """The kind of answer a question wants, from its wording alone."""
    multi = ((bool(_MULTI.search(question)) and not _ONE_WORK.match(question)
              and not _OF_ONE_WORK.search(question))
             or len({v.lower() for v in _VERSION.findall(question)}) >= 2
             or bool(_NAMED_WORKS.search(question)))
    ask, asked = ask_part(question)
    numbers = [m.group(1) for m in _WH.finditer(question)
               if _asks_quantity(_REPLACED.sub("", m.group(1)), m.group(0).split()[0])]
    # "how many" inside the main ask ("which corpus and how many tokens ...?") asks one too.
    numbers += [m.group(0) for m in _HOW_MANY.finditer(ask)]
    main = _asks_quantity(ask, asked.split()[0] if asked else "")
    wants_number = bool(main or numbers)
    each = [m.group(1).strip() for m in _EACH.finditer(question)] if multi else []
    return QuestionKind(multi, bool(_IDENTITY.search(question)), wants_number, ask, asked,
                        facets(question) if multi else (), each[-1] if each else "",
                        record_field(question),
                        "" if main or not numbers else numbers[0])
