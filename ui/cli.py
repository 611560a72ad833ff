"""The `askpapers` command: index build/info/verify, ask, eval, serve, mcp.

The only place (with the Gradio app) that turns library errors into messages and exit codes.
Exit codes: 0 done, the error's exit_code (rag/errors.py) for a foreseeable problem, 130
interrupted (Ctrl-C), 141 output closed early (`askpapers index info --json | head -1`).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from rag.config import MODES
from rag.errors import AskPapersError, IndexMismatchError

log = logging.getLogger("askpapers")


def _settings(args):
    from rag.config import load_settings

    index = {}
    if getattr(args, "index_dir", None):
        index["dir"] = Path(args.index_dir)
    if getattr(args, "source", None):
        index["sources"] = [Path(s) for s in args.source]
    return load_settings(**({"index": index} if index else {}))


def build_with_progress(settings, sources=None, full=False, ray_address=None):
    """Run a build with a progress bar on stderr; returns the BuildReport."""
    from tqdm import tqdm

    from index.build import build_index

    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc="embedding chunks", unit="chunk", file=sys.stderr)
        bar.update(done - bar.n)

    try:
        return build_index(settings, sources, full=full, progress=progress, ray_address=ray_address)
    finally:
        if bar is not None:
            bar.close()


def cmd_index_build(args) -> int:
    settings = _settings(args)
    r = build_with_progress(settings, full=args.full, ray_address=args.ray)
    print(f"Index at {settings.index_dir}: {r.papers} papers ({r.added} added, {r.changed} "
          f"changed, {r.removed} removed, {r.unchanged} unchanged), {r.chunks} chunks "
          f"({r.embedded} embedded, {r.reused} reused) in {r.seconds['total']:.1f} s.")
    if r.resumed_batches:
        print(f"Resumed an interrupted build: {r.resumed_batches} of {r.batches} embedding "
              "batches were already done.")
    if r.skipped:
        print(f"Skipped {len(r.skipped)} entries:", *r.skipped[:10], sep="\n  ", file=sys.stderr)
    return 0


def cmd_index_info(args) -> int:
    from rag.store import index_info

    info = index_info(_settings(args))
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    for key, value in info.items():
        print(f"{key:>12}: {value}")
    return 0


def cmd_index_verify(args) -> int:
    from rag import store

    settings = _settings(args)
    r = store.verify_index(settings.index_dir, settings)
    print(f"Index at {settings.index_dir} is intact: build {r['build']}, {r['files']} files "
          f"({r['bytes'] / 2**20:.1f} MB) match their hashes in full, {r['papers']} papers, "
          f"{r['chunks']} chunks.")
    return 0


def cmd_index_warm(args) -> int:
    from tqdm import tqdm

    from rag.engine import get_engine
    from rag.generation import save_paper_states

    settings = _settings(args)
    bar = tqdm(desc="reading papers", unit="paper", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        r = save_paper_states(get_engine(settings), limit=args.limit, progress=progress)
    finally:
        bar.close()
    print(f"Saved the local model's state of {r['saved']} papers ({r['tokens']} tokens read "
          f"in {r['seconds']:.0f} s); {r['already']} were saved already; "
          f"{settings.home.expanduser() / 'states'} holds {r['bytes'] / 2**20:.0f} MB.")
    if r["full"] == "budget":
        print("Stopped at the disk budget; raise ASKPAPERS_LLM__PAPER_STATES_MB to save more.",
              file=sys.stderr)
    elif r["full"] == "disk":
        from rag.paper_states import MIN_FREE_BYTES

        print(f"Stopped with under {MIN_FREE_BYTES / 2**30:g} GiB of disk free; free some "
              "space to save more.", file=sys.stderr)
    return 0


def _read_batch(path: Path) -> list[dict]:
    from rag.errors import QuestionError

    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise QuestionError(f"Cannot read {path}: {e}") from None
    for ln, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("question"), str):
                raise ValueError("not a question object")
        except ValueError:
            raise QuestionError(f"{path}:{ln}: expected {{\"id\", \"question\"}}") from None
        rows.append({"id": str(row.get("id", ln)), "question": row["question"], **row})
    return rows


def _answer_rows(rows, args, settings, out) -> list[dict]:
    from rag import ask

    preds = []
    for row in rows:
        answer = ask(row["question"], mode=args.mode, k=args.k, settings=settings)
        pred = answer.to_prediction(row["id"])
        pred["timings"] = answer.timings
        preds.append(pred)
        out.write(json.dumps(pred, ensure_ascii=False) + "\n")
        out.flush()
    return preds


def cmd_ask(args) -> int:
    from rag import ask_stream
    from rag.types import Answer

    settings = _settings(args)
    if args.batch:
        rows = _read_batch(Path(args.batch))
        if not args.out:
            _answer_rows(rows, args, settings, sys.stdout)
            return 0
        with open(args.out, "w", encoding="utf-8") as out:
            _answer_rows(rows, args, settings, out)
        return 0
    if args.question is None:
        from rag.errors import QuestionError
        raise QuestionError("Give a question, or --batch FILE of questions.")
    answer, streamed = None, []
    for item in ask_stream(args.question, mode=args.mode, k=args.k, settings=settings):
        if isinstance(item, str):
            streamed.append(item)
            if not args.json:
                print(item, end="", flush=True)
        elif isinstance(item, Answer):  # not the Retrieved: the cited papers are listed below
            answer = item
    if args.json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=1))
        return 0
    print("\n")
    if answer.text.strip() != "".join(streamed).strip():
        # The checks changed what was streamed (a paper named, an unsupported claim or a
        # number no source writes removed): the checked answer is the one that counts.
        print(f"Checked answer:\n{answer.text}\n")
    for c in answer.citations:
        print(f"[{c.n}] {c.title}\n    \"{c.quote}\"")
    return 0


def cmd_eval(args) -> int:
    from rag.evaluation import evaluate, format_table

    settings = _settings(args)
    gold = _read_batch(Path(args.gold))
    t0 = time.perf_counter()
    with open(args.pred_out or "/dev/null", "w", encoding="utf-8") as out:
        preds = _answer_rows(gold, args, settings, out)
    result = evaluate(gold, preds)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(format_table(result))
        print(f"{len(gold)} questions in {time.perf_counter() - t0:.1f} s, mode "
              f"{args.mode or settings.llm.mode}")
    return 0


def why_build(settings) -> tuple[str, list[Path]] | None:
    """Why `serve` builds the index before serving, and from what: there is none yet (the
    configured sources), or the live one is in a format this askpapers no longer reads (the
    sources it was built from, so a library added with --source stays in). None when the
    live index is usable; other damage is reported by serving."""
    from rag import store

    build = store.current_build(settings.index_dir)
    if build is None:
        sources = list(settings.sources)
        return (f"No index yet at {settings.index_dir}; building it from {_listed(sources)} "
                "(first run only).", sources)
    try:
        manifest = store.read_manifest(build)
        store.check_format(manifest, build)
    except IndexMismatchError as e:
        sources = store.recorded_sources(manifest) or list(settings.sources)
        return f"{str(e).split(';')[0]}; rebuilding it from {_listed(sources)}.", sources
    except AskPapersError:
        return None
    return None


def _listed(paths: list[Path]) -> str:
    return ", ".join(str(p) for p in paths)


def cmd_serve(args) -> int:
    from ui.app import serve

    settings = _settings(args)
    if args.warm:
        settings = settings.model_copy(update={
            "llm": settings.llm.model_copy(update={"warm_papers": True})})
    build = None if args.no_build else why_build(settings)
    if build:
        reason, sources = build
        print(reason, file=sys.stderr)
        build_with_progress(settings, sources)
    return serve(settings, host=args.host, port=args.port, auth=args.auth, share=args.share,
                 allowed_hosts=args.allowed_host or [], api_key=args.api_key)


def cmd_mcp(args) -> int:
    from ui.mcp_server import run_stdio

    return run_stdio(_settings(args))


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="askpapers", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)

    idx = sub.add_parser("index", help="build or inspect the index").add_subparsers(
        dest="index_command", required=True)
    b = idx.add_parser("build", help="build or refresh the index (incremental by default)")
    b.add_argument("--source", action="append", metavar="PATH",
                   help="file or folder to index (repeatable; default: the seeds)")
    b.add_argument("--index-dir", metavar="DIR", help="where the index lives")
    b.add_argument("--full", action="store_true", help="re-embed everything")
    b.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="read, chunk and embed on a Ray cluster: auto, HOST:PORT or "
                   "ray://HOST:PORT; alone, a Ray started here on 127.0.0.1 "
                   "(needs pip install 'askpapers[scale]')")
    b.set_defaults(func=cmd_index_build)
    i = idx.add_parser("info", help="what the index holds")
    i.add_argument("--index-dir", metavar="DIR")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_index_info)
    v = idx.add_parser("verify", help="check every index file against its manifest, in full")
    v.add_argument("--index-dir", metavar="DIR")
    v.set_defaults(func=cmd_index_verify)
    w = idx.add_parser("warm", help="read each paper once with the local model and save its "
                       "state, so questions about it start in about a second")
    w.add_argument("--index-dir", metavar="DIR")
    w.add_argument("--limit", type=int, metavar="N", help="only the first N papers")
    w.set_defaults(func=cmd_index_warm)

    a = sub.add_parser("ask", help="answer a question with citations")
    a.add_argument("question", nargs="?")
    a.add_argument("--mode", choices=MODES)
    a.add_argument("--k", type=int, help="papers to retrieve")
    a.add_argument("--json", action="store_true", help="print the whole Answer as JSON")
    a.add_argument("--batch", metavar="FILE", help='JSONL of {"id", "question"} lines')
    a.add_argument("--out", metavar="FILE", help="with --batch: write predictions here")
    a.add_argument("--index-dir", metavar="DIR")
    a.set_defaults(func=cmd_ask)

    e = sub.add_parser("eval", help="answer a gold set and print its metrics")
    e.add_argument("--gold", required=True, metavar="FILE")
    e.add_argument("--mode", choices=MODES)
    e.add_argument("--k", type=int)
    e.add_argument("--pred-out", metavar="FILE", help="also write the predictions")
    e.add_argument("--json", action="store_true")
    e.add_argument("--index-dir", metavar="DIR")
    e.set_defaults(func=cmd_eval)

    s = sub.add_parser("serve", help="run the chat UI")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=7860)
    s.add_argument("--auth", metavar="USER:PASS or FILE",
                   help="required to serve beyond loopback or with --share")
    s.add_argument("--share", action="store_true", help="ask Gradio for a public link")
    s.add_argument("--allowed-host", action="append", metavar="NAME[:PORT]",
                   help="also answer requests addressed to this host name (repeatable; "
                   "*.DOMAIN for its subdomains); loopback names and --host always are")
    s.add_argument("--api-key", metavar="KEY",
                   help="bearer key the HTTP API and /mcp require (default: $ASKPAPERS_API_KEY); "
                   "without one they refuse every request off loopback")
    s.add_argument("--no-build", action="store_true", help="don't build a missing index")
    s.add_argument("--warm", action="store_true", help="local mode: read each paper once in "
                   "the background, stopping for questions, so later questions about it start "
                   "in about a second (as `askpapers index warm`)")
    s.add_argument("--index-dir", metavar="DIR")
    s.set_defaults(func=cmd_serve)

    m = sub.add_parser("mcp", help="serve the MCP tools on stdin/stdout (for MCP clients)")
    m.add_argument("--index-dir", metavar="DIR")
    m.set_defaults(func=cmd_mcp)
    return p


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a reader that left shows here, not as noise at interpreter exit
        return code
    except AskPapersError as e:
        print(f"askpapers: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("askpapers: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _drop_stdout()
        return 141  # 128 + SIGPIPE, what a shell tool stopped by a closed pipe returns


def _drop_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass  # stdout is not a real file (tests capture it): nothing left to flush


if __name__ == "__main__":
    sys.exit(main())
