"""Pseudo-questions from the documents themselves (the inverse cloze task, Lee et al. 2019).

A document's first sentence is the query and the rest of it the passage to find: every document
of the index takes part in training, including the ones no training question has (an answer added
to the FAQ before anyone asked for it). Held-out *questions* stay unseen; the documents are the
index, which the encoder is meant for. A document of one sentence gives no pair.
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
MIN_WORDS = 3  # a shorter first sentence ("Yes.") says nothing about the document


def pseudo_pairs(documents: list[str]) -> list[tuple[int, str, str]]:
    """(index position, first sentence, the rest) for each document with two or more sentences."""
    pairs = []
    for position, text in enumerate(documents):
        sentences = _SENTENCE_END.split(text.strip(), maxsplit=1)
        if len(sentences) == 2 and len(sentences[0].split()) >= MIN_WORDS and sentences[1].strip():
            pairs.append((position, sentences[0], sentences[1].strip()))
    return pairs
