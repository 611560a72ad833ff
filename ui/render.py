"""HTML and Markdown for the chat app: answers with linked [n] markers, the sources panel
(the papers found, as soon as retrieval ends; then the answer's sources with its quotes).

Pure functions of `rag.types` values, so they are testable without a browser. Every piece
of corpus or model text is HTML-escaped before it is placed in markup; corpus text also
goes through `rag.text.as_data`, so only the answerer's own [n] markers become links; and
no server file path reaches the page (`scrub_paths`).
"""
from __future__ import annotations

import html
import re

from rag.text import as_data
from rag.types import Answer, Citation, Paper, Retrieved, Source

# A marker as it stands after _markdown_text escaped its brackets.
_MARKER = re.compile(r"\\\[(\d+)\\\]")
# Markdown punctuation that could turn text into emphasis, code, headings, links or images.
_MD_SPECIAL = re.compile(r"([\\`*_~#|$\[\]!])")
# An absolute file path (POSIX, home-relative or Windows); group 1 is its last part.
_PATH = re.compile(r"(?<![\w.:/\\~-])(?:~[/\\]|[A-Za-z]:[/\\]|/)(?:[^\s/\\'\"`<>|]+[/\\])*"
                   r"([^\s/\\'\"`<>|;,)]+)")

ABSTAINED_NOTE = ("The indexed papers do not answer this question, so no answer is given. "
                  "The closest papers found are listed below.")
EMPTY_PANEL = '<div class="ap-empty">Ask a question: the papers behind the answer appear here.</div>'
WAITING_PANEL = '<div class="ap-empty">Searching the papers&hellip;</div>'


def source_id(turn: int, n: int) -> str:
    """The element id of source [n] of answer number `turn` in the sources panel."""
    return f"src-{turn}-{n}"


def scrub_paths(message: str) -> str:
    """`message` with every absolute file path cut to its last part: "…/index"."""
    return _PATH.sub(lambda m: "\u2026/" + m.group(1), message)


def _markdown_text(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def streaming_markdown(text: str) -> str:
    """Answer text while it streams: escaped, markers left as plain text."""
    return _markdown_text(text) or "&hellip;"


def answer_markdown(answer: Answer, turn: int) -> str:
    """The final answer for the chat: escaped text whose [n] markers link to the sources panel."""
    if answer.abstained:
        return f"_{_markdown_text(answer.text)}_"
    known = {s.n for s in answer.sources}

    def link(m: re.Match) -> str:
        n = int(m.group(1))
        if n not in known:
            return m.group(0)
        return (f'<sup><a class="ap-cite" href="#{source_id(turn, n)}" '
                f'title="Show source {n}">[{n}]</a></sup>')

    return _MARKER.sub(link, _markdown_text(answer.text))


def error_markdown(message: str) -> str:
    """A readable failure line for the chat (never a traceback)."""
    return f"**Could not answer:** {_markdown_text(scrub_paths(message))}"


def highlighted_abstract(abstract: str, spans: list[tuple[int, int]]) -> str:
    """The abstract as HTML with each (start, end) character span wrapped in <mark>."""
    abstract = as_data(abstract)  # same length, so the spans still fit
    out, pos = [], 0
    for start, end in sorted(spans):
        start, end = max(start, pos), min(end, len(abstract))
        if start >= end:
            continue
        out += [html.escape(abstract[pos:start]),
                "<mark>", html.escape(abstract[start:end]), "</mark>"]
        pos = end
    out.append(html.escape(abstract[pos:]))
    return "".join(out)


def _metadata(source: Source) -> str:
    paper = source.paper
    parts = [" ".join(x for x in (listing.source, listing.date) if x) for listing in paper.listings]
    if paper.year:
        parts.append(str(paper.year))
    if paper.authors:
        more = f" et al. ({len(paper.authors)})" if len(paper.authors) > 3 else ""
        parts.append(", ".join(paper.authors[:3]) + more)
    if paper.categories:
        parts.append(" ".join(paper.categories))
    return " &middot; ".join(html.escape(as_data(p)) for p in parts)


def _score_bar(source: Source) -> str:
    width = round(100 * min(max(source.dense_score, 0.0), 1.0))
    return (f'<div class="ap-score"><span class="ap-bar"><span style="width:{width}%"></span>'
            f'</span> similarity {source.dense_score:.2f} &middot; BM25 '
            f'{source.keyword_score:.1f} &middot; fused {source.score:.3f}</div>')


def paper_title(paper: Paper) -> str:
    """The paper's title as HTML, linked to its page (an http(s) URL, its DOI or arXiv page)
    when one is known; the link opens in a new tab and carries no referrer."""
    title = html.escape(as_data(paper.title))
    link = paper.link
    if not link.startswith(("https://", "http://")):
        return title
    return (f'<a class="ap-link" href="{html.escape(link, quote=True)}" target="_blank" '
            f'rel="noopener noreferrer nofollow">{title}</a>')


def source_card(source: Source, citations: list[Citation], turn: int) -> str:
    """One paper of the panel: title, listings, score bar, abstract with quotes marked."""
    spans = [(c.start, c.end) for c in citations]
    return (f'<div class="ap-src" id="{source_id(turn, source.n)}" data-n="{source.n}">'
            f'<div class="ap-title"><span class="ap-n">[{source.n}]</span> '
            f'{paper_title(source.paper)}</div>'
            f'<div class="ap-meta">{_metadata(source)}</div>{_score_bar(source)}'
            f'<p class="ap-abstract">{highlighted_abstract(source.paper.abstract, spans)}</p></div>')


def _answer_body(answer: Answer, turn: int) -> str:
    """The cited papers with their quotes marked, then the others folded away."""
    by_n: dict[int, list[Citation]] = {}
    for c in answer.citations:
        by_n.setdefault(c.n, []).append(c)
    cited = [s for s in answer.sources if s.n in by_n]
    others = [s for s in answer.sources if s.n not in by_n]
    head = (f'<div class="ap-note">{html.escape(ABSTAINED_NOTE)}</div>' if answer.abstained
            else f'<div class="ap-q">Sources for: {html.escape(answer.question)}</div>')
    body = "".join(source_card(s, by_n[s.n], turn) for s in cited)
    if others:
        label = "Closest papers" if answer.abstained else "Also retrieved, not cited"
        body += (f'<details class="ap-more"{" open" if not cited and answer.abstained else ""}>'
                 f'<summary>{label} ({len(others)})</summary>'
                 + "".join(source_card(s, [], turn) for s in others) + "</details>")
    return head + body


def _retrieved_body(retrieved: Retrieved, turn: int) -> str:
    """Every paper found, each with its best sentence marked, while the answer is written."""
    head = f'<div class="ap-q">Papers found for: {html.escape(retrieved.question)}</div>'
    best = retrieved.best
    return head + "".join(source_card(s, [best[s.n]] if s.n in best else [], turn)
                          for s in retrieved.sources)


def _turn_panel(found: Answer | Retrieved, turn: int, current: bool) -> str:
    body = _retrieved_body(found, turn) if isinstance(found, Retrieved) else _answer_body(found, turn)
    css = "ap-turn ap-current" if current else "ap-turn"
    return f'<div class="{css}" data-turn="{turn}">{body}</div>'


def sources_panel(turns: list[tuple[int, Answer | Retrieved]]) -> str:
    """The panel for every turn with sources (an answer's, or the papers found for one still
    being written); only the latest shows until a citation picks another."""
    if not turns:
        return EMPTY_PANEL
    last = turns[-1][0]
    return "".join(_turn_panel(found, turn, turn == last) for turn, found in turns)


def index_status(info: dict) -> str:
    """Markdown line describing the live index (from rag.store.index_info)."""
    emb = info.get("embedder") or {}
    built = str(info.get("built_at", "")).replace("T", " ").replace("+00:00", " UTC")
    return (f"**Index:** {info['papers']} papers &middot; {info['chunks']} chunks &middot; "
            f"embedder {html.escape(scrub_paths(str(emb.get('model', '?'))))} "
            f"({emb.get('dim', '?')}-d) "
            f"&middot; built {html.escape(built)}")


def missing_index_status(message: str, can_build: bool) -> str:
    """Markdown shown in place of the index status when none can be loaded; `can_build`
    says whether the Build button shows (only with sources configured)."""
    hint = ("Press **Build index** to build it from the configured sources." if can_build else
            "No sources are configured for this app: build the index with `askpapers index "
            "build --source PATH`, or set `ASKPAPERS_INDEX__SOURCES` and restart the app.")
    return f"**No usable index.** {_markdown_text(scrub_paths(message))}\n\n{hint}"


def build_failed_status(message: str, status: str) -> str:
    """Markdown for a failed build: its error, then the status of the index still live."""
    return f"**Build failed:** {_markdown_text(scrub_paths(message))}\n\n{status}"


CSS = """
.ap-empty, .ap-note, .ap-q {color: var(--body-text-color-subdued); margin: 4px 0 8px;}
.ap-note {font-weight: 600; color: var(--body-text-color);}
.ap-turn {display: none;} .ap-turn.ap-current {display: block;}
.ap-src {border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 10px;
  margin: 0 0 8px; transition: box-shadow .2s, border-color .2s;}
.ap-src.ap-selected {border-color: var(--color-accent); box-shadow: 0 0 0 2px var(--color-accent-soft);}
.ap-title {font-weight: 600;} .ap-n {color: var(--color-accent);}
.ap-meta, .ap-score {font-size: .85em; color: var(--body-text-color-subdued);}
.ap-bar {display: inline-block; width: 80px; height: 7px; background: var(--border-color-primary);
  border-radius: 4px; vertical-align: middle; overflow: hidden;}
.ap-bar > span {display: block; height: 100%; background: var(--color-accent);}
.ap-abstract {font-size: .9em; line-height: 1.45; margin: 6px 0 0;}
.ap-abstract mark {background: #fde68a; color: inherit; padding: 0 1px;}
.ap-more summary {cursor: pointer; margin: 4px 0 8px;}
#ap-chat a.ap-cite {text-decoration: none; font-weight: 700; color: var(--color-accent);}
.ap-title a.ap-link {color: inherit; text-decoration: underline dotted;}
"""

# Clicking an [n] marker shows that answer's sources and selects paper n in the panel.
CITATION_SCRIPT = """
<script>
document.addEventListener("click", function (ev) {
  const link = ev.target.closest && ev.target.closest("a.ap-cite");
  if (!link) return;
  ev.preventDefault(); ev.stopPropagation();
  const id = link.getAttribute("href").slice(1);
  const card = document.getElementById(id);
  if (!card) return;
  const turn = card.closest(".ap-turn");
  document.querySelectorAll(".ap-turn").forEach(t => t.classList.toggle("ap-current", t === turn));
  document.querySelectorAll(".ap-src.ap-selected").forEach(s => s.classList.remove("ap-selected"));
  const more = card.closest("details"); if (more) more.open = true;
  card.classList.add("ap-selected");
  card.scrollIntoView({behavior: "smooth", block: "nearest"});
}, true);
</script>
"""
