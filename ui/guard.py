"""Every request to the served app is checked here before any Gradio route or handler runs.

A plain ASGI middleware wrapped around the whole app:
- the `Host` header must name this server (loopback names with the port, the served host,
  or an `--allowed-host`), which stops DNS rebinding;
- a request carrying a foreign `Origin`, and any request a browser marks as cross-site
  other than following a link, is refused, which stops other web pages from driving or
  reading the app; no `Access-Control-Allow-Origin: *` leaves the server;
- failed logins are throttled per client (HTTP 429 with Retry-After);
- no page carries Gradio's API schema: Gradio inlines it into every page, logged in or
  not, and its client fetches it from /gradio_api/info (which needs the login) without it.
"""
from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
# A host that means "every interface" is no name a browser can use.
ANY_INTERFACE = ("0.0.0.0", "::", "[::]", "")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CORS_HEADERS = (b"access-control-allow-origin", b"access-control-allow-credentials")
_API_INFO = re.compile(rb"window\.gradio_api_info = .*?;</script>", re.S)
# Built files (scripts, styles): never a page, so they may stay compressed.
_FILE_PATHS = ("/assets/", "/static/")


# ---------------------------------------------------------------- host and origin rules

def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def allowed_hosts(host: str, port: int, extra: Iterable[str] = ()) -> frozenset[str]:
    """The Host values this app answers: each loopback name and the served host with the
    port, and every `extra` entry as given (NAME for any port, NAME:PORT, or *.DOMAIN)."""
    names = [*LOOPBACK_NAMES, _bracketed(host.strip().lower())]
    entries = {f"{name}:{port}" for name in names if name not in ANY_INTERFACE}
    if port in (80, 443):  # a browser leaves the default port out of Host
        entries |= {name for name in names if name not in ANY_INTERFACE}
    return frozenset(entries | {e.strip().lower().rstrip(".") for e in extra if e.strip()})


def _split_host(value: str) -> tuple[str, str | None]:
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value.partition("]")
        return name + "]", rest[1:] if rest.startswith(":") else None
    name, sep, port = value.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        return name.rstrip("."), port
    return value.rstrip("."), None


def host_allowed(value: str, allowed: frozenset[str]) -> bool:
    """True when a Host header value (or an Origin's host[:port]) is one this app answers."""
    name, port = _split_host(value)
    if not name:
        return False
    if name in allowed or (port is not None and f"{name}:{port}" in allowed):
        return True
    return any(e.startswith("*.") and name.endswith(e[1:]) for e in allowed)


def origin_allowed(origin: str, allowed: frozenset[str]) -> bool:
    """True when an Origin header names this app (http or https, an allowed host)."""
    parts = urlsplit(origin.strip())
    return parts.scheme in ("http", "https") and host_allowed(parts.netloc, allowed)


def refusal(method: str, headers: dict[str, list[str]], allowed: frozenset[str]) -> str | None:
    """Why a request must be refused (403), or None when it may go on."""
    hosts = headers.get("host", [])
    if len(hosts) != 1 or not host_allowed(hosts[0], allowed):
        return ("This server does not answer for that host name. To reach it by another "
                "name, start it with: askpapers serve --allowed-host NAME")
    origins = headers.get("origin", [])
    if any(not origin_allowed(o, allowed) for o in origins):
        return "Requests from other web sites are refused."
    # A browser marks what another site's page makes it send: only following a link to
    # the app (a navigation) may come from elsewhere, never a script, image or form post.
    if "cross-site" in headers.get("sec-fetch-site", []) and (
            method not in SAFE_METHODS or headers.get("sec-fetch-mode") != ["navigate"]):
        return "Requests from other web sites are refused."
    return None


# ---------------------------------------------------------------- login throttling

class LoginThrottle:
    """Per-client back-off on logins: `free_tries` attempts, then a lock that doubles with
    every further failure, up to `max_lock_s`. An attempt counts as failed until it
    succeeds, so parallel guesses are throttled too; a success clears the client."""

    def __init__(self, free_tries: int = 5, base_lock_s: float = 10.0, max_lock_s: float = 900.0,
                 clock: Callable[[], float] = time.monotonic):
        self.free_tries, self.base_lock_s, self.max_lock_s = free_tries, base_lock_s, max_lock_s
        self.clock = clock
        self._clients: dict[str, tuple[int, float]] = {}  # client -> (failures, locked until)

    def attempt(self, client: str) -> float:
        """Register a login attempt: 0 to let it through, else the seconds left to wait."""
        now = self.clock()
        failures, until = self._clients.get(client, (0, 0.0))
        if now < until:
            return until - now
        failures += 1
        if failures >= self.free_tries:
            lock = self.base_lock_s * 2 ** (failures - self.free_tries)
            until = now + min(lock, self.max_lock_s)
        self._clients[client] = (failures, until)
        self._forget_stale(now)
        return 0.0

    def succeeded(self, client: str) -> None:
        """The client logged in: its failures are forgotten."""
        self._clients.pop(client, None)

    def _forget_stale(self, now: float) -> None:
        if len(self._clients) > 10_000:  # bounded memory under a spray of addresses
            self._clients = {c: v for c, v in self._clients.items()
                             if v[1] > now - self.max_lock_s}


def is_login(method: str, path: str) -> bool:
    """True for Gradio's login form post (at the root or under a mount path)."""
    return method == "POST" and path.rstrip("/").endswith("/login")


# ---------------------------------------------------------------- the middleware

class RequestGuard:
    """ASGI middleware applying `refusal` and the login throttle before the wrapped app."""

    def __init__(self, app, hosts: frozenset[str], throttle: LoginThrottle | None = None):
        self.app, self.hosts, self.throttle = app, hosts, throttle or LoginThrottle()

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers: dict[str, list[str]] = {}
        for key, value in scope.get("headers", []):
            headers.setdefault(key.decode("latin-1").lower(), []).append(value.decode("latin-1"))
        method = scope.get("method", "GET")
        why = refusal(method, headers, self.hosts)
        if why is not None:
            return await _refuse(scope, send, 403, why)
        if scope["type"] == "http" and is_login(method, scope.get("path", "")):
            return await self._login(scope, receive, send)
        if scope["type"] == "http" and method == "GET" \
                and not scope.get("path", "").startswith(_FILE_PATHS):
            # A page must come uncompressed for its API schema to be cut out.
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"]
                                          if k.lower() != b"accept-encoding"]}
            send = _without_api_info(send)
        await self.app(scope, receive, _no_wildcard_cors(send))

    async def _login(self, scope, receive, send):
        client = (scope.get("client") or ("?", 0))[0]
        wait_s = self.throttle.attempt(client)
        if wait_s > 0:
            return await _refuse(scope, send, 429, "Too many failed logins; try again in "
                                 f"{math.ceil(wait_s)} s.", {"retry-after": str(math.ceil(wait_s))})

        async def watch(message):
            if message["type"] == "http.response.start" and message["status"] < 400:
                self.throttle.succeeded(client)
            await send(message)

        await self.app(scope, receive, _no_wildcard_cors(watch))


def _no_wildcard_cors(send):
    """`send`, minus any Access-Control-Allow-Origin: * (allowed origins are echoed only)."""
    async def filtered(message):
        if message["type"] == "http.response.start":
            heads = message.get("headers", [])
            if any(k.lower() == b"access-control-allow-origin" and v.strip() in (b"*", b"null")
                   for k, v in heads):
                message = {**message, "headers": [(k, v) for k, v in heads
                                                   if k.lower() not in _CORS_HEADERS]}
        await send(message)
    return filtered


def _without_api_info(send):
    """`send`, with the API schema Gradio inlines into an HTML page replaced by null."""
    start: dict | None = None
    body: list[bytes] = []

    async def filtered(message):
        nonlocal start
        if message["type"] == "http.response.start":
            heads = dict((k.lower(), v) for k, v in message.get("headers", []))
            if heads.get(b"content-type", b"").startswith(b"text/html"):
                start = message  # held until the whole page is here
                return
        elif message["type"] == "http.response.body" and start is not None:
            body.append(message.get("body", b""))
            if message.get("more_body"):
                return
            page = _API_INFO.sub(b"window.gradio_api_info = null;</script>", b"".join(body))
            heads = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            await send({**start, "headers": heads + [(b"content-length", str(len(page)).encode())]})
            message = {"type": "http.response.body", "body": page}
        await send(message)
    return filtered


async def _refuse(scope, send, status: int, text: str, extra: dict[str, str] | None = None):
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = text.encode("utf-8")
    heads = [(b"content-type", b"text/plain; charset=utf-8"),
             (b"content-length", str(len(body)).encode())]
    heads += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": heads})
    await send({"type": "http.response.body", "body": body})
