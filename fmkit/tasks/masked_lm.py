"""Masked-LM: the base models ``fmkit pretrain`` makes (fmkit/pretrain/stage.py).

They predict masked tokens, not labels: there is nothing to evaluate, compress against or serve
until ``fmkit finetune --model BUNDLE`` turns one into a classifier, and every stage that gets
one says so with this adapter's message.
"""

from __future__ import annotations

from fmkit.tasks.base import Capabilities, TaskAdapter, register_task

NAME = "masked-lm"

ADAPTER = register_task(TaskAdapter(
    NAME, "a base model that predicts masked tokens (fmkit pretrain); fine-tune it into a classifier",
    Capabilities(labelled=False), examples="documents",
    refusal="{path} is a masked-LM base model (made by `fmkit pretrain`): it has no labels to evaluate, compress "
            "against or serve. Fine-tune it first: fmkit finetune --model {path} --data DATA --out OUT"))
