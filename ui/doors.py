"""The machine doors of `askpapers serve`: the HTTP API (ui/api.py) and MCP at /mcp
(ui/mcp_server.py), added to the FastAPI app the UI runs on, both behind one API key."""
from __future__ import annotations

from fastapi import FastAPI
from starlette.routing import Route

from rag.config import Settings
from ui.api import ApiKey, KeyGate, add_api
from ui.mcp_server import http_endpoint


def add_doors(app: FastAPI, settings: Settings, key: ApiKey):
    """Add the API routes and the MCP endpoint (/mcp) to `app`, both behind `key`; returns
    the lifespan the MCP endpoint needs (to run while the app serves)."""
    add_api(app, settings, key)
    mcp_app, lifespan = http_endpoint(settings)
    app.router.routes.append(Route("/mcp", KeyGate(mcp_app, key), methods=["GET", "POST", "DELETE"]))
    return lifespan
