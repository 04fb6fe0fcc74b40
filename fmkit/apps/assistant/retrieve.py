"""Rank the index for a question: dense, BM25 or their fusion, optionally routed by the intent.

Routing moves the answers of the likely intents (the fewest categories holding ``intent_mass`` of
the classifier's probability) ahead of the rest, keeping their order; the rest stay behind as a
fallback, so a wrong intent costs rank, never the answer. Document passages have no category
and are never moved back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fmkit.apps.assistant.index import DenseIndex, LexicalIndex, reciprocal_rank_fusion

CANDIDATES = 50  # entries each ranking keeps: the fusion and the metrics (MRR@10, recall@5) look no deeper
INTENT_MASS = 0.9  # default share of the intent probability whose categories are searched first


@dataclass
class Ranking:
    indices: np.ndarray  # entry indices, best first
    cosine: np.ndarray  # the dense cosine of each ranked entry (the confidence reads it whatever the mode)
    dense_top: int  # the dense search's first entry
    lexical_top: int | None  # BM25's first entry (None: no word in common with any entry)
    intent: dict | None  # {"label", "probability"} of the classifier's best intent
    category_probability: np.ndarray | None  # the classifier's probability of each ranked entry's category


class Retriever:
    def __init__(self, entries: list[dict], embeddings: np.ndarray, encoder, intent=None, *, ann_threshold: int,
                 seed: int = 0, intent_mass: float = INTENT_MASS):
        self.entries = entries
        self.encoder = encoder
        self.intent = intent
        self.intent_mass = intent_mass
        self.dense = DenseIndex(embeddings, ann_threshold=ann_threshold, seed=seed)
        self.lexical = LexicalIndex([entry["text"] for entry in entries])
        self.label_of_entry = None
        if intent is not None:
            position = {label: index for index, label in enumerate(intent.labels)}
            # -1: a document passage, or a category the classifier does not know (build refuses the latter)
            self.label_of_entry = np.array([position.get(entry.get("category"), -1) for entry in entries])

    def encode(self, questions: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """(question vectors, intent probabilities or None): what ranking a batch of questions needs."""
        probabilities = self.intent.probabilities(list(questions)) if self.intent is not None else None
        return self.encoder.encode(list(questions)), probabilities

    def rank(self, questions: list[str], mode: str, route: bool, encoded=None) -> list[Ranking]:
        """One ranking per question; ``encoded`` (from :meth:`encode`) spares encoding them again."""
        vectors, probabilities = encoded if encoded is not None else self.encode(questions)
        return [self._rank_one(question, vector, None if probabilities is None else probabilities[row], mode, route)
                for row, (question, vector) in enumerate(zip(questions, vectors))]

    def _rank_one(self, question: str, vector: np.ndarray, probabilities, mode: str, route: bool) -> Ranking:
        dense, _ = self.dense.search(vector, CANDIDATES)
        lexical, _ = self.lexical.search(question, CANDIDATES)
        if mode == "dense":
            ranked = dense
        elif mode == "bm25":
            ranked = lexical
        else:
            ranked, _ = reciprocal_rank_fusion([dense, lexical])
            ranked = ranked[:CANDIDATES]
        intent = category_probability = None
        if probabilities is not None:
            best = int(probabilities.argmax())
            intent = {"label": self.intent.labels[best], "probability": float(probabilities[best])}
            if route and len(ranked):
                ranked = self._routed(ranked, probabilities)
            labels = self.label_of_entry[ranked]
            category_probability = np.where(labels >= 0, probabilities[np.maximum(labels, 0)], 0.0)
        return Ranking(ranked, self.dense.scores_of(vector, ranked), int(dense[0]),
                       int(lexical[0]) if len(lexical) else None, intent, category_probability)

    def _routed(self, ranked: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        order = np.argsort(-probabilities)
        keep = int(np.searchsorted(np.cumsum(probabilities[order]), self.intent_mass)) + 1
        likely = set(order[:keep].tolist()) | {-1}  # documents (-1) are never moved back
        first = np.array([self.label_of_entry[i] in likely for i in ranked])
        return np.concatenate([ranked[first], ranked[~first]])
