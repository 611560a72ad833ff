"""Score predictions against a gold question set, with the metrics of shared/eval/score.py.

Gold lines: {"id", "type": single|which-paper|multi|unanswerable|not-stated, "question",
"gold_titles", "answer_keywords": [[alternative, ...], ...]}. Predictions are
`Answer.to_prediction` dicts. Titles and keywords are compared as score.py does.
"not-stated" questions ask about a paper in the index for a detail its abstract does not
give: the right answer is an abstention (scored as for unanswerable questions), and their
retrieval recall of that paper is reported too.
"""
from __future__ import annotations

import re
import unicodedata

TYPES = ("single", "which-paper", "multi", "unanswerable", "not-stated")
UNANSWERABLE = ("unanswerable", "not-stated")
METRICS = ("recall@5", "recall@10", "mrr", "citation_recall", "citation_precision",
           "keyword_accuracy", "abstention_accuracy", "false_abstention_rate")
_REFUSALS = ("don't know", "do not know", "dont know", "not in the", "cannot find",
             "can't find", "could not find", "couldn't find", "unable to find",
             "no information", "not mentioned", "not covered", "not contain",
             "doesn't contain", "does not contain", "no relevant", "not enough information",
             "insufficient information", "cannot answer", "can't answer", "unable to answer",
             "no paper", "none of the papers", "not addressed", "not discussed", "no mention",
             "not found in")


def _norm_title(t) -> str:
    t = t.get("title", "") if isinstance(t, dict) else str(t or "")
    t = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", t).casefold()).strip()
    edge = lambda ch: unicodedata.category(ch)[0] in "PSZ" or ch.isspace()  # noqa: E731
    while t and edge(t[0]):
        t = t[1:]
    while t and edge(t[-1]):
        t = t[:-1]
    return t


def _norm_text(s: str) -> str:
    s = unicodedata.normalize("NFKC", s or "").casefold().replace("\\", "")
    return re.sub(r"\s+", " ", s.replace("\u2019", "'").replace("\u2018", "'")).strip()


def _uniq(titles) -> list[str]:
    out: list[str] = []
    for t in titles or []:
        n = _norm_title(t)
        if n and n not in out:
            out.append(n)
    return out


def is_abstention(pred: dict) -> bool:
    """Abstained explicitly, or cited nothing and used a refusal phrase."""
    if pred.get("abstained") is True:
        return True
    if _uniq(pred.get("citations")):
        return False
    return any(p in _norm_text(pred.get("answer", "")) for p in _REFUSALS)


def _keyword_hit(alternatives, answer: str) -> bool:
    squashed = re.sub(r"\s+", "", answer)
    return any((a := _norm_text(alt)) and (a in answer or re.sub(r"\s+", "", a) in squashed)
               for alt in alternatives)


def _recall(r: dict, gold: dict, pred: dict) -> set[str]:
    """Fill recall@5 and recall@10 of the gold titles; returns the normalised gold titles."""
    titles = {_norm_title(t) for t in gold["gold_titles"]}
    retrieved = _uniq(pred.get("retrieved"))
    for k in (5, 10):
        r[f"recall@{k}"] = len(titles & set(retrieved[:k])) / len(titles)
    return titles


def score_one(gold: dict, pred: dict | None) -> dict:
    """Metric values for one question; None where a metric does not apply."""
    r = dict.fromkeys(METRICS)
    if gold["type"] in UNANSWERABLE:
        r["abstention_accuracy"] = float(pred is not None and is_abstention(pred))
        if gold["type"] == "not-stated" and pred is not None:
            _recall(r, gold, pred)
        return r
    if pred is None:
        return {**{m: 0.0 for m in METRICS[:6]}, "abstention_accuracy": None,
                "false_abstention_rate": 1.0}
    titles = _recall(r, gold, pred)
    r["mrr"] = next((1 / i for i, t in enumerate(_uniq(pred.get("retrieved")), 1)
                     if t in titles), 0.0)
    cited = set(_uniq(pred.get("citations")))
    r["citation_recall"] = len(cited & titles) / len(titles)
    r["citation_precision"] = len(cited & titles) / len(cited) if cited else 0.0
    groups = gold.get("answer_keywords") or []
    answer = _norm_text(pred.get("answer", ""))
    r["keyword_accuracy"] = (sum(_keyword_hit(g, answer) for g in groups) / len(groups)
                             if groups else None)
    r["false_abstention_rate"] = float(is_abstention(pred))
    return r


def _mean(rows: list[dict]) -> dict:
    out = {"n": len(rows)}
    for m in METRICS:
        vals = [r[m] for r in rows if r[m] is not None]
        out[m] = round(sum(vals) / len(vals), 4) if vals else None
    return out


def evaluate(gold: list[dict], preds: list[dict]) -> dict:
    """Overall, answerable-only and per-type means of every metric."""
    by_id = {str(p.get("id")): p for p in preds}
    scored = [(g, score_one(g, by_id.get(str(g["id"])))) for g in gold]
    result = {"overall": _mean([r for _, r in scored]),
              "answerable": _mean([r for g, r in scored if g["type"] not in UNANSWERABLE])}
    for t in TYPES:
        rows = [r for g, r in scored if g["type"] == t]
        if rows:
            result[t] = _mean(rows)
    return result


def format_table(result: dict) -> str:
    """The metrics as a fixed-width table, one row per group."""
    cols = [("R@5", "recall@5"), ("R@10", "recall@10"), ("MRR", "mrr"),
            ("CitR", "citation_recall"), ("CitP", "citation_precision"),
            ("KwAcc", "keyword_accuracy"), ("AbstAcc", "abstention_accuracy"),
            ("FalseAbst", "false_abstention_rate")]
    lines = [f"{'type':<13}{'n':>4} " + " ".join(f"{c:>9}" for c, _ in cols)]
    lines.append("-" * len(lines[0]))
    for name, row in result.items():
        cells = " ".join(f"{'-' if row[k] is None else format(row[k], '.3f'):>9}" for _, k in cols)
        lines.append(f"{name:<13}{row['n']:>4} {cells}")
    return "\n".join(lines)
