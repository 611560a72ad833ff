"""The types of the vector-store seam, in a leaf module: backends import these, not the
package that chooses among them (rag/vectorstores/__init__.py), so there is no cycle."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

# A backend that keeps vectors outside the build folder writes its manifest section here
# before creating anything, so rag.store can drop what a build killed midway left behind.
EXTERNAL_NOTE = "vector_store.json"
# Chunk rows [lo, hi) as dicts: row, paper_id and the filter fields of rag.filters.filter_fields.
RowFields = Callable[[int, int], list[dict]]
# The chunk rows of a build that pass some filters (see rag.store.LoadedIndex.rows_where).
RowsWhere = Callable[[dict], np.ndarray]


class VectorSearcher(Protocol):
    """One build's vectors, open for search. Safe to share between threads."""

    ntotal: int
    d: int

    def search(self, x: np.ndarray, k: int, filters: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k cosines and chunk rows per query row (best first; -1 pads missing rows),
        only among rows whose paper passes `filters`."""

    def reconstruct_batch(self, rows) -> np.ndarray:
        """The stored vectors of these chunk rows, float32."""


class VectorBackend(Protocol):
    """Writes, opens and drops the vectors of one build."""

    name: str

    def write(self, build: Path, embeddings: np.ndarray, fields: RowFields) -> dict:
        """Store every row of `embeddings` for the build in folder `build`; returns the
        manifest's "vector_store" section. Raises IndexWriteError or VectorStoreError."""

    def open(self, build: Path, section: dict, embeddings: np.ndarray,
             rows_where: RowsWhere) -> VectorSearcher:
        """The build's vectors for search. Raises IndexCorruptError or VectorStoreError."""

    def drop(self, build: Path, section: dict) -> None:
        """Delete whatever the build keeps outside its folder (its own files go with it)."""
