"""LoRA with PEFT: low-rank adapters on the attention and feed-forward projections.

The classifier head is trained in full and saved with the adapter (``modules_to_save``),
avoiding PEFT's known pitfall of a lost head (peft#310). The bundle carries both the merged
model (plain ``transformers`` loads it) and the adapter in ``adapter/`` for further training.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fmkit.finetune.methods.base import FINETUNE_METHODS, FinetuneMethod

ADAPTER_DIR = "adapter"


class LoraOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["lora"] = "lora"
    r: int = Field(8, description="rank of the low-rank update")
    alpha: int = Field(16, description="scaling: the update is multiplied by alpha / r")
    dropout: float = Field(0.1, description="dropout on the adapter input")
    target_modules: list[str] = Field(
        default_factory=lambda: ["query", "key", "value", "dense"],
        description="module names that get adapters (BERT: query, key, value, dense)",
    )
    merge: bool = Field(True, description="also write the merged weights so plain transformers loads the bundle")

    @model_validator(mode="after")
    def _check(self) -> "LoraOptions":
        errors = []
        if self.r < 1:
            errors.append(f"r={self.r}: must be >= 1 (typical 4-64)")
        if self.alpha < 1:
            errors.append(f"alpha={self.alpha}: must be >= 1")
        if not 0 <= self.dropout < 1:
            errors.append(f"dropout={self.dropout}: must be in [0, 1)")
        if not self.target_modules:
            errors.append("target_modules is empty: name at least one module, e.g. query")
        if not self.merge:
            errors.append("merge=false is not supported yet: a bundle must load in plain transformers")
        if errors:
            raise ValueError("; ".join(errors))
        return self


def prepare(model, options: LoraOptions):
    from peft import LoraConfig, TaskType, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    unknown = [m for m in options.target_modules if m not in present]
    if unknown:
        from fmkit.errors import BadInputError

        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if type(m).__name__ == "Linear"})
        raise BadInputError(f"LoRA target_modules {unknown} are not in this model; its linear layers are {linear}")
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,  # keeps the classifier trainable and saved (modules_to_save)
        r=options.r,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules=list(options.target_modules),
        modules_to_save=["classifier"],
    )
    return get_peft_model(model, config)


def sort_set_fields(adapter_directory, config) -> None:
    """Write ``adapter_config.json``'s set-valued fields (``target_modules``...) sorted.

    PEFT stores them as Python sets and saves ``list(set)``, whose order changes with the
    process's string-hash seed: two identical runs would get different bundle digests.
    """
    import json
    from pathlib import Path

    path = Path(adapter_directory) / "adapter_config.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    for key, value in vars(config).items():
        if isinstance(value, (set, frozenset)) and isinstance(data.get(key), list):
            data[key] = sorted(data[key], key=str)
    path.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")


def save(model, directory, options: LoraOptions) -> dict:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    model.save_pretrained(str(directory / ADAPTER_DIR), safe_serialization=True)
    for config in model.peft_config.values():  # one adapter, "default"
        sort_set_fields(directory / ADAPTER_DIR, config)
    merged = model.merge_and_unload()
    merged.save_pretrained(str(directory), safe_serialization=True)
    return {"trainable_parameters": trainable, "total_parameters": total, "adapter": ADAPTER_DIR, "merged": True}


FINETUNE_METHODS.register("lora")(FinetuneMethod(LoraOptions, prepare, save, default_learning_rate=5e-4,
                                                                  max_learning_rate=3e-3))
