"""Crash-safety trials: SIGKILL index rebuilds at random moments, then check the index.

Each trial copies a real seed index, starts `python -m ui.cli index build` on it (a full
build, or an incremental one where a few papers changed, whose short run puts the write
and publish phase within reach), kills it with SIGKILL at a time drawn uniformly over the
measured duration of that kind of build, and checks that the index loads, holds the old
or the new content in full (paper count and per-paper hashes of the manifest) and answers
with a citation. A last trial simulates a power cut mid-write (a half-written
builds/.tmp-* folder) and checks that the next build removes it.

Usage: python bench/crash_trials.py [--trials 20] [--full-share 0.4] [--span 1.0] [--seed 0]
       [--base-home HOME] [--out bench/results/crash_trials.json]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from provenance import provenance  # noqa: E402  (bench/provenance.py)

from rag import ask, store  # noqa: E402
from rag.config import load_settings  # noqa: E402

SEEDS = REPO / "seeds"
QUESTION = "what FID does classifier guidance reach?"
EDITED_PAPERS = 3


def edited_seeds(dest: Path, n: int = EDITED_PAPERS) -> Path:
    """A copy of the seeds in which `n` abstracts of the first page gained a sentence."""
    shutil.copytree(SEEDS, dest)
    page = sorted(dest.iterdir())[0]
    lines = page.read_text(encoding="utf-8").splitlines(keepends=True)
    done = 0
    for i, line in enumerate(lines):
        if done < n and len(line) > 400:  # abstract lines; titles are short
            lines[i] = line.rstrip("\n") + " This sentence marks a revised abstract.\n"
            done += 1
    page.write_text("".join(lines), encoding="utf-8")
    return dest


def content(settings) -> tuple[int, dict]:
    """(paper count, per-paper hashes) of the live build's manifest."""
    m = store.read_manifest(store.current_build(settings.index_dir))
    return m["counts"]["papers"], m["paper_hashes"]


def build_cmd(sources: Path, full: bool) -> list[str]:
    cmd = [sys.executable, "-m", "ui.cli", "index", "build", "--source", str(sources)]
    return cmd + (["--full"] if full else [])


def run_build(home: Path, sources: Path, full: bool, kill_at: float | None = None) -> dict:
    """Run one build on `home`; with kill_at, SIGKILL it after that many seconds."""
    env = {**os.environ, "ASKPAPERS_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    t0 = time.monotonic()
    proc = subprocess.Popen(build_cmd(sources, full), cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        proc.wait(timeout=kill_at)
        killed = False
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)  # only the build we started, by its id
        proc.wait()
        killed = True
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if not killed and proc.returncode != 0:
        raise RuntimeError(f"build failed ({proc.returncode}): {err[-2000:]}")
    return {"killed": killed, "seconds": time.monotonic() - t0, "returncode": proc.returncode}


def check_index(home: Path, old: tuple, new: tuple) -> dict:
    """Does the index at `home` load, hold the old or new content in full, and answer?"""
    settings = load_settings(home=home)
    out = {"loads": False, "content": None, "answers": False, "error": ""}
    try:
        store.load_index(settings.index_dir, settings)
        out["loads"] = True
        got = content(settings)
        out["content"] = "old" if got == old else "new" if got == new else "other"
        answer = ask(QUESTION, mode="extractive", settings=settings)
        out["answers"] = bool(answer.citations) and not answer.abstained
    except Exception as e:  # noqa: BLE001 - a trial records any failure as not survived
        out["error"] = f"{type(e).__name__}: {e}"
    out["leftovers"] = sorted(p.name for p in (settings.index_dir / "builds").glob(".tmp-*"))
    out["survived"] = out["loads"] and out["content"] in ("old", "new") and out["answers"]
    return out


def power_cut(base_home: Path, work: Path, sources: Path) -> dict:
    """A half-written temp build (as a power cut mid-write leaves it) is removed by the next build."""
    home = work / "power-cut"
    shutil.copytree(base_home, home, symlinks=True)
    stale = home / "index" / "builds" / ".tmp-20000101T000000000000-1"
    stale.mkdir()
    (stale / "records.sqlite").write_bytes(b"SQLite format 3\0half-writ")
    (stale / "vectors.faiss").write_bytes(b"\0" * 100)
    run_build(home, sources, full=False)
    left = sorted(p.name for p in (home / "index" / "builds").glob(".tmp-*"))
    shutil.rmtree(home, ignore_errors=True)
    return {"stale_removed": not stale.exists(), "leftovers": left,
            "survived": not stale.exists() and not left}


def prepare(work: Path, base_home: Path | None = None) -> dict:
    """A base index (old content), edited sources and the old/new contents and durations."""
    if base_home is None:
        base_home = work / "base"
        run_build(base_home, SEEDS, full=True)
    sources = edited_seeds(work / "edited-seeds")
    old = content(load_settings(home=base_home))
    probe = work / "probe"
    shutil.copytree(base_home, probe, symlinks=True)
    incremental_s = run_build(probe, sources, full=False)["seconds"]
    new = content(load_settings(home=probe))
    shutil.rmtree(probe)
    return {"base": base_home, "sources": sources, "old": old, "new": new,
            "incremental_s": incremental_s}


def trial(prep: dict, work: Path, i: int, full: bool, kill_at: float) -> dict:
    home = work / f"trial-{i}"
    shutil.copytree(prep["base"], home, symlinks=True)
    run = run_build(home, prep["sources"], full, kill_at)
    row = {"trial": i, "kind": "full" if full else "incremental", "kill_at_s": round(kill_at, 2),
           **run, **check_index(home, prep["old"], prep["new"])}
    shutil.rmtree(home, ignore_errors=True)
    return row


def run_trials(prep: dict, work: Path, n: int, full_share: float, full_s: float | None,
               rng: random.Random, span_factor: float = 1.0) -> list[dict]:
    rows = []
    for i in range(n):
        full = full_s is not None and i < round(n * full_share)
        span = span_factor * (full_s if full else prep["incremental_s"])
        rows.append(trial(prep, work, i, full, rng.uniform(0.0, span)))
        r = rows[-1]
        print(f"{i:>3} {r['kind']:<11} kill {r['kill_at_s']:>6.2f}s  killed={r['killed']!s:<5} "
              f"content={r['content']!s:<5} answers={r['answers']!s:<5} "
              f"{'ok' if r['survived'] else 'FAILED ' + r['error']}", flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--full-share", type=float, default=0.4,
                    help="share of trials that kill a --full build (the rest: incremental)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--span", type=float, default=1.0,
                    help="kill times are uniform over span x the measured duration; above 1 "
                         "covers builds slowed by a busy machine (those that finish count too)")
    ap.add_argument("--base-home", type=Path,
                    help="an askpapers home whose index was built from seeds/ (skips that build)")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "crash_trials.json"))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="askpapers-crash-"))
    try:
        t = time.monotonic()
        prep = prepare(work, args.base_home)
        full_s = None
        if args.full_share > 0:
            full_s = run_build(work / "full-probe", prep["sources"], full=True)["seconds"]
            shutil.rmtree(work / "full-probe")
        print(f"measured: full build {full_s or 0:.1f} s, incremental build "
              f"{prep['incremental_s']:.1f} s ({EDITED_PAPERS} papers changed)")
        rows = run_trials(prep, work, args.trials, args.full_share, full_s, rng, args.span)
        cut = power_cut(prep["base"], work, prep["sources"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    survived = sum(r["survived"] for r in rows)
    result = {"trials": len(rows), "survived": survived, "kill_span": args.span,
              "full_build_s": round(full_s or 0, 2),
              "incremental_build_s": round(prep["incremental_s"], 2),
              "kills_before_finish": sum(r["killed"] for r in rows),
              "ended_old": sum(r["content"] == "old" for r in rows),
              "ended_new": sum(r["content"] == "new" for r in rows),
              "power_cut": cut, "rows": rows, "wall_s": round(time.monotonic() - t, 1)}
    print(f"\n{'kind':<12}{'trials':>7}{'killed':>8}{'old':>5}{'new':>5}{'survived':>10}")
    for kind in ("full", "incremental"):
        rs = [r for r in rows if r["kind"] == kind]
        print(f"{kind:<12}{len(rs):>7}{sum(r['killed'] for r in rs):>8}"
              f"{sum(r['content'] == 'old' for r in rs):>5}{sum(r['content'] == 'new' for r in rs):>5}"
              f"{sum(r['survived'] for r in rs):>10}")
    print(f"survived {survived}/{len(rows)}; power cut: stale temp build removed = "
          f"{cut['stale_removed']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({**result, "provenance": provenance()}, indent=1) + "\n")
    return 0 if survived == len(rows) and cut["survived"] else 1


if __name__ == "__main__":
    sys.exit(main())
