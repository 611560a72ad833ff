"""The chat app in a real headless Chromium: ask, follow a citation, follow up, vote, stream."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from test_ui import QUESTION, served_app

pytestmark = pytest.mark.slow

# Screenshots go to the test's temp folder; docs/refresh_screenshot.py sets this variable to
# refresh the README's docs/screenshot.png on purpose.
SCREENSHOT_TO = "REFRESH_SCREENSHOT_TO"  # not ASKPAPERS_*: conftest clears those
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
LAST_BOT = "#ap-chat .message-row.bot-row >> nth=-1"
OFF_TOPIC = "Which paper gives a recipe for sourdough bread fermentation times?"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "install Debian's chromium: apt-get install -y chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A page that records every request leaving the loopback server."""
    pg = browser.new_page(viewport={"width": 1440, "height": 1000})
    pg.outside = []
    pg.on("request", lambda r: None if r.url.startswith(("http://127.0.0.1", "data:", "blob:"))
          else pg.outside.append(r.url))
    yield pg
    pg.close()


def _ask(page, question: str) -> None:
    box = page.locator("#ap-question textarea")
    box.fill(question)
    box.press("Enter")


def _bot_count(page) -> int:
    return page.locator("#ap-chat .message-row.bot-row").count()


def test_ask_cite_follow_up_vote_and_screenshot(page, seed_settings, tmp_path):
    with served_app(tmp_path / "home", seed_settings.index_dir) as (url, home):
        page.goto(url)
        _ask(page, QUESTION)
        cite = page.locator("#ap-chat a.ap-cite").first
        cite.wait_for(timeout=60_000)
        target = cite.get_attribute("href").lstrip("#")
        cite.click()
        card = page.locator(f"#ap-sources #{target}")
        card.wait_for(state="visible")
        assert "ap-selected" in card.get_attribute("class")
        assert card.locator("mark").count() >= 1 and card.locator(".ap-title").inner_text()
        assert card.locator(".ap-title").inner_text().split("] ", 1)[1] in page.locator(
            "#ap-sources .ap-current").inner_text()
        page.locator("#ap-chat button[aria-label='Like']").last.click()
        votes = home / "feedback.jsonl"
        # The file appears when opened for appending, a moment before its line is written.
        _wait_for(lambda: votes.is_file() and votes.read_text().endswith("\n"), "feedback written")
        vote = json.loads(votes.read_text().splitlines()[-1])
        assert vote["vote"] == "up" and vote["question"] == QUESTION
        shot = Path(os.environ.get(SCREENSHOT_TO) or tmp_path / "screenshot.png")
        page.screenshot(path=str(shot))
        assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000

        _ask(page, "and on ImageNet 512x512?")
        _wait_for(lambda: page.locator("#ap-chat a.ap-cite[href^='#src-1-']").count() > 0,
                  "a second, cited answer")
        assert _bot_count(page) == 2
        assert page.outside == [], f"the page fetched from the network: {page.outside}"


def _wait_for(condition, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _streamed_lengths(page, timeout_s: float = 120) -> list[int]:
    """Lengths of the last answer's text, polled until its citations (final answer) show."""
    lengths, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        bot = page.locator(LAST_BOT)
        if bot.count():
            lengths.append(len(bot.inner_text()))
            text = bot.inner_text()
            # Final: citations shown, an error, or a reply that no paper answers it.
            if bot.locator("a.ap-cite").count() or "Could not answer" in text \
                    or "don't answer this question" in text:
                return lengths
        time.sleep(0.05)
    raise AssertionError(f"no final answer within {timeout_s} s; lengths seen {lengths[-5:]}")


def test_local_model_streams_incrementally(page, seed_settings, small_gguf, tmp_path):
    env = {"ASKPAPERS_LLM__MODEL_PATH": str(small_gguf), "ASKPAPERS_LLM__LOCAL_MODEL": "0.5b"}
    with served_app(tmp_path / "home", seed_settings.index_dir, mode="local", **env) as (url, _):
        page.goto(url)
        _ask(page, QUESTION)
        lengths = _streamed_lengths(page)
        growing = sorted({n for n in lengths if n > 0})
        assert "Could not answer" not in page.locator(LAST_BOT).inner_text()
        assert len(growing) >= 4, f"the answer arrived in too few steps: {growing}"


def test_sources_show_while_the_local_answer_is_written(page, seed_settings, small_gguf, tmp_path):
    """Enter -> the first paper in the sources panel, with the local model: the papers show
    before the answer is done. The time is printed, not asserted (bench/ui_latency.py)."""
    env = {"ASKPAPERS_LLM__MODEL_PATH": str(small_gguf), "ASKPAPERS_LLM__LOCAL_MODEL": "0.5b"}
    with served_app(tmp_path / "home", seed_settings.index_dir, mode="local", **env) as (url, _):
        page.goto(url)
        _ask(page, OFF_TOPIC)  # loads the index and embedder; abstains without the model
        _streamed_lengths(page, timeout_s=600)
        box, panel = page.locator("#ap-question textarea"), page.locator("#ap-sources")
        box.fill(QUESTION)
        t0 = time.monotonic()
        box.press("Enter")
        panel.locator(".ap-turn[data-turn='1'] .ap-src").first.wait_for(state="visible",
                                                                        timeout=600_000)
        sources_s = time.monotonic() - t0
        shown_then = panel.locator(".ap-current").inner_text()
        cited_then = page.locator("#ap-chat a.ap-cite").count()
        _streamed_lengths(page, timeout_s=600)  # a crowded machine writes slowly
        done_s = time.monotonic() - t0
        print(f"\nlocal 0.5B: question sent -> sources visible {sources_s:.2f} s, "
              f"-> answer done {done_s:.2f} s")
        assert "Papers found for:" in shown_then and cited_then == 0  # the answer was not done
        # Then its own panel: the chat and the panel come in one update, but the page may
        # draw the chat first, so wait (a few seconds at most) rather than read at once.
        panel.locator(".ap-current .ap-q", has_text="Sources for:").wait_for(timeout=30_000)
        assert "Could not answer" not in page.locator(LAST_BOT).inner_text()


def test_upload_papers_ask_them_and_export_bibtex(page, index_copy, tmp_path):
    """Upload a .bib from the page, watch the index grow, ask about the new paper, follow
    its link in the sources panel and download the cited papers as BibTeX."""
    from test_bib_readers import BIB

    from rag import store

    before = store.read_manifest(store.current_build(index_copy.index_dir))["counts"]["papers"]
    bib = tmp_path / "library.bib"
    bib.write_text(BIB, encoding="utf-8")
    with served_app(tmp_path / "home", index_copy.index_dir,
                    ASKPAPERS_HOME=str(index_copy.home)) as (url, _):
        page.goto(url)
        page.get_by_text("Settings and index").click()
        page.locator("#ap-upload input[type=file]").set_input_files(str(bib))
        # The status may sit in a closed panel (the page's load event closes it): attached.
        page.locator("#ap-status").get_by_text(f"{before + 2} papers").wait_for(
            state="attached", timeout=300_000)
        _ask(page, "What FID does Lantern sampling reach on ImageNet?")
        link = page.locator("#ap-sources .ap-current a.ap-link").first
        link.wait_for(timeout=60_000)
        assert link.get_attribute("href") == "https://doi.org/10.1234/lantern.2024"
        assert link.get_attribute("rel") == "noopener noreferrer nofollow"
        with page.expect_download() as download:
            page.locator("#ap-bibtex").click()
        text = Path(download.value.path()).read_text(encoding="utf-8")
        assert text.startswith("@article{lovelace2024lantern,") and "10.1234/lantern.2024" in text
        assert page.outside == [], f"the page fetched from the network: {page.outside}"
