"""UI latency in headless Chromium: Enter -> sources visible, first text, final answer.

`askpapers serve` start -> first page, then for each of N questions, Enter -> the first
paper card in the sources panel, the first streamed text and the final answer; p50/p90
over the N, for one answer mode.

Usage: python bench/ui_latency.py --home DIR [--mode extractive|local] [--n 10]
                                  [--gold ../shared/eval/dev.jsonl] [--out FILE]
The home must hold a built index (askpapers index build). One untimed question first
loads the index, the embedder and the model; each timed question starts a fresh chat.
Times are taken in the page (from the Enter keydown). Writes bench/results/ui_<mode>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from provenance import provenance  # bench/provenance.py

REPO = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
WARM_UP = "What FID does classifier guidance reach on ImageNet 256x256?"
MEASURES = ("sources_visible_s", "first_text_s", "final_answer_s")

# Marks, in ms after the Enter keydown, when the page first shows: a paper card of the
# current turn in the sources panel, answer text in the last bot message, and the final
# answer (the answer's own panel, or an error line). A MutationObserver sees each change
# as it is rendered, which polling from Python would see late.
WATCH = """() => {
  const marks = window.__apMarks = {};
  document.addEventListener("keydown", ev => {
    if (ev.key === "Enter") marks.t0 = performance.now();
  }, {capture: true, once: true});
  const observer = new MutationObserver(() => {
    if (marks.t0 === undefined) return;
    const at = performance.now() - marks.t0;
    const turn = document.querySelector("#ap-sources .ap-current");
    const card = turn && turn.querySelector(".ap-src");
    if (marks.sources === undefined && card && card.offsetParent !== null) marks.sources = at;
    const bots = document.querySelectorAll("#ap-chat .message-row.bot-row");
    const text = bots.length ? bots[bots.length - 1].innerText.trim() : "";
    if (marks.text === undefined && text && text !== "\u2026") marks.text = at;
    const final = turn && (turn.querySelector(".ap-note") || turn.innerText.startsWith("Sources for:"));
    if (final || text.startsWith("Could not answer")) {
      marks.final = at;
      marks.error = !final;
      observer.disconnect();
    }
  });
  observer.observe(document.body, {subtree: true, childList: true, characterData: true,
                                   attributes: true});
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def wait_for_page(url: str, limit_s: float = 120) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return time.perf_counter() - t0
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {limit_s} s")


def clear_chat(page) -> None:
    """Start a fresh chat, so no question is searched as a follow-up of the one before."""
    page.locator("#ap-clear").click()
    page.wait_for_function("() => !document.querySelector('#ap-chat .message-row, #ap-sources .ap-src')")


def ask_in_browser(page, question: str, limit_s: float = 600) -> dict:
    """The page's marks for one question, in seconds after Enter. Raises TimeoutError."""
    clear_chat(page)
    box = page.locator("#ap-question textarea")
    box.fill(question)
    page.evaluate(WATCH)
    box.press("Enter")
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline:
        marks = page.evaluate("() => window.__apMarks")
        if "final" in marks:
            return {"sources_visible_s": _seconds(marks.get("sources")),
                    "first_text_s": _seconds(marks.get("text")),
                    "final_answer_s": _seconds(marks["final"]), "error": marks["error"]}
        time.sleep(0.05)
    raise TimeoutError(f"no answer to {question!r} within {limit_s} s")


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else round(ms / 1000, 3)


def summary(runs: list[dict]) -> dict:
    """p50, p90, min and max of each measure over the questions that gave it."""
    out = {}
    for name in MEASURES:
        values = [r[name] for r in runs if r[name] is not None]
        out[name] = {"p50": pct(values, .5), "p90": pct(values, .9), "min": min(values),
                     "max": max(values), "n": len(values)} if values else None
    return out


def table(stats: dict) -> str:
    lines = [f"{'Enter ->':<20}{'p50 s':>8}{'p90 s':>8}{'min s':>8}{'max s':>8}{'n':>4}",
             "-" * 56]
    for name, s in stats.items():
        if s:
            lines.append(f"{name.removesuffix('_s'):<20}{s['p50']:>8.3f}{s['p90']:>8.3f}"
                         f"{s['min']:>8.3f}{s['max']:>8.3f}{s['n']:>4}")
    return "\n".join(lines)


def measure(url: str, questions: list[str]) -> tuple[dict, list[dict]]:
    """(the untimed warm-up question's marks, one record per timed question)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(url)
        warm = ask_in_browser(page, WARM_UP)
        runs = []
        for q in questions:
            runs.append({"question": q, **ask_in_browser(page, q)})
            print(f"  {runs[-1]['sources_visible_s']} s sources, {runs[-1]['final_answer_s']} s "
                  f"final: {q[:60]}", flush=True)
        browser.close()
    return warm, runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", required=True)
    ap.add_argument("--mode", default="extractive")
    ap.add_argument("--n", type=int, default=10, help="questions timed (the first N of --gold)")
    ap.add_argument("--gold", default=str(REPO.parent / "shared" / "eval" / "dev.jsonl"))
    ap.add_argument("--out")
    args = ap.parse_args()
    questions = [json.loads(line)["question"] for line in open(args.gold, encoding="utf-8")
                 if line.strip()][:args.n]
    port = free_port()
    env = {**os.environ, "ASKPAPERS_HOME": args.home, "ASKPAPERS_LLM__MODE": args.mode,
           "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ui.cli", "serve", "--port", str(port),
                             "--no-build"], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    load_start = os.getloadavg()
    try:
        url = f"http://127.0.0.1:{port}/"
        first_page = round(wait_for_page(url), 2)
        warm, runs = measure(url, questions)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    stats = summary(runs)
    print(f"\nmode {args.mode}, {len(runs)} questions; serve -> first page {first_page} s; "
          f"warm-up question: sources {warm['sources_visible_s']} s, final {warm['final_answer_s']} s")
    print(table(stats))
    result = {"mode": args.mode, "questions": len(runs), "serve_to_first_page_s": first_page,
              "warm_up": warm, **stats, "errors": sum(r["error"] for r in runs), "runs": runs}
    out = Path(args.out or REPO / "bench" / "results" / f"ui_{args.mode}.json")
    extra = {"load_average_start": [round(x, 2) for x in load_start],
             "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    out.write_text(json.dumps({**result, "provenance": provenance(**extra)}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
