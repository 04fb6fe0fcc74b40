"""Train a BERT WordPiece tokenizer on a corpus with Hugging Face ``tokenizers`` (streamed)."""

from __future__ import annotations

from typing import Iterable

from fmkit.errors import BadInputError

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_wordpiece(documents: Iterable[str], vocab_size: int, *, lowercase: bool = True, min_frequency: int = 2,
                    model_max_length: int = 512):
    """A ``BertTokenizerFast``-compatible tokenizer whose vocabulary is learned from ``documents``.

    The trainer always keeps every character it saw (and its ``##`` continuation), so a
    ``vocab_size`` below that alphabet cannot be honoured: that is an error naming the minimum.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=None if lowercase else False)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                        min_frequency=min_frequency, show_progress=False)
    tokenizer.train_from_iterator(documents, trainer)
    learned = tokenizer.get_vocab_size()
    if learned <= len(SPECIAL_TOKENS):
        raise BadInputError("the corpus has no text to learn a vocabulary from; check the --corpus files")
    if learned > vocab_size:
        raise BadInputError(
            f"vocab_size={vocab_size} is too small for this corpus: its characters and their '##' continuations "
            f"alone need {learned} entries (with the {len(SPECIAL_TOKENS)} special tokens). Use --vocab-size of "
            f"at least {learned}; typical values are 8000-30000"
        )
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tokenizer.decoder = decoders.WordPiece()
    return BertTokenizerFast(tokenizer_object=tokenizer, do_lower_case=lowercase, model_max_length=model_max_length)
