"""Batched inference of a PyTorch model being trained (validation during training, distillation)."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from fmkit.data.batching import EncodedTexts, pad_batch, sorted_batches
from fmkit.train.precision import autocast


@torch.inference_mode()
def iter_logits(
    model, encoded: EncodedTexts, pad_id: int, batch_size: int, device: torch.device, precision: str = "fp32"
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (row indices, fp32 logits) batch by batch; memory is one batch of logits."""
    was_training = model.training
    model.eval()
    try:
        for indices in sorted_batches(encoded.lengths, batch_size):
            batch = pad_batch([encoded.input_ids[i] for i in indices], pad_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            with autocast(precision, device):
                logits = model(**batch).logits
            yield indices, logits.float().cpu().numpy()
    finally:
        model.train(was_training)


def stream_metrics(model, encoded: EncodedTexts, label_ids: Sequence[int], label_names, pad_id, batch_size, device,
                   precision="fp32"):
    from fmkit.evaluate.metrics import metrics_from_logits

    return metrics_from_logits(iter_logits(model, encoded, pad_id, batch_size, device, precision), label_ids,
                               label_names)
