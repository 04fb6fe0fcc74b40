"""Optimisation settings shared by every training stage."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: int | Literal["auto"] = Field(
        "auto", description="passes over the training split; auto: planned from the data size (>= 800 optimizer "
        "steps, 3 to 40 epochs: small data gets many, large data 3) and ended by early stopping")
    batch_size: int = Field(32, description="examples per forward pass (physical batch)")
    gradient_accumulation_steps: int = Field(1, description="forward passes per optimizer step")
    learning_rate: float | Literal["auto"] | None = Field(
        None, description="peak AdamW learning rate (default: the method's for the model's size, e.g. MiniLM 1.3e-4 "
        "full, 1e-3 LoRA); auto: a short range test, at most 5% of the step budget, picks it")
    weight_decay: float = Field(0.01, description="AdamW decoupled weight decay (not on biases/LayerNorm)")
    warmup_ratio: float = Field(0.06, description="share of optimizer steps with linear warm-up")
    max_grad_norm: float | None = Field(1.0, description="clip the global gradient norm; null disables")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 autocast where the CPU/GPU supports it, else fp32"
    )
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    early_stopping_patience: int | Literal["auto"] | None = Field(
        "auto", description="stop after this many evaluations without a better validation macro-F1; auto: a fifth "
        "of the epochs, at least 2; null disables")
    eval_every_steps: int | None = Field(None, description="also evaluate every N optimizer steps (default: per epoch)")
    checkpoint_every_steps: int = Field(200, description="write a resumable checkpoint every N optimizer steps")
    max_steps: int | None = Field(None, description="stop after this many optimizer steps (smoke tests)")
    seed: int = Field(0, description="seed of initialisation, dropout and batch order")
    num_threads: int | None = Field(None, description="torch intra-op threads (default: all cores)")
    progress: bool = Field(True, description="show a progress bar with loss, samples/s and ETA")
    distributed: Literal["ddp", "fsdp"] = Field(
        "ddp", description="how the ranks of a torchrun launch share the work: ddp (each rank a full replica, "
        "gradients all-reduced) or fsdp (parameters, gradients and optimizer state sharded; for models that do "
        "not fit one device; CUDA). One process ignores it")
    gradient_checkpointing: bool = Field(
        False, description="recompute activations in the backward pass instead of keeping them: lower peak "
        "memory for slower steps")
    gradient_checkpointing_every: int = Field(
        1, description="with gradient_checkpointing: recompute every Nth transformer layer (1: all; 2: every other, "
        "about half the memory saving for about half the extra time, docs/memory.md)")

    @field_validator("epochs", "early_stopping_patience", "learning_rate", mode="before")
    @classmethod
    def _number_or_auto(cls, value, info):
        """One clear message for a word that is neither a number nor auto (pydantic would give two)."""
        if not isinstance(value, str) or value == "auto" or (value.lower() in ("none", "null") and
                                                             info.field_name != "epochs"):
            return None if isinstance(value, str) and value.lower() in ("none", "null") else value
        try:
            return float(value) if info.field_name == "learning_rate" else int(value)
        except ValueError:
            kind = "a rate such as 1e-4" if info.field_name == "learning_rate" else "a whole number"
            raise ValueError(f"{info.field_name}={value!r}: use {kind} or auto") from None

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        errors = []
        for name in ("epochs", "batch_size", "gradient_accumulation_steps", "checkpoint_every_steps"):
            if getattr(self, name) != "auto" and getattr(self, name) < 1:
                errors.append(f"{name}={getattr(self, name)}: must be >= 1")
        if self.learning_rate not in (None, "auto") and not 0 < self.learning_rate < 1:
            errors.append(f"learning_rate={self.learning_rate}: must be in (0, 1); typical 1e-5..1e-3")
        if self.weight_decay < 0:
            errors.append(f"weight_decay={self.weight_decay}: must be >= 0")
        if not 0 <= self.warmup_ratio < 1:
            errors.append(f"warmup_ratio={self.warmup_ratio}: must be in [0, 1)")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            errors.append(f"max_grad_norm={self.max_grad_norm}: must be > 0, or null to disable clipping")
        if self.early_stopping_patience not in (None, "auto") and self.early_stopping_patience < 1:
            errors.append(f"early_stopping_patience={self.early_stopping_patience}: must be >= 1, auto or null")
        for name in ("eval_every_steps", "max_steps", "num_threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                errors.append(f"{name}={value}: must be >= 1 or null")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            errors.append(f"device={self.device!r}: use auto, cpu, cuda or cuda:N")
        if self.gradient_checkpointing_every < 1:
            errors.append(f"gradient_checkpointing_every={self.gradient_checkpointing_every}: must be >= 1 (1 "
                          "recomputes every layer)")
        elif self.gradient_checkpointing_every != 1 and not self.gradient_checkpointing:
            errors.append(f"gradient_checkpointing_every={self.gradient_checkpointing_every} without "
                          "gradient_checkpointing: add --gradient-checkpointing, or leave the interval at 1")
        if errors:
            raise ValueError("; ".join(errors))
        return self
