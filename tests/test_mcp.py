"""`askpapers mcp` on stdio, driven by the MCP SDK's own client (a real subprocess over the
seed index). The HTTP transport at /mcp is tried in tests/test_api.py."""
from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUESTION = "what FID does classifier guidance reach?"


async def _session(settings, calls):
    from mcp import Client, StdioServerParameters

    env = {k: v for k, v in os.environ.items() if not k.startswith("ASKPAPERS_")}
    env.update({"ASKPAPERS_HOME": str(settings.home), "HF_HUB_OFFLINE": "1",
                "ASKPAPERS_LLM__MODE": "extractive"})
    server = StdioServerParameters(command=sys.executable, args=["-m", "ui.cli", "mcp"],
                                   env=env, cwd=str(REPO))
    async with Client(server, read_timeout_seconds=300) as client:
        tools = await client.list_tools()
        return tools, [await client.call_tool(name, args) for name, args in calls]


def test_stdio_server_lists_and_runs_its_tools(seed_settings):
    tools, (found, answer, paper, empty) = asyncio.run(_session(seed_settings, [
        ("search_papers", {"query": "classifier guidance", "k": 2,
                           "filters": {"source": "001_cd12900632336ae9.txt"}}),
        ("ask", {"question": QUESTION}),
        ("get_paper", {"paper_id": "f87bcd0e08cab450"}),
        ("search_papers", {"query": "   "}),
    ]))
    by_name = {t.name: t for t in tools.tools}
    assert set(by_name) == {"search_papers", "ask", "get_paper"}
    assert set(by_name["search_papers"].input_schema["properties"]) == {"query", "k", "filters"}
    assert by_name["ask"].input_schema["required"] == ["question"]
    papers = json.loads(found.content[0].text)["papers"]
    assert len(papers) == 2 and papers[0]["best_sentence"]
    got = json.loads(answer.content[0].text)
    assert got["mode"] == "extractive" and not got["abstained"] and got["citations"]
    assert all({"n", "paper_id", "title", "quote", "span", "url"} <= set(c) for c in got["citations"])
    assert json.loads(paper.content[0].text)["paper_id"] == "f87bcd0e08cab450"
    assert empty.is_error and "empty" in empty.content[0].text
