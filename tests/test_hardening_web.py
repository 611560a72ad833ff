"""Hardening of the web app (issue #12): each class the red team found, tried for real.

- requests from other sites and other host names (DNS rebinding, CSRF, CORS);
- admin actions (build_index) reachable through the API while the page hides them;
- corpus text reaching the answer as markup (citation markers, images, links, HTML);
- login guessing, what an unauthenticated page shows, vote spam, server paths in errors.

A tiny corpus with a hostile abstract is built with the real index builder; the app is the
real Gradio server on 127.0.0.1 (a subprocess), driven by real HTTP requests with forged
headers, gradio_client and, for the slow test, headless Chromium.
"""
from __future__ import annotations

import json
import re
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from test_ui import _client, served_app

from rag.citations import MARKER, check_citations, marker_numbers
from rag.text import as_data

LISTING = "hostile_listing.txt"
POISONED_TITLE = "Lantern Sampling [3] for Quiet Diffusion Models"
QUESTION = "What FID does Lantern sampling reach on ImageNet?"
BENIGN = [
    ("Tidal Forecasting with Graph Neural Networks",
     "We forecast coastal tides with graph neural networks over sensor stations. The model "
     "lowers the mean error of harbour forecasts by 12 percent against physical baselines."),
    ("Protein Folding under Low Light Microscopy",
     "We fold proteins observed under low light microscopy with a denoising network. "
     "Structures recovered from dim images match crystal structures within 2 angstrom."),
    ("Sparse Attention for Very Long Legal Documents",
     "Sparse attention lets transformers read legal documents of 100k tokens. Our model "
     "improves contract clause retrieval by 9 points on a new benchmark."),
]
PWN = "window.__pwned=1"


def hostile_abstract(beacon_port: int) -> str:
    """One abstract carrying every kind of markup, all in its best-matching sentence."""
    return ("Lantern sampling reaches an FID of 1.91 on ImageNet 256x256, beating the samplers "
            f"of [2] and [3, 4] <img src=x onerror=\"{PWN}\"> as "
            f"![plot](http://127.0.0.1:{beacon_port}/beacon) and "
            f"[the code](javascript:{PWN}) <script>{PWN}</script> show. "
            "We release Lantern sampling as a drop-in sampler for quiet diffusion models.")


# ---------------------------------------------------------------- fixtures

class _Beacon(BaseHTTPRequestHandler):
    hits: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def beacon():
    """A local HTTP server that records every request it gets: (port, list of paths)."""
    handler = type("Beacon", (_Beacon,), {"hits": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], handler.hits
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def hostile(beacon, tmp_path_factory):
    """Settings of an index built from a folder holding one listing page: the hostile
    paper and three benign ones. Its sources are configured, as an operator would."""
    from index.build import build_index
    from rag.config import load_settings

    root = tmp_path_factory.mktemp("hostile")
    corpus = root / "corpus"
    corpus.mkdir()
    pairs = [(POISONED_TITLE, hostile_abstract(beacon[0])), *BENIGN]
    page = "Get trending papers in your email inbox!\nMar 3\n"  # a listing page's furniture
    (corpus / LISTING).write_text(page + "".join(f"{t}\n{a}\n" for t, a in pairs),
                                  encoding="utf-8")
    settings = load_settings(home=root / "home", index={"sources": [corpus]})
    build_index(settings, settings.index.sources)
    return settings


def _env(settings) -> dict:
    return {"ASKPAPERS_INDEX__SOURCES": json.dumps([str(p) for p in settings.index.sources])}


@pytest.fixture(scope="module")
def open_app(hostile, tmp_path_factory):
    """The app without a login on loopback (the default), over the hostile index."""
    with served_app(tmp_path_factory.mktemp("open_home"), hostile.index_dir,
                    **_env(hostile)) as (url, _):
        yield url


@pytest.fixture(scope="module")
def locked_app(hostile, tmp_path_factory):
    """The app with a login and one extra host name, over the hostile index."""
    args = ("--auth", "ada:correct-horse", "--allowed-host", "papers.internal")
    with served_app(tmp_path_factory.mktemp("locked_home"), hostile.index_dir, args=args,
                    **_env(hostile)) as (url, _):
        yield url


def _port(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1])


def _request(url: str, method: str = "GET", path: str = "/", host: str | None = None,
             source: str = "127.0.0.1", **kw) -> httpx.Response:
    """A raw request to the app; `host` forges the Host header, `source` picks the client
    address (any 127.x address reaches the loopback server)."""
    headers = dict(kw.pop("headers", {}))
    if host is not None:
        headers["Host"] = host
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=30) as client:
        return client.request(method, url.rstrip("/") + path, headers=headers, **kw)


def _join(url: str, **kw) -> httpx.Response:
    """A queue join for the chat event: the request the page sends to ask a question."""
    config = _request(url, "GET", "/config").json()
    chat = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "chat")
    body = {"data": [QUESTION, [], "extractive", 5, "", None, "", ""], "fn_index": chat,
            "session_hash": "attacker1"}
    return _request(url, "POST", "/gradio_api/queue/join", json=body, **kw)


# ---------------------------------------------------------------- 1: hosts and origins

def test_host_and_origin_rules():
    from ui.guard import allowed_hosts, host_allowed, origin_allowed, refusal

    hosts = allowed_hosts("0.0.0.0", 7860, ["papers.internal", "ui.example.org:8443",
                                            "*.corp.example"])
    ok = ["127.0.0.1:7860", "localhost:7860", "[::1]:7860", "LOCALHOST:7860",
          "papers.internal", "papers.internal:7860", "ui.example.org:8443", "a.corp.example"]
    bad = ["attacker.example:7860", "127.0.0.1:7861", "localhost", "0.0.0.0:7860",
           "ui.example.org:7860", "corp.example", "evilcorp.example", "", "127.0.0.1.evil:7860"]
    assert [h for h in ok if not host_allowed(h, hosts)] == []
    assert [h for h in bad if host_allowed(h, hosts)] == []
    assert origin_allowed("http://127.0.0.1:7860", hosts)
    assert not any(origin_allowed(o, hosts) for o in
                   ["null", "http://attacker.example:7860", "file://", "http://127.0.0.1:9"])
    served = allowed_hosts("192.168.1.5", 7860)
    assert host_allowed("192.168.1.5:7860", served) and not host_allowed("192.168.1.5:80", served)
    same = {"host": ["127.0.0.1:7860"]}
    assert refusal("POST", same, hosts) is None
    assert refusal("POST", {**same, "origin": ["http://localhost:7860"]}, hosts) is None
    assert refusal("POST", {**same, "sec-fetch-site": ["cross-site"]}, hosts)
    assert refusal("GET", {**same, "sec-fetch-site": ["cross-site"], "sec-fetch-mode": ["no-cors"]},
                   hosts)  # an <img> or <script> on another site
    link = {**same, "sec-fetch-site": ["cross-site"], "sec-fetch-mode": ["navigate"]}
    assert refusal("GET", link, hosts) is None and refusal("POST", link, hosts)
    assert refusal("GET", {**same, "origin": ["http://attacker.example"]}, hosts)
    assert refusal("GET", {"host": ["127.0.0.1:7860", "attacker.example"]}, hosts)
    assert "--allowed-host" in refusal("GET", {}, hosts)


def test_foreign_host_is_refused_before_any_handler(open_app, hostile):
    from rag import store

    port = _port(open_app)
    live = store.current_build(hostile.index_dir).name
    for path in ["/", "/config", "/gradio_api/info", "/gradio_api/queue/join"]:
        r = _request(open_app, "GET", path, host=f"rebound.attacker.example:{port}")
        assert r.status_code == 403 and "--allowed-host" in r.text, path
        assert "access-control-allow-origin" not in r.headers
    r = _join(open_app, host=f"rebound.attacker.example:{port}",
              headers={"Origin": f"http://rebound.attacker.example:{port}"})
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
    assert _request(open_app, "GET", "/", host=f"127.0.0.1:{port + 1}").status_code == 403
    assert _request(open_app, "GET", "/", host=f"localhost:{port}").status_code == 200
    assert store.current_build(hostile.index_dir).name == live


def test_cross_origin_requests_are_refused_and_never_allowed_by_cors(open_app):
    port = _port(open_app)
    evil = {"Origin": "http://attacker.example"}
    preflight = _request(open_app, "OPTIONS", "/gradio_api/queue/join", headers={
        **evil, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 403
    assert "access-control-allow-origin" not in preflight.headers
    for headers in [evil, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Origin": f"http://127.0.0.1:{port + 1}"}]:
        r = _join(open_app, headers=headers)
        assert r.status_code == 403, headers
        assert "access-control-allow-origin" not in r.headers
    config = _request(open_app, "GET", "/config", headers=evil)
    assert config.status_code == 403 and "access-control-allow-origin" not in config.headers
    included = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}
    assert _request(open_app, "GET", "/config", headers=included).status_code == 403
    followed = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    assert _request(open_app, "GET", "/", headers=followed).status_code == 200
    own = _join(open_app, headers={"Origin": f"http://127.0.0.1:{port}"})
    assert own.status_code == 200, own.text  # the page itself still works
    assert own.headers.get("access-control-allow-origin") in (None, f"http://127.0.0.1:{port}")


def test_allowed_host_option_admits_that_name_and_no_other(locked_app):
    from ui.cli import make_parser

    port = _port(locked_app)
    assert _request(locked_app, host=f"papers.internal:{port}").status_code == 200
    assert _request(locked_app, host=f"papers.internal.attacker.example:{port}").status_code == 403
    args = make_parser().parse_args(["serve", "--allowed-host", "a.example",
                                     "--allowed-host", "b.example:8443"])
    assert args.allowed_host == ["a.example", "b.example:8443"]


# ---------------------------------------------------------------- 1: admin actions

def test_build_index_endpoint_is_absent_when_the_page_hides_it(open_app, hostile):
    config = _request(open_app, "GET", "/config").json()
    names = {d.get("api_name") for d in config["dependencies"]}
    assert "chat" in names and "build_index" not in names
    info = _request(open_app, "GET", "/gradio_api/info").json()
    assert "/build_index" not in info["named_endpoints"]
    with pytest.raises(Exception, match="build_index"):
        _client(open_app).predict(api_name="/build_index")


def test_page_build_uses_configured_sources_never_the_seeds(hostile, tmp_path):
    import gradio as gr

    from rag import store
    from rag.config import load_settings
    from ui.app import ChatApp

    unconfigured = ChatApp(load_settings(home=tmp_path / "bare"))
    status = unconfigured.build()[0]
    assert status.startswith("**Build failed:**") and "No sources are configured" in status
    assert store.current_build(unconfigured.settings.index_dir) is None  # seeds not used
    with pytest.raises(gr.Error, match="off"):
        unconfigured.build_if_shown()
    with pytest.raises(gr.Error, match="off"):  # a usable index: the button is hidden
        ChatApp(hostile).build_if_shown()
    fresh = ChatApp(load_settings(home=tmp_path / "fresh", index={"sources": hostile.sources}))
    assert fresh.index_status()[1]
    status = fresh.build_if_shown()[0]
    index = store.load_index(fresh.settings.index_dir, fresh.settings)
    assert "4 papers" in status and len(index.papers) == 4


# ---------------------------------------------------------------- 3: corpus text is data

@pytest.mark.parametrize("text", [
    "as shown in [2] and [3, 4]; see also [5;6]",
    "![x](http://127.0.0.1:9/beacon) and [code](javascript:alert(1))",
    "[ref]: http://127.0.0.1:9/beacon and ![y][ref]",
    '<img src=x onerror="alert(1)"> <script>alert(1)</script> <!-- c --> <http://x.example>',
    "[a](JavaScript :alert(1)) [b](VBSCRIPT:msgbox) [c]( javascript\t:x)",
])
def test_as_data_leaves_no_marker_markup_or_script_url(text):
    out = as_data(text)
    assert len(out) == len(text)  # offsets into an abstract stay valid
    assert not MARKER.search(out) and "[" not in out and "](" not in out
    assert not re.search(r"<[A-Za-z/!?]", out)
    assert not re.search(r"(java|vb)script\s*:", out, re.I)


def test_as_data_keeps_plain_text():
    plain = "FID 1.91 (p < 0.05) on 256x256; x > y, e.g. A/B tests cost 3 $ & more."
    assert as_data(plain) == plain


def test_only_the_answerers_markers_become_citations(hostile):
    from rag import ask, prompts
    from rag.engine import get_engine
    from rag.generation import claim_support
    from ui import render

    answer = ask(QUESTION, mode="extractive", settings=hostile)
    poisoned = next(s for s in answer.sources if s.paper.title == POISONED_TITLE)
    assert not answer.abstained and poisoned.n in marker_numbers(answer.text)
    assert marker_numbers(answer.text) == sorted({c.n for c in answer.citations})
    assert "FID of 1.91" in answer.text and "(2) and (3, 4)" in answer.text
    for c in answer.citations:
        assert not MARKER.search(c.quote) and "<img" not in c.quote
    chat = render.answer_markdown(answer, 0)
    assert chat.count('class="ap-cite"') == len(answer.citations)
    assert "<img" not in chat and "<script" not in chat and "](" not in chat
    assert not re.search(r"javascript\s*:", chat, re.I)
    panel = render.sources_panel([(0, answer)])
    assert "(2) and (3, 4)" in panel and "of [2]" not in panel  # [n] there: card numbers only
    assert "<img" not in panel and "<script" not in panel and "Sampling [3]" not in panel
    assert "javascript:" not in panel.lower()
    # What a model sees, and the quote a checked model answer gets.
    seen = prompts.render_sources([(poisoned, [poisoned.paper.abstract])])
    assert marker_numbers(seen) == [poisoned.n] and "<img" not in seen
    engine = get_engine(hostile)
    claim = f"Lantern sampling reaches an FID of 1.91 on ImageNet [{poisoned.n}]."
    checked = check_citations(claim, [poisoned], engine.weights, claim_support(engine))
    assert [c.n for c in checked.citations] == [poisoned.n]
    assert not MARKER.search(checked.citations[0].quote)
    assert "<img" not in checked.citations[0].quote and "](" not in checked.citations[0].quote


def test_the_papers_found_before_the_answer_stay_data(hostile):
    from rag import ask_stream
    from rag.types import Retrieved
    from ui import render
    from ui.api import sources_json

    found = next(ask_stream(QUESTION, mode="extractive", settings=hostile))
    assert isinstance(found, Retrieved)
    poisoned = next(s for s in found.sources if s.paper.title == POISONED_TITLE)
    assert "<img" in poisoned.paper.abstract and "<img" not in found.best[poisoned.n].quote
    panel = render.sources_panel([(0, found)])
    assert panel.count('class="ap-src"') == len(found.sources) and "<mark>" in panel
    assert "<img" not in panel and "<script" not in panel and "Sampling [3]" not in panel
    assert "javascript:" not in panel.lower()
    for source in sources_json(found):
        assert not MARKER.search(source["quote"]) and "<img" not in source["quote"]


def test_model_text_cannot_add_images_or_links_to_the_chat():
    from rag.types import Answer
    from ui import render

    answer = Answer("q", "Yes ![x](http://127.0.0.1:9/b) [y](javascript:alert(1)) "
                         "<img src=x onerror=alert(1)> [1].", [], [], False, "local", "", {})
    chat = render.answer_markdown(answer, 0)
    assert "<img" not in chat and "](" not in chat.replace("\\](", "")
    assert "ap-cite" not in chat  # [1] names no source of this answer: it stays text


# ---------------------------------------------------------------- 5: login, exposure, votes

def test_login_is_throttled_per_client(locked_app):
    def login(password: str, source: str = "127.0.0.1") -> httpx.Response:
        return _request(locked_app, "POST", "/login", source=source,
                        data={"username": "ada", "password": password})

    codes = [login(f"guess-{i}").status_code for i in range(5)]
    assert codes == [400] * 5
    locked = login("correct-horse")  # the right password, too soon: refused unchecked
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
    assert login("correct-horse", source="127.0.0.2").status_code == 200  # another client


def test_login_throttle_backs_off_exponentially():
    from ui.guard import LoginThrottle

    now = [0.0]
    throttle = LoginThrottle(free_tries=3, base_lock_s=10, max_lock_s=40, clock=lambda: now[0])
    assert [throttle.attempt("a") for _ in range(3)] == [0, 0, 0]
    assert throttle.attempt("a") == 10 and throttle.attempt("b") == 0
    now[0] = 10.0
    assert throttle.attempt("a") == 0 and throttle.attempt("a") == 20  # doubled
    now[0] = 100.0
    for _ in range(3):
        throttle.attempt("a")
    assert throttle.attempt("a") == 40  # capped
    throttle.succeeded("a")
    assert throttle.attempt("a") == 0


def test_unauthenticated_page_shows_no_corpus_or_api(locked_app, open_app):
    page = _request(locked_app, "GET", "/")
    assert page.status_code == 200 and '"auth_required":true' in page.text.replace(" ", "")
    for secret in [LISTING, "Mar 3", "Lantern", "Tidal", "build_index", '"/chat"',
                   "named_endpoints"]:
        assert secret not in page.text, secret
    assert "window.gradio_api_info = null;" in page.text
    for path in ["/config", "/gradio_api/info"]:
        assert _request(locked_app, "GET", path).status_code == 401, path
    # Even the open app's page holds nothing of the corpus: it arrives after the load.
    opened = _request(open_app, "GET", "/").text
    assert LISTING not in opened and "Tidal" not in opened and "named_endpoints" not in opened
    with httpx.Client(base_url=locked_app, timeout=30,
                      transport=httpx.HTTPTransport(local_address="127.0.0.3")) as user:
        assert user.post("/login", data={"username": "ada", "password": "correct-horse"}
                         ).status_code == 200
        assert "/chat" in user.get("/gradio_api/info").json()["named_endpoints"]


def test_votes_are_rate_limited_per_session(hostile, tmp_path):
    import gradio as gr

    from rag import ask
    from rag.config import load_settings
    from ui.app import ChatApp
    from ui.feedback import VOTES_PER_WINDOW

    settings = load_settings(home=tmp_path, index={"dir": hostile.index_dir})
    answer = ask(QUESTION, mode="extractive", settings=settings)
    turns = [{"question": QUESTION, "text": answer.text, "answer": answer, "error": None}]
    app = ChatApp(settings)
    vote = gr.LikeData(None, {"index": 1, "value": answer.text, "liked": True})
    spammer, other = gr.Request(session_hash="spam"), gr.Request(session_hash="other")
    for _ in range(VOTES_PER_WINDOW * 3):
        app.like(turns, vote, spammer)
    app.like(turns, vote, other)
    records = (tmp_path / "feedback.jsonl").read_text().splitlines()
    assert len(records) == VOTES_PER_WINDOW + 1


def test_vote_limit_window_slides():
    from ui.feedback import VoteLimit

    now = [0.0]
    limit = VoteLimit(votes=2, window_s=60, clock=lambda: now[0])
    assert [limit.allow("s") for _ in range(3)] == [True, True, False]
    now[0] = 61.0
    assert limit.allow("s")


def test_no_server_path_reaches_the_page(tmp_path):
    from rag.config import load_settings
    from ui import render
    from ui.app import ChatApp

    home = tmp_path / "secret-home"
    app = ChatApp(load_settings(home=home))
    status, _ = app.index_status()
    *_, (messages, _, turns, _) = app.chat(QUESTION, [], "extractive", 5, "", None, "", "")
    failed = app.build()[0]
    shown = [status, messages[-1]["content"], failed]
    assert turns[-1]["error"] and str(tmp_path) in turns[-1]["error"]  # the log keeps it
    for text in shown:
        assert str(tmp_path) not in text and "/tmp" not in text, text
    assert "No index at" in shown[1] and "index" in shown[1]
    assert render.scrub_paths("No index at /root/.askpapers/index; run it") == \
        "No index at \u2026/index; run it"
    assert render.scrub_paths("C:\\Users\\ada\\idx and ~/papers/a.txt") == \
        "\u2026/idx and \u2026/a.txt"
    url = "endpoint http://127.0.0.1:8000/v1 and 1/2 and/or"
    assert render.scrub_paths(url) == url


# ---------------------------------------------------------------- 3, in a real browser

@pytest.mark.slow
def test_hostile_abstract_runs_no_script_and_fetches_nothing(open_app, beacon):
    from playwright.sync_api import sync_playwright
    from test_ui_browser import CHROMIUM_FLAGS

    chromium = shutil.which("chromium")
    assert chromium, "install Debian's chromium: apt-get install -y chromium"
    port, hits = beacon
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page()
        dialogs, requests = [], []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(open_app)
        page.locator("#ap-question textarea").fill(QUESTION)
        page.locator("#ap-question textarea").press("Enter")
        page.locator("#ap-chat a.ap-cite").first.wait_for(timeout=60_000)
        page.locator("#ap-sources .ap-src").first.wait_for(state="visible")
        page.locator("#ap-chat a.ap-cite").first.click()
        deadline = time.monotonic() + 3  # a beacon or script would have fired by now
        while time.monotonic() < deadline:
            page.wait_for_timeout(250)
        bot = page.locator("#ap-chat .message-row.bot-row").last
        assert "FID of 1.91" in bot.inner_text()
        assert page.evaluate("window.__pwned") is None and dialogs == []
        hostile = "img[src*='beacon'], img[src='x'], a[href^='javascript' i]"
        assert page.locator(hostile).count() == 0
        assert page.locator("#ap-chat script, #ap-sources script").count() == 0
        cites = page.locator("#ap-chat a.ap-cite")
        targets = [cites.nth(i).get_attribute("href") for i in range(cites.count())]
        assert targets and all(page.locator(f"#ap-sources {t}").count() == 1 for t in targets)
        assert "(2) and (3, 4)" in page.locator("#ap-sources").inner_text()
        browser.close()
    assert hits == [], f"the page fetched the beacon: {hits}"
    assert not [u for u in requests if f":{port}/" in u]
