"""Self-supervised pretraining: WordPiece tokenizer + masked-LM, from scratch or continued.

corpus files -> tokenizer -> packed token stream on disk -> masked-LM through the shared
training loop -> a ``masked-lm`` bundle that ``fmkit finetune --model`` starts from.
Nothing heavy is imported here: ``fmkit --help`` reads the sizes without loading torch.
"""


def __getattr__(name):
    if name == "PretrainConfig":
        from fmkit.pretrain.config import PretrainConfig

        return PretrainConfig
    raise AttributeError(name)
