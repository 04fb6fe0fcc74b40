"""Full and LoRA fine-tuning of a bi-encoder, with the options of the registered finetune methods.

The options (``--method lora --lora-r 16``) are the registered methods' own (fmkit/finetune/methods);
only where they wrap differs: a bi-encoder has no classifier head, so LoRA goes on the encoder's
attention and feed-forward projections alone (PEFT, no ``modules_to_save``), and the bundle keeps
the merged encoder (what sentence-transformers and the runtimes load) plus the adapter.
"""

from __future__ import annotations

from pathlib import Path

ADAPTER_DIR = "adapter"


def _full_prepare(model, options):
    return model


def _full_save(model, directory: Path, options) -> dict:
    model.encoder.save_pretrained(str(directory), safe_serialization=True)
    return {"trainable_parameters": sum(p.numel() for p in model.parameters())}


def _lora_prepare(model, options):
    from peft import LoraConfig, get_peft_model

    from fmkit.errors import BadInputError

    present = {name.rsplit(".", 1)[-1] for name, _ in model.encoder.named_modules()}
    unknown = [m for m in options.target_modules if m not in present]
    if unknown:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.encoder.named_modules() if type(m).__name__ == "Linear"})
        raise BadInputError(f"LoRA target_modules {unknown} are not in this encoder; its linear layers are {linear}")
    config = LoraConfig(r=options.r, lora_alpha=options.alpha, lora_dropout=options.dropout,
                        target_modules=list(options.target_modules))
    model.encoder = get_peft_model(model.encoder, config)
    return model


def _lora_save(model, directory: Path, options) -> dict:
    from fmkit.finetune.methods.lora import sort_set_fields

    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    model.encoder.save_pretrained(str(directory / ADAPTER_DIR), safe_serialization=True)
    for config in model.encoder.peft_config.values():
        sort_set_fields(directory / ADAPTER_DIR, config)
    model.encoder = model.encoder.merge_and_unload()
    model.encoder.save_pretrained(str(directory), safe_serialization=True)
    return {"trainable_parameters": trainable, "total_parameters": total, "adapter": ADAPTER_DIR, "merged": True}


# method name -> (wrap the bi-encoder, save it): the registered FINETUNE_METHODS a bi-encoder trains with
ENCODER_METHODS = {"full": (_full_prepare, _full_save), "lora": (_lora_prepare, _lora_save)}


def prepare_encoder(model, options):
    return ENCODER_METHODS[options.name][0](model, options)


def save_encoder(model, directory: Path, options) -> dict:
    return ENCODER_METHODS[options.name][1](model, directory, options)
