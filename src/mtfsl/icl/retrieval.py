"""Demonstrations by similarity (``few_shot.icl.selection=SIMILAR``; Liu et al. 2022, KATE):
the K-shot pool ranked for each evaluation example by the cosine of sentence embeddings."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np


def _text(example: Any) -> str:
    """What is embedded: the text, or a pair's two texts joined."""
    return " ".join(example) if isinstance(example, (tuple, list)) else str(example)


@lru_cache(maxsize=2)
def _model(retriever: str):
    from sentence_transformers import SentenceTransformer

    from mtfsl.model.sources import model_folder

    # a plain encoder folder (the shipped MiniLM) gets sentence-transformers' mean pooling
    return SentenceTransformer(model_folder(retriever), device="cpu")


def similarity_ranking(retriever: str, pool: list[Any], examples: list[Any]) -> np.ndarray:
    """(len(examples), len(pool)) pool indices, least similar first (the most similar ends
    up nearest to the query); ties keep pool order."""
    if not pool:
        return np.zeros((len(examples), 0), dtype=np.int64)
    model = _model(retriever)
    encode = dict(normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    ours = model.encode([_text(p) for p in pool], **encode)
    theirs = model.encode([_text(e) for e in examples], **encode)
    return np.argsort(theirs @ ours.T, axis=1, kind="stable")
