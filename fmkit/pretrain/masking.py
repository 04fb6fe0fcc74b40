"""Masked-LM corruption: exact 15% per sequence, 80/10/10, optional whole-word masking.

Each sequence gets exactly ``round(p · eligible)`` prediction targets (at least one), as in
BERT's original ``create_pretraining_data`` -- not a Bernoulli draw per token -- and of those
exactly ``round(0.8·n)`` become ``[MASK]``, ``round(0.1·n)`` a random token, the rest stay.
So the statistics are exact for any seed, and the same (seed, epoch, batch) gives the same
masks, which keeps ``--resume`` exact. With whole-word masking the units are words
(a token plus its ``##`` continuations) and all pieces of a chosen word share its fate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE = -100  # label of positions that are not predicted (cross-entropy's ignore_index)


def round_half_up(values: torch.Tensor) -> torch.Tensor:
    return torch.floor(values + 0.5).long()


@dataclass
class Masker:
    mask_id: int
    special: torch.Tensor  # bool [vocab]: never masked, never drawn as a random replacement
    continuation: torch.Tensor | None  # bool [vocab]: '##' pieces (needed for whole-word masking)
    probability: float = 0.15
    whole_word: bool = False
    mask_share: float = 0.8
    random_share: float = 0.1

    def __post_init__(self):
        self.replacements = torch.nonzero(~self.special).flatten()
        if self.whole_word and self.continuation is None:
            raise ValueError("whole-word masking needs the tokenizer's continuation ('##') pieces")

    @classmethod
    def for_tokenizer(cls, tokenizer, probability: float = 0.15, whole_word: bool = False) -> "Masker":
        vocab = len(tokenizer)
        special = torch.zeros(vocab, dtype=torch.bool)
        special[torch.as_tensor(sorted(set(tokenizer.all_special_ids)))] = True
        continuation = torch.zeros(vocab, dtype=torch.bool)
        for token, index in tokenizer.get_vocab().items():
            if token.startswith("##") and index < vocab:
                continuation[index] = True
        return cls(tokenizer.mask_token_id, special, continuation, probability, whole_word)

    def units(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(eligible tokens, unit start positions): units are tokens, or words with whole-word masking."""
        eligible = attention_mask.bool() & ~self.special[input_ids]
        if not self.whole_word:
            return eligible, eligible
        previous = torch.nn.functional.pad(eligible, (1, 0))[:, :-1]
        starts = eligible & (~self.continuation[input_ids] | ~previous)
        return eligible, starts

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (corrupted input_ids, labels) for a batch [B, L]; labels are IGNORE where not predicted."""
        eligible, starts = self.units(input_ids, attention_mask)
        count = starts.sum(dim=1)
        chosen = torch.where(count > 0, round_half_up(self.probability * count).clamp(min=1), 0)
        to_mask = round_half_up(self.mask_share * chosen)
        to_random = torch.minimum(round_half_up(self.random_share * chosen), chosen - to_mask)

        scores = torch.rand(input_ids.shape, generator=generator)
        scores[~starts] = 2.0  # never chosen
        rank = scores.argsort(dim=1).argsort(dim=1)  # a random order of each row's units
        if self.whole_word:  # every token takes the rank of its word's first piece
            positions = torch.arange(input_ids.shape[1]).expand_as(input_ids)
            start_of = torch.where(starts, positions, -1).cummax(dim=1).values.clamp(min=0)
            rank = torch.where(eligible, rank.gather(1, start_of), input_ids.shape[1])

        selected = eligible & (rank < chosen[:, None])
        as_mask = selected & (rank < to_mask[:, None])
        as_random = selected & ~as_mask & (rank < (to_mask + to_random)[:, None])

        labels = torch.where(selected, input_ids, IGNORE)
        corrupted = input_ids.clone()
        corrupted[as_mask] = self.mask_id
        picks = torch.randint(len(self.replacements), (int(as_random.sum()),), generator=generator)
        corrupted[as_random] = self.replacements[picks]
        return corrupted, labels
