"""Load test: concurrent simulated users on the served chat app, through gradio_client.

Starts `python -m ui --port P` on a home holding a built index, then runs simulated users in
threads: each asks "What does <title> propose?" about indexed papers, one after the other in
its own session, and checks every answer (it must cite the paper the user asked about, the
session's history must hold exactly this user's own questions, so no answer arrived in the
wrong session). Runs extractive mode at full size, then a short local-model run (0.5B).
Reports errors, latency p50/p95 and the server's RSS (/proc/PID/status VmRSS) at start and
end, against a stated bound on growth.

Usage: python bench/load_test.py --home HOME [--users 20] [--questions 500]
       [--local-users 3] [--local-questions 2] [--out bench/results/load.json]
(HOME must hold an index: `ASKPAPERS_HOME=HOME askpapers index build`.)
"""
from __future__ import annotations

import argparse
import html
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from provenance import provenance  # noqa: E402  (bench/provenance.py)

from rag import store  # noqa: E402
from rag.config import load_settings  # noqa: E402

# Memory may grow while the run warms up (allocator pools, per-thread buffers, each new
# session's state); a leak keeps growing. The bound is on the second half of the run:
# RSS when half the questions are answered vs at the end. Stated here, checked in the table.
RSS_GROWTH_BOUND_MB = 50


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB, from /proc (no psutil needed)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Server:
    """`python -m ui` on a loopback port with its own environment; stopped by its PID."""

    def __init__(self, home: Path, mode: str, **env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("ASKPAPERS_")}
        environ.update({"ASKPAPERS_HOME": str(home), "ASKPAPERS_LLM__MODE": mode,
                        "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", **env})
        self.log = home / f"load-{self.port}.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ui", "--port", str(self.port), "--no-build"],
                cwd=REPO, env=environ, stdout=out, stderr=subprocess.STDOUT)

    def wait(self, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url, timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"the app did not answer within {timeout_s} s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _text(message: dict) -> str:
    content = message["content"]
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


def _unescape(markdown: str) -> str:
    return html.unescape(re.sub(r"\\(.)", r"\1", markdown))


def check_turn(messages: list, panel: str, asked: list[str], titles: list[str]) -> tuple[str, str]:
    """(problem, cited) for one reply: problem is '' when the reply belongs to this session
    and is a cited answer; cited is 'asked' (the paper just asked about), 'earlier' (a paper
    this user asked about before) or 'other'."""
    users = [_unescape(_text(m)) for m in messages if m["role"] == "user"]
    if users != asked:
        return f"wrong session: history holds {len(users)} user turns, not its own {len(asked)}", ""
    reply = _text(messages[-1])
    if "Could not answer" in reply:
        return "error: " + reply[:200], ""
    cited = re.findall(r'href="#(src-\d+-\d+)"', reply)
    if not cited:
        return "no citation: " + reply[:200], ""
    panel_titles = dict(re.findall(r'id="(src-\d+-\d+)"[^>]*><div class="ap-title">'
                                   r'<span class="ap-n">\[\d+\]</span> (.*?)</div>', panel))
    got = {html.unescape(panel_titles.get(c, "")) for c in cited}
    if titles[-1] in got:
        return "", "asked"
    return "", "earlier" if got & set(titles[:-1]) else "other"


def serves_outside_files(url: str) -> bool:
    """True if the app hands out a file outside its own (it must not)."""
    for path in ("gradio_api/file=/etc/passwd", "file=/etc/passwd", "gradio_api/file=../../etc/passwd"):
        try:
            with urllib.request.urlopen(url + path, timeout=5) as r:
                if b"root:" in r.read():
                    return True
        except OSError:
            pass
    return False


def user(url: str, titles: list[str], mode: str, rows: list, lock: threading.Lock) -> None:
    """One simulated user: its own session, one question per title, in order."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    asked: list[str] = []
    for i, title in enumerate(titles):
        question = f"What does “{title}” propose?"
        asked.append(question)
        t0 = time.perf_counter()
        try:
            messages, panel, _ = client.predict(question, mode, 5, "", None, "", "",
                                                api_name="/chat")
            problem, cited = check_turn(messages, panel, asked, titles[:i + 1])
        except Exception as e:  # noqa: BLE001 - a failed request is counted, not raised
            problem, cited = f"{type(e).__name__}: {e}"[:300], ""
        with lock:
            rows.append({"seconds": time.perf_counter() - t0, "problem": problem,
                         "cited": cited, "title": title, "turn": len(asked)})


def sample_rss(pid: int, rows: list, samples: list, stop: threading.Event) -> None:
    """(questions answered, RSS MB) every second while the run lasts."""
    while not stop.wait(1.0):
        samples.append((len(rows), round(rss_mb(pid), 1)))


def run(home: Path, mode: str, n_users: int, n_questions: int, titles: list[str],
        rng: random.Random, **env) -> dict:
    server = Server(home, mode, **env)
    try:
        server.wait()
        rows: list = []
        lock = threading.Lock()
        user(server.url, [rng.choice(titles)], mode, [], lock)  # warm: index, embedder, model
        leaks_files = serves_outside_files(server.url)
        rss_start = rss_mb(server.proc.pid)
        # Disjoint titles per user, so a paper cited in the wrong session would be noticed.
        pool = rng.sample(titles, len(titles))
        groups = [pool[i::n_users] for i in range(n_users)]
        per_user = [[g[j % len(g)] for j in range(n_questions // n_users + (i < n_questions % n_users))]
                    for i, g in enumerate(groups)]
        samples: list = []
        stop = threading.Event()
        monitor = threading.Thread(target=sample_rss,
                                   args=(server.proc.pid, rows, samples, stop), daemon=True)
        t0 = time.perf_counter()
        threads = [threading.Thread(target=user, args=(server.url, ts, mode, rows, lock))
                   for ts in per_user]
        monitor.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        stop.set()
        rss_end = rss_mb(server.proc.pid)
        half = [mb for done, mb in samples if done >= n_questions // 2] or [rss_end]
        alive = server.proc.poll() is None
    finally:
        server.stop()
    lat = sorted(r["seconds"] for r in rows)
    problems = [r for r in rows if r["problem"]]
    return {"mode": mode, "users": n_users, "questions": len(rows), "errors": len(problems),
            "server_alive_at_end": alive, "serves_files_outside": leaks_files, "wall_s": round(wall, 1),
            "p50_s": round(statistics.median(lat), 3),
            "p95_s": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 3),
            "rss_start_mb": round(rss_start, 1), "rss_end_mb": round(rss_end, 1),
            "rss_growth_mb": round(rss_end - rss_start, 1),
            "rss_at_half_mb": half[0], "rss_growth_second_half_mb": round(rss_end - half[0], 1),
            "rss_within_bound": rss_end - half[0] <= RSS_GROWTH_BOUND_MB,
            "rss_samples": samples[::max(1, len(samples) // 40)],
            "cited_asked": sum(r["cited"] == "asked" for r in rows),
            "cited_earlier_own": sum(r["cited"] == "earlier" for r in rows),
            "cited_other": sum(r["cited"] == "other" for r in rows),
            "problems": problems[:20],
            "not_citing_asked": [r["title"] for r in rows if r["cited"] == "other"][:20]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", required=True, type=Path)
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--questions", type=int, default=500)
    ap.add_argument("--local-users", type=int, default=3)
    ap.add_argument("--local-questions", type=int, default=2, help="per user")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "load.json"))
    args = ap.parse_args()
    settings = load_settings(home=args.home)
    index = store.load_index(settings.index_dir, settings)
    # Titles short enough to quote whole and long enough to be specific.
    titles = sorted(p.title for p in index.papers.values() if 20 <= len(p.title) <= 120)
    rng = random.Random(args.seed)
    runs = [run(args.home, "extractive", args.users, args.questions, titles, rng)]
    if args.local_users:
        runs.append(run(args.home, "local", args.local_users,
                        args.local_users * args.local_questions, titles, rng,
                        ASKPAPERS_LLM__LOCAL_MODEL="0.5b"))
    print(f"\n{'mode':<11}{'users':>6}{'questions':>10}{'errors':>7}{'cites asked':>12}"
          f"{'p50 s':>8}{'p95 s':>8}{'RSS start':>10}{'half':>7}{'end':>7}"
          f"  2nd-half growth (bound {RSS_GROWTH_BOUND_MB} MB)")
    for r in runs:
        print(f"{r['mode']:<11}{r['users']:>6}{r['questions']:>10}{r['errors']:>7}"
              f"{r['cited_asked']:>12}{r['p50_s']:>8.2f}{r['p95_s']:>8.2f}"
              f"{r['rss_start_mb']:>9.0f}M{r['rss_at_half_mb']:>6.0f}M{r['rss_end_mb']:>6.0f}M"
              f"  {r['rss_growth_second_half_mb']:+.0f} MB "
              f"{'ok' if r['rss_within_bound'] else 'EXCEEDED'}")
        print(f"{'':<11}answers citing the user's own earlier paper instead: "
              f"{r['cited_earlier_own']}, another paper: {r['cited_other']}")
        for p in r["problems"][:5]:
            print("   ", p["problem"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"provenance": provenance(settings), "rss_growth_bound_mb": RSS_GROWTH_BOUND_MB,
                                          "runs": runs}, indent=1) + "\n")
    ok = all(r["errors"] == 0 and r["rss_within_bound"] and r["server_alive_at_end"]
             and not r["serves_files_outside"]
             for r in runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
