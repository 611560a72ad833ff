"""UI latency in a real browser: `askpapers serve` start -> first page, and Enter -> first
streamed text / final answer in headless Chromium, for one answer mode.

Usage: python bench/ui_latency.py --home DIR [--mode extractive|local] [--out FILE]
The home must hold a built index (askpapers index build). Writes bench/results/ui_<mode>.json.
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
QUESTIONS = ["What FID does classifier guidance reach on ImageNet 256x256?",
             "Which loss replaces Pseudo-Huber in latent consistency models?"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def ask_in_browser(page, i: int, question: str, limit_s: float = 300) -> tuple[float, float]:
    box = page.locator("#ap-question textarea")
    box.fill(question)
    t0 = time.perf_counter()
    box.press("Enter")
    bot = page.locator("#ap-chat .message-row.bot-row").nth(i)
    first = None
    while time.perf_counter() - t0 < limit_s:
        if bot.count():
            text = bot.inner_text().strip()
            if first is None and text and text != "…":
                first = time.perf_counter() - t0
            if bot.locator("a.ap-cite").count() or "Could not answer" in text:
                return first, time.perf_counter() - t0
        time.sleep(0.02)
    raise TimeoutError(f"no answer to {question!r} within {limit_s} s")


def main() -> int:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", required=True)
    ap.add_argument("--mode", default="extractive")
    ap.add_argument("--out")
    args = ap.parse_args()
    port = free_port()
    env = {**os.environ, "ASKPAPERS_HOME": args.home, "ASKPAPERS_LLM__MODE": args.mode,
           "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ui.cli", "serve", "--port", str(port),
                             "--no-build"], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result = {"mode": args.mode}
    try:
        url = f"http://127.0.0.1:{port}/"
        result["serve_to_first_page_s"] = round(wait_for_page(url), 2)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                        args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(url)
            for i, q in enumerate(QUESTIONS):
                first, final = ask_in_browser(page, i, q)
                result[f"q{i + 1}_first_text_s"] = round(first, 2)
                result[f"q{i + 1}_final_answer_s"] = round(final, 2)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    for key, value in result.items():
        print(f"{key:<24} {value}")
    out = Path(args.out or REPO / "bench" / "results" / f"ui_{args.mode}.json")
    out.write_text(json.dumps({**result, "provenance": provenance()}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
