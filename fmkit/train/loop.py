"""The training loop every fmkit method shares.

Full fine-tuning, LoRA, DP-SGD, image fine-tuning and MLM pretraining differ only in the model
they hand in, the ``loss_fn`` and the :class:`~fmkit.train.hooks.TrainHooks` that wrap model,
optimizer and batches. ``train`` runs its jobs in order: set up (optimizer, schedule, hooks) and
resume, the epochs of steps (each step one or more passes, see fmkit/train/hooks.py), evaluation
with early stopping, checkpoints, the result.

Under torchrun (fmkit/train/distributed.py) the same loop trains data-parallel: each rank gets its share of the
same batches, passes run through DDP (or FSDP shards: fmkit/train/parallel.py), rank 0 evaluates, calls the
callbacks and writes the checkpoints, and its decisions reach every rank.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol, Sequence

import torch

from fmkit.errors import TrainingDivergedError
from fmkit.train.callbacks import TrainCallback, check_callbacks
from fmkit.train import distributed
from fmkit.train.checkpoint import load_best, load_checkpoint, save_best, save_checkpoint
from fmkit.train.config import TrainConfig
from fmkit.train.hooks import TrainHooks, check_hooks
from fmkit.train.parallel import Parallel, lay_out, pop_filler, wrap
from fmkit.train.precision import autocast, resolve_precision, select_device
from fmkit.train.schedule import Schedule, plan_schedule

__all__ = ["BatchSource", "TrainHooks", "TrainResult", "default_loss", "linear_schedule", "parameter_groups", "train"]


class BatchSource(Protocol):
    """Deterministic batches: the same epoch yields the same batches (resume depends on it)."""

    num_examples: int

    def __len__(self) -> int: ...

    def batches(self, epoch: int, start: int = 0) -> Iterator[dict[str, torch.Tensor]]: ...


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
    schedule: dict = field(default_factory=dict)  # the step budget and why (fmkit/train/schedule.py)
    learning_rate: float | None = None  # the peak rate trained with
    learning_rate_search: dict | None = None  # the range test's sweep and pick when learning_rate was auto
    world_size: int = 1  # torchrun ranks that trained together
    backend: str | None = None  # their torch.distributed backend (gloo, nccl)
    global_batch: int | None = None  # examples per optimizer step: per-rank batch x ranks x accumulation
    parallel: dict = field(default_factory=dict)  # strategy (single, ddp, fsdp), gradient checkpointing

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


def _rows(batch: dict) -> int:
    """Examples in a batch, for samples/s: every tensor of a batch (texts, images, labels) leads with its rows."""
    return next((int(value.shape[0]) for value in batch.values() if torch.is_tensor(value) and value.dim()), 0)


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _fresh_state() -> dict:
    """The loop's counters: what a checkpoint saves and ``--resume`` restores."""
    return {"epoch": 0, "batch": 0, "step": 0, "best": None, "best_loss": None, "best_step": None, "bad_evals": 0,
            "history": [], "stopped_early": False, "hooks": {}}


@dataclass
class _Run:
    """Everything one call of ``train`` works on; the functions below are its jobs."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    batches: BatchSource
    hooks: TrainHooks
    cfg: TrainConfig
    loss_fn: Callable
    evaluate_fn: Callable[[torch.nn.Module], dict] | None
    selection_metric: str
    checkpoint_dir: Path
    device: torch.device
    precision: str
    schedule: Schedule
    learning_rate_search: dict | None = None
    parallel: Parallel | None = None
    callbacks: list[TrainCallback] = field(default_factory=list)
    state: dict = field(default_factory=_fresh_state)
    seen_examples: int = 0
    train_seconds: float = 0.0
    running_loss: float | None = None  # over optimizer steps, reduced across ranks
    step_loss: list = field(default_factory=lambda: [0.0, 0])  # this rank's (loss x rows, rows) in the current step

    @property
    def ranks(self) -> distributed.Ranks:
        return self.parallel.ranks


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
    default_learning_rate: float | None = None,
    announce: Callable[[str], None] | None = None,
    callbacks: Sequence[TrainCallback] = (),
) -> TrainResult:
    """Train ``model`` in place; on return it holds the best validation weights.

    ``epochs``/``early_stopping_patience`` ``auto`` are planned from the data size (fmkit/train/schedule.py);
    ``learning_rate`` ``auto`` runs a range test around ``default_learning_rate`` first (fmkit/train/lr_range.py;
    it trains the bare model with ``loss_fn``, outside the hooks). ``announce`` gets one line per choice;
    ``callbacks`` (fmkit/train/callbacks.py) watch each step and evaluation and may stop training.
    """
    hooks = check_hooks(hooks)
    callbacks = check_callbacks(callbacks)
    if cfg.learning_rate is None:
        raise ValueError("TrainConfig.learning_rate is unset; the calling stage must resolve its default")
    if checkpoint_dir is None:
        directory = tempfile.TemporaryDirectory(prefix="fmkit-train-")
    else:
        directory = contextlib.nullcontext(str(checkpoint_dir))
    ranks = distributed.setup(cfg.device)
    with directory as checkpoints:
        run = _prepare(model, batches, cfg, hooks, loss_fn, evaluate_fn, selection_metric, Path(checkpoints),
                       default_learning_rate, announce or (lambda line: None), ranks)
        run.callbacks = callbacks if ranks.is_main else []  # rank 0 observes; its stop decision is broadcast
        try:
            if resume:
                _restore(run, announce or (lambda line: None))
            _run_epochs(run)
            result = _result(run)
        except RuntimeError as error:
            if ranks.active and distributed.is_peer_loss(error):
                raise distributed.peer_failed(ranks, error, checkpoint_dir or checkpoints) from error
            raise
        for callback in run.callbacks:
            callback.on_end(result)
        return result


def _plan(cfg: TrainConfig, batches, evaluates: bool, world_size: int = 1) -> Schedule:
    """``world_size``: the ranks that will share ``batches`` (already a rank's share: 1)."""
    steps_per_epoch = math.ceil(math.ceil(len(batches) / world_size) / cfg.gradient_accumulation_steps)
    return plan_schedule(cfg, steps_per_epoch, evaluates=evaluates, fixed_epochs=getattr(batches, "fixed_epochs", None))


def _prepare(model, batches, cfg, hooks, loss_fn, evaluate_fn, selection_metric, checkpoint_dir,
             default_learning_rate, announce, ranks) -> _Run:
    """Device, precision, seed, the step budget, the learning rate, optimizer and LR schedule; the hooks wrap
    model, optimizer and batches; under torchrun each rank's batches and the DDP/FSDP wrapping."""
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    device = select_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    torch.manual_seed(cfg.seed)
    facts: dict = {}
    if cfg.gradient_checkpointing:  # before any wrapping: DDP/FSDP must see the checkpointed layers
        from fmkit.train.checkpointing import enable_gradient_checkpointing

        facts["gradient_checkpointing"] = enable_gradient_checkpointing(
            model, every_n_layers=cfg.gradient_checkpointing_every)
        announce(f"gradient checkpointing: {facts['gradient_checkpointing']}")
    model.to(device)
    search = None
    if cfg.learning_rate == "auto":
        from fmkit.train.lr_range import find_learning_rate

        budget = _plan(cfg, batches, evaluate_fn is not None, ranks.world_size).total_steps
        # one range test on rank 0 (every rank would repeat the same sweep); its pick reaches every rank
        rate, search = distributed.on_main(ranks, lambda: find_learning_rate(
            model, batches, loss_fn, cfg, device, precision, budget_steps=budget, default=default_learning_rate))
        announce(f"learning rate {rate:.2e} (auto: {search.get('why') or search.get('skipped')}; "
                 f"{search.get('steps', 0)} range-test steps of a {budget}-step budget)")
        cfg = cfg.model_copy(update={"learning_rate": rate})
        torch.manual_seed(cfg.seed)  # training starts as it would have without the test
    # The fused kernel updates all parameters in one pass: ~20% faster steps on CPU for MiniLM.
    fused = device.type in ("cpu", "cuda")
    parallel = lay_out(model, loss_fn, cfg, ranks, device)
    optimizer = torch.optim.AdamW(parameter_groups(parallel.trained, cfg.weight_decay), lr=cfg.learning_rate,
                                  fused=fused)
    model, optimizer, batches = hooks.setup(model, optimizer, batches)
    parallel.model = model
    if ranks.active:
        batches = distributed.RankBatches(batches, ranks)
        torch.manual_seed(cfg.seed + ranks.rank)  # each rank its own dropout masks (weights: DDP broadcasts rank 0's)
    wrap(parallel, hooks.wrap_loss(loss_fn), device)
    facts.update(strategy=parallel.strategy, **ranks.facts(cfg.batch_size, cfg.gradient_accumulation_steps))
    parallel.notes = facts
    if ranks.active:
        announce(f"distributed: {ranks.world_size} ranks ({parallel.strategy}, {ranks.backend}); global batch "
                 f"{cfg.batch_size} per rank x {ranks.world_size} ranks x {cfg.gradient_accumulation_steps} "
                 f"accumulation = {facts['global_batch']}")
    schedule = _plan(cfg, batches, evaluate_fn is not None)  # on the hooks' (and this rank's) batches
    announce(f"schedule: {schedule.reason}")
    cfg = schedule.apply(cfg)
    total_steps = schedule.total_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, linear_schedule(int(cfg.warmup_ratio * total_steps), total_steps)
    )
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    return _Run(model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, batches=batches, hooks=hooks,
                cfg=cfg, loss_fn=hooks.wrap_loss(loss_fn), evaluate_fn=evaluate_fn, selection_metric=selection_metric,
                checkpoint_dir=checkpoint_dir, device=device, precision=precision, schedule=schedule,
                learning_rate_search=search, parallel=parallel)


def _restore(run: _Run, announce: Callable[[str], None]) -> None:
    """``--resume`` (and a torchrun restart): weights, optimizer, schedule, RNG, counters and the hooks' state from the
    last checkpoint."""
    parallel = run.parallel
    restored = load_checkpoint(run.checkpoint_dir, run.model, run.optimizer, run.scheduler, rank=run.ranks.rank,
                               load_states=parallel.load_states if parallel.sharded is not None else None)
    if restored is None:
        warnings.warn(f"--resume: no checkpoint in {run.checkpoint_dir}; training starts from the beginning",
                      stacklevel=3)  # the caller of train
        return
    run.state = restored
    run.running_loss = restored.pop("running_loss", None)
    run.hooks.load_state_dict(restored.get("hooks", {}))
    announce(f"resumed from {run.checkpoint_dir / 'latest'} at optimizer step {restored['step']} (epoch "
             f"{restored['epoch'] + 1}, batch {restored['batch']})")


def _snapshot(run: _Run) -> None:
    """Rank 0 writes; the collectives before it (RNG states, FSDP's full states) run on every rank."""
    run.state["hooks"] = run.hooks.state_dict()
    run.state["running_loss"] = run.running_loss  # the logged loss curve continues where it was
    parallel = run.parallel
    rng, tensors, optimizer_state = parallel.rng_states(), parallel.model_state(), parallel.optimizer_state(run.optimizer)
    if run.ranks.is_main:
        save_checkpoint(run.checkpoint_dir, run.model, run.optimizer, run.scheduler, run.state, model_tensors=tensors,
                        optimizer_state=optimizer_state, rng_states=rng)


def _run_epochs(run: _Run) -> None:
    from tqdm.auto import tqdm

    cfg, state, batches = run.cfg, run.state, run.batches
    progress = tqdm(total=cfg.epochs * len(batches), initial=state["epoch"] * len(batches) + state["batch"],
                    disable=not (cfg.progress and run.ranks.is_main), unit="batch", dynamic_ncols=True, leave=False)
    run.parallel.trained.train()
    done = state["stopped_early"] or (cfg.max_steps is not None and state["step"] >= cfg.max_steps)
    try:
        while not done and state["epoch"] < cfg.epochs:
            done = _run_epoch(run, progress)
    finally:
        progress.close()


def _run_epoch(run: _Run, progress) -> bool:
    """The rest of the current epoch, evaluated and checkpointed at its end; True when training is over."""
    cfg, state, batches = run.cfg, run.state, run.batches
    epoch, started, accumulated, done = state["epoch"], time.perf_counter(), 0, False
    for batch in batches.batches(epoch, start=state["batch"]):
        accumulated += 1
        ends_step = accumulated == cfg.gradient_accumulation_steps or state["batch"] + 1 == len(batches)
        _passes(run, _to_device(batch, run.device), ends_step)
        state["batch"] += 1
        if ends_step:
            accumulated = 0
            _optimizer_step(run)
            if _after_step(run, epoch):
                state["stopped_early"] = done = True
                break
        elapsed = run.train_seconds + time.perf_counter() - started
        progress.update(1)
        progress.set_postfix(epoch=epoch + 1, loss=f"{run.running_loss:.4f}" if run.running_loss is not None else "-",
                             samples_s=f"{run.seen_examples / max(elapsed, 1e-9):.1f}", refresh=False)
    run.train_seconds += time.perf_counter() - started
    already_evaluated = state["history"] and state["history"][-1]["step"] == state["step"]
    if not already_evaluated and _evaluate(run, epoch + state["batch"] / len(batches)):
        state["stopped_early"] = done = True
    if state["batch"] == len(batches):
        state["epoch"], state["batch"] = epoch + 1, 0
    _snapshot(run)
    return done


def _passes(run: _Run, batch: dict, ends_step: bool) -> None:
    """Forward and backward of one batch, in the parts the hooks split it into; gradients accumulate (and are
    all-reduced across ranks on the step's last pass). A rank's filler batch (distributed.RankBatches) counts 0."""
    batch, filler = pop_filler(batch)
    parts = run.hooks.split_batch(batch)
    total_loss = 0.0
    for index, part in enumerate(parts):
        last = ends_step and index == len(parts) - 1
        with run.parallel.passes(last):
            with autocast(run.precision, run.device):
                loss = run.parallel.loss(part)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise TrainingDivergedError(
                    f"loss became {loss_value} at epoch {run.state['epoch'] + 1}, optimizer step {run.state['step']}; "
                    f"the last good checkpoint is kept in {run.checkpoint_dir}. Lower the learning rate "
                    f"(now {run.cfg.learning_rate}), keep gradient clipping on, or try precision=fp32"
                )
            scaled = loss / run.cfg.gradient_accumulation_steps
            if filler:
                scaled = scaled * 0.0
            (run.scaler.scale(scaled) if run.scaler else scaled).backward()
        if not last:
            run.hooks.accumulate(run.optimizer)
        total_loss += loss_value * _rows(part)
    rows = 0 if filler else _rows(batch)
    run.step_loss[0] += total_loss if rows else 0.0
    run.step_loss[1] += rows


def _optimizer_step(run: _Run) -> None:
    """Unscale (fp16), clip the global norm, step, schedule, clear the gradients."""
    optimizer, scaler, cfg = run.optimizer, run.scaler, run.cfg
    if scaler:
        scaler.unscale_(optimizer)
    if cfg.max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_([p for p in run.parallel.trained.parameters() if p.requires_grad],
                                       cfg.max_grad_norm)
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    run.scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    run.state["step"] += 1
    # the step's loss over every rank's examples: what the log, the progress bar and the callbacks see
    loss_sum, rows = distributed.all_sum(run.ranks, run.step_loss) if run.ranks.active else run.step_loss
    run.step_loss = [0.0, 0]
    run.seen_examples += int(rows)
    if rows:
        step_loss = loss_sum / rows
        run.running_loss = step_loss if run.running_loss is None else 0.9 * run.running_loss + 0.1 * step_loss


def _after_step(run: _Run, epoch: int) -> bool:
    """The hooks' verdict, a scheduled evaluation, max_steps and a periodic checkpoint; True stops training."""
    cfg, state = run.cfg, run.state
    stop = run.hooks.after_step(state["step"])
    if run.callbacks:  # rank 0's only (train); an evaluation's stop verdict is broadcast in _evaluate
        rate = run.scheduler.get_last_lr()[0]
        for callback in run.callbacks:
            callback.on_step(state["step"], run.running_loss, rate)
    if cfg.eval_every_steps and state["step"] % cfg.eval_every_steps == 0:
        stop |= _evaluate(run, epoch + state["batch"] / len(run.batches))
    if cfg.max_steps is not None and state["step"] >= cfg.max_steps:
        stop = True
    if not stop and state["step"] % cfg.checkpoint_every_steps == 0:
        _snapshot(run)
    return stop


def _evaluate(run: _Run, epoch_float: float) -> bool:
    """Evaluate, remember the best weights; True when early stopping's patience is exhausted.

    Under torchrun rank 0 evaluates its plain model (the same weights every rank holds; FSDP gathers them first)
    and sends the verdict and the loop's counters to every rank, so all of them stop at the same step."""
    if run.evaluate_fn is None:
        return False
    if not run.ranks.active:
        return _evaluate_here(run, epoch_float)
    run.parallel.gather()
    stop, state = distributed.on_main(run.ranks, lambda: (_evaluate_here(run, epoch_float), run.state))
    if not run.ranks.is_main:
        run.state.clear()
        run.state.update(state)
    return stop


def _evaluate_here(run: _Run, epoch_float: float) -> bool:
    state = run.state
    metrics = run.evaluate_fn(run.model)
    run.parallel.trained.train()
    run.model.train()
    score, loss = metrics[run.selection_metric], metrics.get("log_loss")
    state["history"].append({"epoch": round(epoch_float, 3), "step": state["step"], "train_loss": run.running_loss,
                             **metrics})  # train_loss: the running loss over every rank's examples
    # A tie broken by a lower validation loss: a model stuck predicting one class keeps the same macro-F1 for
    # several epochs while it learns, and must not be stopped for that (issue 15's LoRA collapse).
    tied_but_better = (score == state["best"] and loss is not None and state.get("best_loss") is not None
                       and loss < state["best_loss"])
    if state["best"] is None or score > state["best"] or tied_but_better:
        state["best"], state["best_step"], state["bad_evals"] = score, state["step"], 0
        state["best_loss"] = loss
        save_best(run.checkpoint_dir, run.model)
    else:
        state["bad_evals"] += 1
    stop = False
    for callback in run.callbacks:
        stop |= bool(callback.on_evaluate(state["step"], round(epoch_float, 3), metrics))
    patience = run.cfg.early_stopping_patience
    return stop or (patience is not None and state["bad_evals"] >= patience)


def _result(run: _Run) -> TrainResult:
    """The best validation weights back in the model, and the run's figures."""
    state, parallel = run.state, run.parallel
    if run.evaluate_fn is not None:
        if run.ranks.is_main:
            load_best(run.checkpoint_dir, run.model)
        parallel.share_main_weights()  # every rank returns holding the best weights
    else:
        parallel.gather()  # FSDP: the last weights into the plain model
    notes = parallel.notes
    return TrainResult(
        steps=state["step"],
        epochs_completed=round(state["epoch"] + state["batch"] / max(1, len(run.batches)), 3),
        best_metric=state["best"],
        best_step=state["best_step"],
        stopped_early=state["stopped_early"],
        precision=run.precision,
        device=str(run.device),
        train_seconds=round(run.train_seconds, 2),
        samples_per_second=round(run.seen_examples / run.train_seconds, 2) if run.train_seconds else 0.0,
        history=state["history"],
        hooks=run.hooks.summary(),
        schedule=run.schedule.as_dict(),
        learning_rate=run.cfg.learning_rate,
        learning_rate_search=run.learning_rate_search,
        world_size=run.ranks.world_size,
        backend=run.ranks.backend,
        global_batch=notes.get("global_batch"),
        parallel={key: notes[key] for key in ("strategy", "per_rank_batch", "gradient_accumulation_steps",
                                              "gradient_checkpointing") if key in notes},
    )
