"""Named BERT sizes for pretraining from scratch (the BERT miniatures' shapes, Turc et al. 2019).

A new size is a new registry entry; ``fmkit pretrain --size`` lists them.
"""

from __future__ import annotations

from dataclasses import dataclass

from fmkit.registry import Registry


@dataclass(frozen=True)
class ModelSize:
    layers: int
    hidden: int
    heads: int
    description: str

    @property
    def intermediate(self) -> int:
        return 4 * self.hidden

    def bert_config(self, vocab_size: int, max_positions: int, pad_token_id: int):
        from transformers import BertConfig

        return BertConfig(vocab_size=vocab_size, hidden_size=self.hidden, num_hidden_layers=self.layers,
                          num_attention_heads=self.heads, intermediate_size=self.intermediate,
                          max_position_embeddings=max_positions, pad_token_id=pad_token_id,
                          tie_word_embeddings=True)

    def encoder_parameters(self) -> int:
        """Transformer-block parameters (without embeddings): 12·H² + 13·H per layer."""
        return self.layers * (12 * self.hidden**2 + 13 * self.hidden)


MODEL_SIZES: Registry[ModelSize] = Registry("model size")
MODEL_SIZES.register("tiny")(ModelSize(2, 128, 2, "2 layers, hidden 128 (BERT-tiny shape; ~0.4M encoder params)"))
MODEL_SIZES.register("mini")(ModelSize(4, 256, 4, "4 layers, hidden 256 (BERT-mini shape; ~3.2M encoder params)"))
MODEL_SIZES.register("small")(ModelSize(4, 512, 8, "4 layers, hidden 512 (BERT-small shape; ~12.6M encoder params)"))
