"""The Gradio chat app behind `askpapers serve`: streamed, cited answers and a sources panel.

Loopback-only unless credentials are given; no analytics and no fonts or scripts from the
network. Library errors become one readable chat line; a traceback never reaches the page.
"""
from __future__ import annotations

import logging
import os
import threading

# Must be set before gradio is imported: it reads the flag at import time.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import gradio as gr  # noqa: E402

from rag.config import MODES, Settings  # noqa: E402
from rag.errors import AskPapersError, ConfigError  # noqa: E402
from rag.filters import year_filter  # noqa: E402
from rag.types import Retrieved  # noqa: E402
from ui import export, guard, render, upload  # noqa: E402
from ui.exposure import check_exposure, is_loopback  # noqa: E402
from ui.feedback import VoteLimit, record_feedback  # noqa: E402

log = logging.getLogger(__name__)

QUEUE_MAX_SIZE = 64  # beyond this, new requests are told the queue is full
DEFAULT_CONCURRENCY = 4
MAX_UPLOAD = "100mb"  # the largest file a browser may upload (papers to add)
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "monospace"]


# ---------------------------------------------------------------- corpus-derived UI data

def _papers(settings: Settings) -> list:
    from rag import store

    try:
        build = store.current_build(settings.index_dir)
        return store.read_records(build)[0].values() if build else []
    except AskPapersError as e:  # a damaged index must not stop the app from starting
        log.warning("no papers for the settings widgets: %s", e)
        return []


def example_questions(papers: list, n: int = 4) -> list[str]:
    """A few questions built from the titles of indexed papers, spread over the corpus."""
    titles = sorted({p.title for p in papers if 15 <= len(p.title) <= 80})
    if not titles:
        return []
    picked = [titles[i * len(titles) // n] for i in range(min(n, len(titles)))]
    forms = ["What does the paper “{}” propose?", "What results does “{}” report?"]
    return [forms[i % 2].format(t) for i, t in enumerate(picked)]


def listing_choices(papers: list) -> list[tuple[str, str]]:
    """Dropdown choices for the listing filter: every source file (and date) in the index."""
    seen = sorted({" ".join(x for x in (li.source, li.date) if x)
                   for p in papers for li in p.listings})
    return [("Any", "")] + [(s, s) for s in seen]


# ---------------------------------------------------------------- the chat session

def _history(turns: list[dict]) -> list[dict]:
    history = []
    for t in turns:
        if t["answer"] is not None:
            history += [{"role": "user", "content": t["question"]},
                        {"role": "assistant", "content": t["answer"].text}]
    return history


def chat_messages(turns: list[dict]) -> list[dict]:
    """The Chatbot value for these turns: a user and an assistant message per turn."""
    messages = []
    for i, t in enumerate(turns):
        if t["answer"] is not None:
            reply = render.answer_markdown(t["answer"], i)
        elif t["error"]:
            reply = render.error_markdown(t["error"])
        else:
            reply = render.streaming_markdown(t["text"])
        messages += [{"role": "user", "content": render.streaming_markdown(t["question"])},
                     {"role": "assistant", "content": reply}]
    return messages


def panel_html(turns: list[dict]) -> str:
    """The sources panel for every turn with sources, the latest one showing: an answer's,
    else the papers found for it (while it is written, or when it failed)."""
    return render.sources_panel([(i, t["answer"] or t.get("retrieved")) for i, t in enumerate(turns)
                                 if t["answer"] or t.get("retrieved")])


def make_filters(source, year, author, category) -> dict:
    """The filters dict of rag.ask_stream from the settings widgets.

    Raises QuestionError for a year that is not a whole number (rag.filters.year_filter).
    """
    return {"source": source or "", "year": year_filter(year) or None,
            "author": (author or "").strip(), "category": (category or "").strip()}


class ChatApp:
    """The event handlers of one served app; per-browser state lives in gr.State."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.votes = VoteLimit()
        self._corpus: tuple = ("", [], [])  # (status it was read for, examples, listings)

    def chat(self, question, turns, mode, k, source, year, author, category):
        """Show the papers found as soon as retrieval ends, stream the answer into the chat,
        then show its sources; errors become a chat line."""
        turns = list(turns or [])
        if not (question or "").strip():
            yield gr.skip(), gr.skip(), turns, gr.skip()
            return
        turn = {"question": question.strip(), "text": "", "retrieved": None, "answer": None,
                "error": None}
        history = _history(turns)
        turns.append(turn)
        yield chat_messages(turns), render.WAITING_PANEL, turns, ""
        try:
            for item in self._stream(turn["question"], history, mode, k,
                                     make_filters(source, year, author, category)):
                if isinstance(item, str):
                    turn["text"] += item
                    yield chat_messages(turns), gr.skip(), turns, gr.skip()
                elif isinstance(item, Retrieved):
                    turn["retrieved"] = item
                    yield gr.skip(), panel_html(turns), turns, gr.skip()
                else:
                    turn["answer"] = item  # its text replaces the stream: citations were checked
        except AskPapersError as e:
            turn["error"] = str(e)
        except Exception as e:  # noqa: BLE001 - the page must get a message, not a traceback
            log.exception("answering %r failed", turn["question"])
            turn["error"] = f"Unexpected {type(e).__name__}; the server log has the details."
        yield chat_messages(turns), panel_html(turns), turns, gr.skip()

    def _stream(self, question, history, mode, k, filters):
        from rag import ask_stream

        return ask_stream(question, mode=mode or None, k=int(k) if k else None,
                          history=history, filters=filters, settings=self.settings)

    def like(self, turns, data: gr.LikeData, request: gr.Request = None):
        """Append a thumbs up/down to <home>/feedback.jsonl (a few a minute per session)."""
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        vote = {True: "up", "Like": "up", False: "down", "Dislike": "down"}.get(data.liked)
        turn = (turns or [])[index // 2] if 0 <= index // 2 < len(turns or []) else None
        if vote is None or turn is None or turn["answer"] is None:
            return
        if not self.votes.allow(getattr(request, "session_hash", None) or "local"):
            gr.Warning("Too many votes in a short time; feedback was not saved.")
            return
        try:
            record_feedback(self.settings.home, turn["answer"], vote)
        except OSError as e:
            gr.Warning(f"Could not save feedback: {render.scrub_paths(str(e))}")
            return
        gr.Info("Thanks, feedback saved.")

    @property
    def can_build(self) -> bool:
        """Building from the page needs sources the operator configured (never the seeds)."""
        return bool(self.settings.index.sources)

    def index_status(self):
        """Status markdown, and whether the Build button shows (no index; sources set)."""
        from rag.store import index_info

        try:
            return render.index_status(index_info(self.settings)), False
        except AskPapersError as e:
            return render.missing_index_status(str(e), self.can_build), self.can_build

    def page_data(self):
        """What the page shows of the corpus, sent only to a logged-in session: index
        status, Build button, example questions and listing choices."""
        status, shown = self.index_status()
        if self._corpus[0] != status:  # the records are read once per live build
            papers = [] if shown else _papers(self.settings)
            self._corpus = (status, [[q] for q in example_questions(papers)],
                            listing_choices(papers))
        return (status, gr.update(visible=shown), gr.Dataset(samples=self._corpus[1]),
                gr.update(choices=self._corpus[2]), gr.update(open=shown))

    def build_if_shown(self, progress=gr.Progress()):  # noqa: B008 - Gradio's way to ask for a progress bar
        """The Build button's handler: refuses unless the page shows the button."""
        if not self.index_status()[1]:
            raise gr.Error("Building from the page is off: there is a usable index, or no "
                           "sources are configured.", print_exception=False)
        return self.build(progress)

    def build(self, progress=gr.Progress()):  # noqa: B008 - Gradio's way to ask for a progress bar
        """Build (or refresh) the index from the configured sources with a progress bar,
        then refresh what depends on it."""
        from index.build import build_index

        progress(0, desc="Reading sources")

        def report(done: int, total: int) -> None:
            progress((done, total), desc="Embedding chunks", unit="chunks")

        try:
            if not self.can_build:  # never the repository's seeds over a user's own corpus
                raise ConfigError("No sources are configured for this app; set "
                                  "ASKPAPERS_INDEX__SOURCES or use askpapers index build.")
            build_index(self.settings, self.settings.index.sources, progress=report)
        except AskPapersError as e:
            # The live index (if any) is untouched by a failed build: say both.
            status, shown = self.index_status()
            return (render.build_failed_status(str(e), status), gr.update(visible=shown),
                    gr.skip(), gr.skip(), gr.skip())
        return self.page_data()


# ---------------------------------------------------------------- layout

def _settings_widgets(settings: Settings) -> dict:
    return {
        "mode": gr.Radio(list(MODES), value=settings.llm.mode, label="Answer with",
                         info="local: llama.cpp model · openai: hosted endpoint · "
                              "extractive: quote the papers, no model"),
        "k": gr.Slider(1, 20, value=settings.retrieval.k, step=1, label="Papers to retrieve (k)"),
        "source": gr.Dropdown(listing_choices([]), value="", label="Listing / source file",
                              allow_custom_value=True),
        "year": gr.Number(None, label="Year", precision=0),
        "author": gr.Textbox(label="Author contains"),
        "category": gr.Textbox(label="Category (e.g. cs.LG)"),
    }


def build_app(settings: Settings) -> gr.Blocks:
    """The Blocks app for these settings (not yet queued or launched).

    Nothing of the corpus is in the page itself: status, examples and listing names arrive
    by a load event, which Gradio runs only for a logged-in session. The build_index
    endpoint exists only when the page shows its button.
    """
    handlers = ChatApp(settings)
    with gr.Blocks(title="askpapers", analytics_enabled=False) as app:
        turns = gr.State([])
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label="askpapers: cited answers from paper abstracts",
                                     height=560, latex_delimiters=[], elem_id="ap-chat",
                                     placeholder="Ask a question about the indexed papers.")
                with gr.Row():
                    question = gr.Textbox(show_label=False, scale=8, elem_id="ap-question",
                                          placeholder="Ask about the indexed papers…")
                    ask = gr.Button("Ask", variant="primary", scale=1, elem_id="ap-ask")
                    clear = gr.Button("Clear chat", scale=1, elem_id="ap-clear")
                examples = gr.Dataset(label="Examples from the corpus", components=[question],
                                      samples=[])
            with gr.Column(scale=2):
                gr.Markdown("### Sources")
                panel = gr.HTML(render.EMPTY_PANEL, elem_id="ap-sources", max_height=620)
                bibtex = export.download_button()
                with gr.Accordion("Settings and index", open=False) as accordion:
                    widgets = _settings_widgets(settings)
                    status_md = gr.Markdown("", elem_id="ap-status")
                    build = gr.Button("Build index", visible=False, elem_id="ap-build")
                    files = upload.upload_box()
        corpus_outputs = [status_md, build, examples, widgets["source"], accordion]
        app.load(handlers.page_data, outputs=corpus_outputs, api_visibility="private")
        _chat_events(handlers, settings, question, ask, turns, widgets, chatbot, panel).then(
            export.bibtex_file, inputs=turns, outputs=bibtex, api_visibility="private")
        upload.wire(files, handlers, corpus_outputs)
        hide = gr.update(value=None, visible=False)
        clear.click(lambda: ([], [], render.EMPTY_PANEL, hide), outputs=[chatbot, turns, panel, bibtex],
                    api_name="clear")
        chatbot.clear(lambda: ([], render.EMPTY_PANEL, hide), outputs=[turns, panel, bibtex],
                      api_visibility="private")  # the chatbot's own trash button
        examples.click(lambda sample: sample[0], inputs=examples, outputs=question,
                       api_visibility="private")
        chatbot.like(handlers.like, inputs=turns, outputs=None, api_visibility="private")
        if handlers.index_status()[1]:  # admin actions exist only while the page shows them
            build.click(handlers.build_if_shown, outputs=corpus_outputs,
                        api_name="build_index", concurrency_limit=1)
    return app


def _chat_events(handlers, settings, question, ask, turns, widgets, chatbot, panel):
    return gr.on([question.submit, ask.click], handlers.chat,
          inputs=[question, turns, *widgets.values()],
          outputs=[chatbot, panel, turns, question], api_name="chat",
          concurrency_limit=1 if settings.llm.mode == "local" else DEFAULT_CONCURRENCY,
          concurrency_id="chat")


# ---------------------------------------------------------------- serving

WARM_POLL_S = 30.0  # how often the background reading looks for a newly published index


def _warm_up(settings: Settings) -> None:
    """Load the index, the embedder and (in local mode) the model in the background so the
    first question is fast; with `llm.warm_papers`, then read every paper (_read_papers)."""
    try:
        from rag.engine import get_engine

        get_engine(settings)
        if settings.llm.mode == "local":  # load the model and its prompt head before a question
            from rag.llm import get_chat_model

            get_chat_model(settings, "local")
            if settings.llm.warm_papers:
                _read_papers(settings)
    except AskPapersError as e:
        log.info("warm-up skipped: %s", e)
    except Exception:  # noqa: BLE001 - a failed warm-up must not stop the server
        log.exception("warm-up failed")


def _read_papers(settings: Settings, stop: threading.Event | None = None) -> None:
    """Read each paper once with the local model and save its state, giving way to every
    question; again whenever a new index is published (an upload, or `askpapers index
    build` beside the server), so papers added later start fast too. Runs until `stop`."""
    from rag import store
    from rag.engine import get_engine
    from rag.generation import save_paper_states

    stop = stop or threading.Event()
    done = None  # the build whose papers were all read (or the budget filled)
    while not stop.is_set():
        build = store.current_build(settings.index_dir)
        if build != done:
            try:
                r = save_paper_states(get_engine(settings), give_way=True)
            except AskPapersError as e:  # e.g. an index swapped mid-load: try at the next look
                log.info("reading papers paused: %s", e)
            else:
                done = build
                log.info("paper states: %d read and saved, %d were saved already (%s)",
                         r["saved"], r["already"],
                         {"budget": "budget full", "disk": "disk nearly full"}.get(r["full"], "all"))
        stop.wait(WARM_POLL_S)


def _guarded_app(hosts: frozenset[str]):
    """Gradio's FastAPI app with RequestGuard wrapped around all of it, Gradio's own
    middleware (CORS, compression) included, so no route or handler runs unchecked."""
    from gradio.routes import App, ORJSONResponse

    class GuardedApp(App):
        def build_middleware_stack(self):
            return guard.RequestGuard(super().build_middleware_stack(), hosts)

    return GuardedApp(default_response_class=ORJSONResponse)


def launch(settings: Settings, host: str = "127.0.0.1", port: int = 7860, auth: str | None = None,
           share: bool = False, *, block: bool = True,
           allowed_hosts: list[str] | tuple[str, ...] = (), quiet: bool | None = None,
           api_key: str | None = None) -> gr.Blocks:
    """Build, queue and launch the app, with the HTTP API and /mcp beside it (ui/api.py);
    with block=False return while it serves (quietly, unless quiet=False).

    Requests are answered only for loopback names, `host` and `allowed_hosts` (NAME,
    NAME:PORT or *.DOMAIN). The API needs `api_key` (or ASKPAPERS_API_KEY) when set, and
    always off loopback. Raises ConfigError for unprotected exposure, bad auth or a
    busy port.
    """
    from ui.api import ApiKey
    from ui.doors import add_doors

    credentials = check_exposure(host, auth, share)
    share_hosts = ["*.gradio.live"] if share else []  # where Gradio's share links live
    hosts = guard.allowed_hosts(host, port, [*allowed_hosts, *share_hosts])
    server_app = _guarded_app(hosts)
    key = ApiKey.for_server(api_key, exposed=share or not is_loopback(host))
    if key.required and key.key is None:
        log.warning("the API and /mcp refuse every request: the server is exposed and has "
                    "no API key (--api-key or ASKPAPERS_API_KEY)")
    doors_lifespan = add_doors(server_app, settings, key)
    app = build_app(settings)
    app.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=DEFAULT_CONCURRENCY)
    threading.Thread(target=_warm_up, args=(settings,), daemon=True).start()
    theme = gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS)
    try:
        # _app: Gradio's own hook for an App subclass (gradio.Server launches the same way).
        app.launch(server_name=host, server_port=port, auth=credentials, share=share,
                   prevent_thread_lock=not block, show_error=False, ssr_mode=False,
                   mcp_server=False, pwa=False, enable_monitoring=False, theme=theme,
                   css=render.CSS, head=render.CITATION_SCRIPT,
                   quiet=not block if quiet is None else quiet,
                   footer_links=["gradio", "settings"], run_history=False,
                   max_file_size=MAX_UPLOAD, app_kwargs={"lifespan": doors_lifespan},
                   _app=server_app)
    except OSError as e:
        raise ConfigError(f"Cannot serve on {host}:{port} ({e}); pick another --port.") from None
    return app


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 7860, auth: str | None = None,
          share: bool = False, allowed_hosts: list[str] | tuple[str, ...] = (),
          api_key: str | None = None) -> int:
    """Serve the chat app until stopped (ui/signals.py); returns 0 after SIGTERM, once the
    answers in flight are done.

    Raises ConfigError when the app would be exposed without auth (the CLI prints it), and
    KeyboardInterrupt on Ctrl-C (the CLI exits 130).
    """
    from ui.signals import serve_until_stopped

    return serve_until_stopped(lambda: launch(
        settings, host=host, port=port, auth=auth, share=share, block=False, quiet=False,
        allowed_hosts=allowed_hosts, api_key=api_key))
