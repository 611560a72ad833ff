"""Ingest under hostile corpora: reading and merging time of SYNTHETIC JSON Lines files.

  duplicates  one title repeated on every line, each with another `update_date` (all
              distinct), so one paper collects N listings: the build's step 1
              (index.staging.Stage.collect into a stage's records.sqlite) and the in-memory
              merge (index.staging.merge_papers). Both must grow linearly in N; before the
              fix the stage's merge was quadratic (10k rows: 114 s, 20k: over 300 s).
  nested      good rows mixed with lines nested 100,000 levels deep: they must be skipped
              and counted (they used to abort the build with a RecursionError).

Usage: python bench/ingest_bench.py [--rows 10000,20000,100000] [--out bench/results/ingest.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from provenance import provenance  # noqa: E402  (bench/provenance.py)

RESULTS = REPO / "bench" / "results"
TITLE = "One Title Listed Under Many Dates"


def date(i: int) -> str:
    """The i-th of 100,800 distinct dates (28 days a month, from 1900)."""
    return f"{1900 + i // 336:04d}-{1 + i // 28 % 12:02d}-{1 + i % 28:02d}"


def write_duplicates(path: Path, rows: int) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for i in range(rows):
            f.write(json.dumps({"id": str(i), "title": TITLE, "abstract": f"Abstract version {i % 7}.",
                                "authors": "A. Author", "categories": "cs.LG",
                                "update_date": date(i)}) + "\n")
    return path


def write_nested(path: Path, good: int, deep: int, depth: int = 100_000) -> Path:
    """`good` distinct papers with a line nested `depth` levels before every good/deep-th."""
    with path.open("w", encoding="utf-8") as f:
        for i in range(good):
            if i % (good // deep) == 0:
                f.write("[" * depth + "]" * depth + "\n")
            f.write(json.dumps({"title": f"Good paper {i}", "abstract": "Fine."}) + "\n")
    return path


def time_collect(path: Path, work: Path) -> dict:
    from index.readers import ReadReport, iter_papers
    from index.staging import Stage

    stage_dir = work / "stage"
    stage_dir.mkdir()
    report = ReadReport()
    t0 = time.perf_counter()
    stage = Stage(stage_dir, None)
    got = stage.collect(iter_papers([path], report), lambda: {"skipped": report.skipped})
    listings = json.loads(stage.con.execute("SELECT listings FROM papers").fetchone()[0])
    stage.close()
    return {"collect_s": round(time.perf_counter() - t0, 2), "papers": got["papers"],
            "listings": len(listings), "skipped": len(report.skipped)}


def time_merge(path: Path) -> dict:
    from index.readers import ReadReport, iter_papers
    from index.staging import merge_papers

    t0 = time.perf_counter()
    papers = merge_papers(iter_papers([path], ReadReport()))
    return {"merge_s": round(time.perf_counter() - t0, 2), "merged_listings": len(papers[0].listings)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="10000,20000,100000")
    ap.add_argument("--out", default=str(RESULTS / "ingest.json"))
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in [int(r) for r in args.rows.split(",")]:
            work = Path(tmp) / f"dup{rows}"
            work.mkdir()
            path = write_duplicates(work / "dupes.jsonl", rows)
            results.append({"case": "duplicates", "rows": rows, **time_collect(path, work),
                            **time_merge(path)})
        work = Path(tmp) / "nested"
        work.mkdir()
        path = write_nested(work / "nested.jsonl", good=1000, deep=10)
        results.append({"case": "nested", "rows": 1010, **time_collect(path, work)})
    print(f"{'case':<11} {'rows':>7} {'papers':>6} {'listings':>8} {'skipped':>7} "
          f"{'collect s':>9} {'merge s':>7}")
    for r in results:
        print(f"{r['case']:<11} {r['rows']:>7} {r['papers']:>6} {r['listings']:>8} "
              f"{r['skipped']:>7} {r['collect_s']:>9} {r.get('merge_s', '-'):>7}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"provenance": provenance(), "results": results}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
