"""Demonstrations by similarity (``few_shot.icl.selection=SIMILAR``): the K-shot pool ranked
for each evaluation example by the cosine of sentence embeddings (Liu et al. 2022, KATE) or,
with ``few_shot.icl.retriever=bm25``, by its BM25 score (Okapi, over lower-cased words, as
rank_bm25 computes it)."""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=2)
def _model(retriever: str):
    from sentence_transformers import SentenceTransformer

    from mtfsl.model.sources import model_folder

    # a plain encoder folder (the shipped MiniLM) gets sentence-transformers' mean pooling
    return SentenceTransformer(model_folder(retriever), device="cpu")


BM25 = "bm25"


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _bm25(pool: list[str], examples: list[str]) -> np.ndarray:
    from rank_bm25 import BM25Okapi

    index = BM25Okapi([_words(p) for p in pool])
    return np.stack([index.get_scores(_words(e)) for e in examples])


def similarity_ranking(retriever: str, pool: list[str], examples: list[str]) -> np.ndarray:
    """(len(examples), len(pool)) pool indices, least similar first (the most similar ends
    up nearest to the query); ties keep pool order."""
    if not pool:
        return np.zeros((len(examples), 0), dtype=np.int64)
    if retriever == BM25:
        return np.argsort(_bm25(pool, examples), axis=1, kind="stable")
    ours, theirs = embed(retriever, pool), embed(retriever, examples)
    return np.argsort(theirs @ ours.T, axis=1, kind="stable")


def embed(retriever: str, texts: list[str]) -> np.ndarray:
    """Unit-length sentence embeddings, (len(texts), dim)."""
    encode = dict(normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    return _model(retriever).encode(texts, **encode)
