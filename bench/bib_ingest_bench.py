"""Ingest of a SYNTHETIC Zotero-style BibTeX export generated from the seeds.

Entry i copies seed paper i mod N (title made unique with a volume number, abstract,
a made-up DOI 10.5555/seed.<i>, every third an arXiv eprint); a share of entries has no
abstract, and a share repeats an earlier entry's DOI under a retitled copy (a preprint and
its journal version). Reported:
  read    bibtexparser + the readers + DOI/arXiv/title dedup of the whole file: papers/s
  build   a full index build (embedding included) from the first --build-entries entries,
          then a re-import of the same file, which must change nothing (target <= 3 s at
          the seeds' size)
with the bench process's peak RSS after each step.

Usage: python bench/bib_ingest_bench.py [--entries 10000] [--build-entries 500]
           [--no-abstract 0.1] [--dup-doi 0.1] [--out bench/results/bib_ingest.json]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from run_info import RESULTS, commit, machine  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _braced(text: str) -> str:
    return text.replace("{", "(").replace("}", ")").replace("\\", " ")


def write_export(path: Path, entries: int, no_abstract: float, dup_doi: float, seed: int = 7) -> dict:
    """The synthetic .bib file; returns the counts it was made with."""
    from index.readers import read_sources

    seeds = read_sources([REPO / "seeds"]).papers
    rng = random.Random(seed)
    counts = {"entries": entries, "no_abstract": 0, "dup_doi": 0}
    with path.open("w", encoding="utf-8") as f:
        for i in range(entries):
            p = seeds[i % len(seeds)]
            title, doi = f"{p.title} (volume {i // len(seeds) + 1})", f"10.5555/seed.{i}"
            roll = rng.random()
            if roll < dup_doi and i > 0:
                doi = f"10.5555/seed.{rng.randrange(i)}"
                title = f"Preprint: {title}"
                counts["dup_doi"] += 1
            abstract = "" if dup_doi <= roll < dup_doi + no_abstract else p.abstract
            counts["no_abstract"] += not abstract
            fields = [f"  title = {{{_braced(title)}}}", f"  doi = {{{doi}}}",
                      f"  year = {{{2015 + i % 10}}}",
                      "  author = {" + " and ".join(_braced(a) for a in p.authors or ["Anon, A."]) + "}",
                      "  keywords = {synthetic, seeds}"]
            if i % 3 == 0:
                fields.append(f"  eprint = {{{2400 + i % 12:04d}.{i:05d}}}")
                fields.append("  archiveprefix = {arXiv}")
            if abstract:
                fields.append(f"  abstract = {{{_braced(abstract)}}}")
            f.write(f"@article{{seed{i},\n" + ",\n".join(fields) + "\n}\n\n")
    return counts


def bench_read(path: Path) -> dict:
    from index.readers import read_sources

    t0 = time.perf_counter()
    report = read_sources([path])
    s = time.perf_counter() - t0
    return {"read_s": round(s, 2), "papers": len(report.papers), "skipped": len(report.skipped),
            "papers_per_s": round(len(report.papers) / s, 1), "peak_rss_mb": round(peak_rss_mb())}


def bench_build(path: Path, home: Path) -> dict:
    from index.build import build_index
    from rag.config import load_settings

    settings = load_settings(home=home)
    t0 = time.perf_counter()
    first = build_index(settings, [path])
    build_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    again = build_index(settings, [path])
    return {"build_s": round(build_s, 1), "papers": first.papers, "chunks": first.chunks,
            "skipped": len(first.skipped), "papers_per_s": round(first.papers / build_s, 1),
            "reimport_s": round(time.perf_counter() - t1, 2),
            "reimport_changes": {"added": again.added, "changed": again.changed,
                                 "removed": again.removed, "embedded": again.embedded},
            "peak_rss_mb": round(peak_rss_mb())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--build-entries", type=int, default=500)
    ap.add_argument("--no-abstract", type=float, default=0.1)
    ap.add_argument("--dup-doi", type=float, default=0.1)
    ap.add_argument("--out", default=str(RESULTS / "bib_ingest.json"))
    args = ap.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        made = write_export(tmp / "zotero.bib", args.entries, args.no_abstract, args.dup_doi)
        read = bench_read(tmp / "zotero.bib")
        small = write_export(tmp / "small.bib", args.build_entries, args.no_abstract, args.dup_doi)
        build = bench_build(tmp / "small.bib", tmp / "home")
    print(f"{'step':<7} {'entries':>7} {'papers':>6} {'skipped':>7} {'seconds':>8} {'papers/s':>8} "
          f"{'peak RSS MB':>11}")
    print(f"{'read':<7} {made['entries']:>7} {read['papers']:>6} {read['skipped']:>7} "
          f"{read['read_s']:>8} {read['papers_per_s']:>8} {read['peak_rss_mb']:>11}")
    print(f"{'build':<7} {small['entries']:>7} {build['papers']:>6} {build['skipped']:>7} "
          f"{build['build_s']:>8} {build['papers_per_s']:>8} {build['peak_rss_mb']:>11}")
    print(f"re-import of the same file: {build['reimport_s']} s, changes {build['reimport_changes']}")
    result = {"commit": commit(), "synthetic": True,
              "settings": {"entries": args.entries, "build_entries": args.build_entries,
                           "no_abstract": args.no_abstract, "dup_doi": args.dup_doi},
              "machine": machine(load_start),
              "export": made, "read": read, "build_export": small, "build": build}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
