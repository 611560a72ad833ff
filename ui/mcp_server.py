"""askpapers as an MCP server (the official `mcp` SDK): `askpapers mcp` on stdio, and
streamable HTTP at /mcp of `askpapers serve` (behind the same Host/Origin guard and API key).

Tools: search_papers(query, k, filters), ask(question, mode), get_paper(paper_id).
A library error becomes a tool error whose message says what to do; the tools run in
worker threads, so a long answer does not stall the server.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from rag.config import Settings
from rag.errors import AskPapersError
from ui.api import citations_json, model_modes
from ui.render import scrub_paths

log = logging.getLogger(__name__)

INSTRUCTIONS = ("Answers questions from an index of research-paper abstracts with checked "
                "citations. search_papers finds papers; ask answers with [n] markers whose "
                "citations name the paper and quote its sentence; get_paper reads one paper.")


def _call(fn, *args, **kwargs):
    """fn(...), its library errors turned into tool errors (no server path in them)."""
    try:
        return fn(*args, **kwargs)
    except AskPapersError as e:
        raise ToolError(scrub_paths(str(e))) from None


def make_server(settings: Settings) -> MCPServer:
    """The MCP server for these settings, with its three tools."""
    server = MCPServer("askpapers", instructions=INSTRUCTIONS)
    modes = [m for m in model_modes().values() if m]

    @server.tool()
    def search_papers(query: str, k: int = 5, filters: dict[str, Any] | None = None) -> dict:
        """Find the k papers best matching a query, best first: paper_id, title, url, doi,
        arxiv_id, authors, year, scores and the best-matching sentence. filters may hold
        year (int), author, category and source (substrings)."""
        from rag.papers import search_papers as search

        return {"papers": _call(search, query, k=k, filters=filters, settings=settings)}

    @server.tool()
    def ask(question: str, mode: str | None = None) -> dict:
        """Answer a question from the indexed papers. The answer keeps [n] markers; each
        citation gives n, paper_id, title, the quoted sentence, its span and url. abstained
        is true when the papers do not answer the question. mode: local, openai or
        extractive (default: the server's)."""
        from rag import ask as answer_question

        if mode is not None and mode not in modes:
            raise ToolError(f"Unknown mode {mode!r}; use one of: {', '.join(modes)}.")
        answer = _call(answer_question, question, mode=mode, settings=settings)
        return {"answer": answer.text, "citations": citations_json(answer),
                "abstained": answer.abstained, "mode": answer.mode}

    @server.tool()
    def get_paper(paper_id: str) -> dict:
        """One indexed paper by its paper_id (from search_papers or a citation): title,
        abstract, authors, year, doi, arxiv_id, url and a BibTeX entry."""
        from rag.bibtex import paper_bibtex
        from rag.papers import get_paper as lookup
        from rag.papers import paper_json

        paper = _call(lookup, paper_id, settings=settings)
        if paper is None:
            raise ToolError(f"No paper with id {paper_id!r}; ids come from search_papers.")
        return {**paper_json(paper), "bibtex": paper_bibtex(paper)}

    return server


def run_stdio(settings: Settings) -> int:
    """Serve MCP on stdin/stdout until the client closes it."""
    make_server(settings).run("stdio")
    return 0


def http_endpoint(settings: Settings):
    """(ASGI app for the /mcp route, lifespan that runs its session manager).

    Stateless streamable HTTP with JSON responses; the SDK's own Host check is off because
    ui/guard.py checks Host and Origin for the whole app."""
    from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
    from mcp.server.transport_security import TransportSecuritySettings

    server = make_server(settings)
    server.streamable_http_app(stateless_http=True, json_response=True,
                               transport_security=TransportSecuritySettings(
                                   enable_dns_rebinding_protection=False))
    manager = server.session_manager

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async with manager.run():
            yield

    return StreamableHTTPASGIApp(manager), lifespan
