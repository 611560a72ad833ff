"""API overhead: extractive answers through POST /v1/chat/completions (not streamed) against
`rag.ask()` in process, on the same questions, each warm. Target: the API adds <= 20 ms p50.

The server is the real app (`python -m ui`) on 127.0.0.1 over the same index; requests go
one at a time with httpx (kept-alive connection). `--local` also times the first streamed
token of a local-model answer through the API and through the UI (gradio_client).

Usage: python bench/api_bench.py [--home DIR] [--gold ../shared/eval/dev.jsonl] [--n 40]
           [--repeats 3] [--local 0] [--out bench/results/api.json]
Builds the seed index under --home first if none is there.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from run_info import RESULTS, commit, machine  # noqa: E402


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, mode: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASKPAPERS_")}
    env.update({"ASKPAPERS_HOME": str(home), "ASKPAPERS_LLM__MODE": mode, "HF_HUB_OFFLINE": "1"})
    log = open(home / f"api-bench-{port}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "ui", "--port", str(port), "--no-build"],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(url + "/v1/models", timeout=2):
                return proc, url
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited; see {log.name}") from None
            time.sleep(0.3)
    raise RuntimeError("server did not start")


def time_pairs(questions: list[str], settings, url: str, repeats: int) -> tuple[list, list]:
    """(ask() seconds, API seconds), each question timed both ways back to back, so drifting
    machine load hits both alike; everything is warmed by one untimed pass first."""
    import httpx

    from rag import ask

    lib, api = [], []
    with httpx.Client(base_url=url, timeout=120) as client:
        def post(q: str) -> None:
            r = client.post("/v1/chat/completions", json={
                "model": "askpapers-extractive", "messages": [{"role": "user", "content": q}]})
            r.raise_for_status()

        for q in questions:
            ask(q, mode="extractive", settings=settings)
            post(q)
        for _ in range(repeats):
            for q in questions:
                t0 = time.perf_counter()
                ask(q, mode="extractive", settings=settings)
                t1 = time.perf_counter()
                post(q)
                t2 = time.perf_counter()
                lib.append(t1 - t0)
                api.append(t2 - t1)
    return lib, api


def first_token_api(url: str, question: str) -> float:
    import httpx

    t0 = time.perf_counter()
    with httpx.stream("POST", url + "/v1/chat/completions", timeout=600, json={
            "model": "askpapers-local", "stream": True,
            "messages": [{"role": "user", "content": question}]}) as r:
        for line in r.iter_lines():
            if line.startswith("data: {") and '"content": "' in line and '"content": ""' not in line:
                return time.perf_counter() - t0
    return float("nan")


def first_tokens(url: str, questions: list[str], n: int) -> list[dict]:
    """First-token times of n local answers through the API and the UI. Before each timed
    answer another question is answered, so neither door finds the other's prompt in the
    model's KV cache (the second asker of a question would start with it all cached)."""
    import httpx

    def flush(i: int) -> None:
        httpx.post(url + "/v1/chat/completions", timeout=600, json={
            "model": "askpapers-local", "messages": [
                {"role": "user", "content": questions[-1 - i % (len(questions) - n)]}]})

    rows = []
    for i, q in enumerate(questions[:n]):
        doors = [("api_s", first_token_api), ("ui_s", first_token_ui)]
        row = {"question": q}
        for name, door in doors if i % 2 == 0 else doors[::-1]:
            flush(i)
            row[name] = door(url, q)
        rows.append(row)
    return rows


def first_token_ui(url: str, question: str) -> float:
    from gradio_client import Client

    client = Client(url + "/", verbose=False)
    t0 = time.perf_counter()
    job = client.submit(question, "local", 5, "", None, "", "", api_name="/chat")
    while not job.done():
        for out in job.outputs():  # (chat messages, sources panel, question box)
            if _has_text(out[0] if isinstance(out, (list, tuple)) else []):
                return time.perf_counter() - t0
        time.sleep(0.01)
    return time.perf_counter() - t0


def _has_text(messages) -> bool:
    """True when the assistant's reply shows text (not the empty-stream ellipsis)."""
    if len(messages or []) < 2:
        return False
    content = messages[-1].get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content).strip() not in ("", "&hellip;", "\u2026")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", default=None)
    ap.add_argument("--gold", default=str(REPO.parent / "shared" / "eval" / "dev.jsonl"))
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--local", type=int, default=0, help="questions for the first-token comparison")
    ap.add_argument("--out", default=str(RESULTS / "api.json"))
    args = ap.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    from rag import store
    from rag.config import load_settings

    home = Path(args.home or tempfile.mkdtemp(prefix="api-bench-"))
    settings = load_settings(home=home)
    if store.current_build(settings.index_dir) is None:
        from index.build import build_index
        build_index(settings)
    questions = [json.loads(line)["question"] for line in
                 Path(args.gold).read_text(encoding="utf-8").splitlines() if line.strip()][:args.n]
    load_start = os.getloadavg()
    proc, url = start_server(home, "extractive")
    try:
        lib, api = time_pairs(questions, settings, url, args.repeats)
        ft = first_tokens(url, questions, args.local)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    row = {"ask_p50_ms": 1000 * statistics.median(lib), "api_p50_ms": 1000 * statistics.median(api),
           "ask_p95_ms": 1000 * pct(lib, 0.95), "api_p95_ms": 1000 * pct(api, 0.95)}
    row["overhead_p50_ms"] = row["api_p50_ms"] - row["ask_p50_ms"]
    row["paired_overhead_p50_ms"] = 1000 * statistics.median(b - a for a, b in zip(lib, api, strict=True))
    print(f"{'path':<28} {'p50 ms':>8} {'p95 ms':>8}")
    print(f"{'rag.ask() in process':<28} {row['ask_p50_ms']:>8.1f} {row['ask_p95_ms']:>8.1f}")
    print(f"{'/v1/chat/completions':<28} {row['api_p50_ms']:>8.1f} {row['api_p95_ms']:>8.1f}")
    print(f"API overhead: p50 {row['overhead_p50_ms']:.1f} ms, median of paired differences "
          f"{row['paired_overhead_p50_ms']:.1f} ms (target <= 20 ms), {len(questions)} questions "
          f"x {args.repeats}, load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for f in ft:
        print(f"first token, local: API {f['api_s']:.2f} s, UI {f['ui_s']:.2f} s")
    result = {"commit": commit(), "settings": {"mode": "extractive", "questions": len(questions),
              "repeats": args.repeats, "gold": Path(args.gold).name, "k": settings.retrieval.k},
              "machine": machine(load_start),
              **{k: round(v, 2) for k, v in row.items()}, "first_token_local": ft}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
