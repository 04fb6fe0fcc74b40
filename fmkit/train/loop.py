"""The training loop every fmkit method shares.

Full fine-tuning, LoRA, DP-SGD, distillation and MLM pretraining differ only in the model
they hand in, the ``loss_fn`` and the :class:`TrainHooks` that wrap model and optimizer.
"""

from __future__ import annotations

import math
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol

import torch

from fmkit.errors import TrainingDivergedError
from fmkit.train.checkpoint import load_best, load_checkpoint, save_best, save_checkpoint
from fmkit.train.config import TrainConfig
from fmkit.train.precision import autocast, resolve_precision, select_device


class BatchSource(Protocol):
    """Deterministic batches: the same epoch yields the same batches (resume depends on it)."""

    num_examples: int

    def __len__(self) -> int: ...

    def batches(self, epoch: int, start: int = 0) -> Iterator[dict[str, torch.Tensor]]: ...


class TrainHooks:
    """Extension points; the default does nothing. DP-SGD wraps model/optimizer in ``setup``
    and stops on the privacy budget in ``after_step``; its accountant state rides in the
    checkpoint through ``state_dict``/``load_state_dict``."""

    def setup(self, model, optimizer, batches):
        return model, optimizer, batches

    def wrap_loss(self, loss_fn):
        """The loss the loop uses after ``setup`` (DP ghost clipping supplies its own criterion)."""
        return loss_fn

    def after_step(self, step: int) -> bool:
        """Return True to stop training (e.g. a budget is spent)."""
        return False

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def summary(self) -> dict:
        return {}


@dataclass
class TrainResult:
    steps: int
    epochs_completed: float
    best_metric: float | None
    best_step: int | None
    stopped_early: bool
    precision: str
    device: str
    train_seconds: float
    samples_per_second: float
    history: list[dict] = field(default_factory=list)
    hooks: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def default_loss(model, batch):
    return model(**batch).loss


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases and LayerNorm weights (the 1-D parameters)."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim < 2 else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def linear_schedule(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return factor


def _examples_in(batch: dict) -> int:
    """Rows of a batch for the samples/s figure: texts (input_ids) or images (pixel_values)."""
    key = next((k for k in ("input_ids", "pixel_values") if k in batch), None)
    return int(batch[key].shape[0]) if key else 0


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def train(
    model: torch.nn.Module,
    batches: BatchSource,
    cfg: TrainConfig,
    *,
    loss_fn: Callable = default_loss,
    evaluate_fn: Callable[[torch.nn.Module], dict] | None = None,
    selection_metric: str = "macro_f1",
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    hooks: TrainHooks | None = None,
) -> TrainResult:
    """Train ``model`` in place; on return it holds the best validation weights."""
    hooks = hooks or TrainHooks()
    if cfg.learning_rate is None:
        raise ValueError("TrainConfig.learning_rate is unset; the calling stage must resolve its default")
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    device = select_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    torch.manual_seed(cfg.seed)
    model.to(device)

    temporary = None
    if checkpoint_dir is None:
        temporary = tempfile.TemporaryDirectory(prefix="fmkit-train-")
        checkpoint_dir = Path(temporary.name)
    checkpoint_dir = Path(checkpoint_dir)

    # The fused kernel updates all parameters in one pass: ~20% faster steps on CPU for MiniLM.
    fused = device.type in ("cpu", "cuda")
    optimizer = torch.optim.AdamW(parameter_groups(model, cfg.weight_decay), lr=cfg.learning_rate, fused=fused)
    model, optimizer, batches = hooks.setup(model, optimizer, batches)
    wrap_loss = getattr(hooks, "wrap_loss", None)  # optional: hooks written before it existed still work
    loss_fn = wrap_loss(loss_fn) if wrap_loss else loss_fn
    steps_per_epoch = math.ceil(len(batches) / cfg.gradient_accumulation_steps)
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, linear_schedule(int(cfg.warmup_ratio * total_steps), total_steps)
    )
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    state = {"epoch": 0, "batch": 0, "step": 0, "best": None, "best_step": None, "bad_evals": 0,
             "history": [], "stopped_early": False, "hooks": {}}
    if resume:
        restored = load_checkpoint(checkpoint_dir, model, optimizer, scheduler)
        if restored is not None:
            state = restored
            hooks.load_state_dict(state.get("hooks", {}))
        else:
            warnings.warn(f"--resume: no checkpoint in {checkpoint_dir}; training starts from the beginning",
                          stacklevel=2)

    def snapshot():
        state["hooks"] = hooks.state_dict()
        save_checkpoint(checkpoint_dir, model, optimizer, scheduler, state)

    def run_evaluation(epoch_float: float) -> bool:
        """Evaluate, remember the best weights; True when patience is exhausted."""
        if evaluate_fn is None:
            return False
        metrics = evaluate_fn(model)
        model.train()
        score = metrics[selection_metric]
        improved = state["best"] is None or score > state["best"]
        state["history"].append({"epoch": round(epoch_float, 3), "step": state["step"], **metrics})
        if improved:
            state["best"], state["best_step"], state["bad_evals"] = score, state["step"], 0
            save_best(checkpoint_dir, model)
        else:
            state["bad_evals"] += 1
        patience = cfg.early_stopping_patience
        return patience is not None and state["bad_evals"] >= patience

    from tqdm.auto import tqdm

    progress = tqdm(total=cfg.epochs * len(batches), initial=state["epoch"] * len(batches) + state["batch"],
                    disable=not cfg.progress, unit="batch", dynamic_ncols=True, leave=False)
    seen_examples, train_seconds, running_loss = 0, 0.0, None
    model.train()
    done = state["stopped_early"] or (cfg.max_steps is not None and state["step"] >= cfg.max_steps)
    try:
        while not done and state["epoch"] < cfg.epochs:
            epoch = state["epoch"]
            started = time.perf_counter()
            accumulated = 0
            for batch in batches.batches(epoch, start=state["batch"]):
                batch = _to_device(batch, device)
                with autocast(precision, device):
                    loss = loss_fn(model, batch)
                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    raise TrainingDivergedError(
                        f"loss became {loss_value} at epoch {epoch + 1}, optimizer step {state['step']}; "
                        f"the last good checkpoint is kept in {checkpoint_dir}. Lower the learning rate "
                        f"(now {cfg.learning_rate}), keep gradient clipping on, or try precision=fp32"
                    )
                scaled = loss / cfg.gradient_accumulation_steps
                (scaler.scale(scaled) if scaler else scaled).backward()
                state["batch"] += 1
                accumulated += 1
                seen_examples += _examples_in(batch)
                running_loss = loss_value if running_loss is None else 0.9 * running_loss + 0.1 * loss_value
                if accumulated == cfg.gradient_accumulation_steps or state["batch"] == len(batches):
                    accumulated = 0
                    if scaler:
                        scaler.unscale_(optimizer)
                    if cfg.max_grad_norm is not None:
                        torch.nn.utils.clip_grad_norm_(
                            [p for p in model.parameters() if p.requires_grad], cfg.max_grad_norm
                        )
                    if scaler:
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    state["step"] += 1
                    stop = hooks.after_step(state["step"])
                    if cfg.eval_every_steps and state["step"] % cfg.eval_every_steps == 0:
                        stop |= run_evaluation(epoch + state["batch"] / len(batches))
                    if cfg.max_steps is not None and state["step"] >= cfg.max_steps:
                        stop = True
                    if stop:
                        state["stopped_early"] = True
                        done = True
                        break
                    if state["step"] % cfg.checkpoint_every_steps == 0:
                        snapshot()
                elapsed = train_seconds + time.perf_counter() - started
                progress.update(1)
                progress.set_postfix(epoch=epoch + 1, loss=f"{running_loss:.4f}",
                                     samples_s=f"{seen_examples / max(elapsed, 1e-9):.1f}", refresh=False)
            train_seconds += time.perf_counter() - started
            already_evaluated = state["history"] and state["history"][-1]["step"] == state["step"]
            if not already_evaluated and run_evaluation(epoch + state["batch"] / len(batches)):
                state["stopped_early"] = True
                done = True
            if state["batch"] == len(batches):
                state["epoch"], state["batch"] = epoch + 1, 0
            snapshot()
    finally:
        progress.close()

    if evaluate_fn is not None:
        load_best(checkpoint_dir, model)
    result = TrainResult(
        steps=state["step"],
        epochs_completed=round(state["epoch"] + state["batch"] / max(1, len(batches)), 3),
        best_metric=state["best"],
        best_step=state["best_step"],
        stopped_early=state["stopped_early"],
        precision=precision,
        device=str(device),
        train_seconds=round(train_seconds, 2),
        samples_per_second=round(seen_examples / train_seconds, 2) if train_seconds else 0.0,
        history=state["history"],
        hooks=hooks.summary(),
    )
    if temporary is not None:
        temporary.cleanup()
    return result
