"""Offline indexing: read sources, chunk, embed, and publish an index."""
