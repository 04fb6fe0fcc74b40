"""``learning_rate: auto``: a learning-rate range test (Smith 2017, "Cyclical Learning Rates") before training.

The rate grows geometrically, one optimizer step per batch, while the smoothed training loss is
recorded; the pick is a tenth of the rate where the loss was lowest (past that point the steps
are too large to keep descending), kept within 10x of the method's default. It costs at most
``BUDGET_SHARE`` of the planned optimizer steps (and stops sooner when the loss blows up), and the
weights, the RNG state and the train/eval mode are put back afterwards, so training starts from
the same point it would have without the test. The sweep and the pick go into the manifest.
"""

from __future__ import annotations

import math
import time

BUDGET_SHARE = 0.05  # the ceiling: the test may cost 5% of the training budget
MIN_SWEEP_STEPS = 8  # fewer points cannot show where the loss turns; then the default rate is kept
SWEEP_SPAN = 30.0  # the sweep runs from default/30 to default*30 (1e-6..1e-2 when there is no default)
SMOOTHING = 0.8  # exponential moving average of the loss, bias-corrected
DIVERGED = 4.0  # stop when the smoothed loss exceeds 4x its best
PICK_DIVISOR = 10.0  # the pick: the rate at the lowest loss / 10
MIN_DROP = 0.03  # a sweep whose loss fell less than 3% below its start never found a rate that trains
PICK_WINDOW = 10.0  # and within [default/10, default*10]


def sweep_steps(budget_steps: int) -> int:
    return int(BUDGET_SHARE * budget_steps)


def sweep_rates(default: float | None, steps: int) -> list[float]:
    low, high = (default / SWEEP_SPAN, default * SWEEP_SPAN) if default else (1e-6, 1e-2)
    return [low * (high / low) ** (index / max(1, steps - 1)) for index in range(steps)]


def pick_rate(rates: list[float], losses: list[float], default: float | None, diverged: bool = False
              ) -> tuple[float, str]:
    """(rate, why) from a sweep's smoothed losses.

    A loss that never fell by ``MIN_DROP`` and never blew up says every rate tried was too small to
    move it (the random-batch noise is all there is): then the largest rate tried is the pick.
    """
    lowest = min(range(len(losses)), key=losses.__getitem__)
    if not diverged and losses[lowest] > (1 - MIN_DROP) * losses[0]:
        pick = rates[-1]
        why = (f"the loss stayed within {MIN_DROP:.0%} of {losses[0]:.4f} up to {rates[-1]:.2e}: every rate tried "
               "was too small to move it; the largest")
    else:
        pick = rates[lowest] / PICK_DIVISOR
        why = f"lowest smoothed loss {losses[lowest]:.4f} at {rates[lowest]:.2e}; a tenth of that"
    if default:
        bounded = min(default * PICK_WINDOW, max(default / PICK_WINDOW, pick))
        if bounded != pick:
            why += f", kept within 10x of the default {default:.2e}"
        pick = bounded
    return float(f"{pick:.2g}"), why


def find_learning_rate(model, batches, loss_fn, cfg, device, precision: str, *, budget_steps: int,
                       default: float | None = None) -> tuple[float, dict]:
    """(the learning rate to train with, the record for ``training.learning_rate_search``)."""
    import torch

    from fmkit.train.precision import autocast

    steps = sweep_steps(budget_steps)
    if steps < MIN_SWEEP_STEPS:
        if default is None:
            raise ValueError(f"learning_rate=auto: a {budget_steps}-step budget leaves {steps} steps for the range "
                             f"test (5%), fewer than {MIN_SWEEP_STEPS}; give a learning rate")
        return default, {"skipped": f"a {budget_steps}-step budget allows {steps} range-test steps (5%), fewer than "
                                    f"{MIN_SWEEP_STEPS}; kept the default", "learning_rate": default}
    started = time.perf_counter()
    rates = sweep_rates(default, steps)
    saved = {name: value.detach().clone() for name, value in model.state_dict().items()}
    rng = torch.get_rng_state()
    was_training = model.training
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=rates[0], weight_decay=cfg.weight_decay)
    autocast_precision = "fp32" if precision == "fp16" else precision  # no loss scaler in a 5% probe
    model.train()
    smoothed, average, best, tried, diverged = [], 0.0, math.inf, [], False
    try:
        for index, batch in enumerate(_cycle(batches, steps)):
            for group in optimizer.param_groups:
                group["lr"] = rates[index]
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            with autocast(autocast_precision, device):
                loss = loss_fn(model, batch)
            value = float(loss.item())
            if not math.isfinite(value):
                diverged = True
                break
            loss.backward()
            if cfg.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(trainable, cfg.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            average = SMOOTHING * average + (1 - SMOOTHING) * value
            current = average / (1 - SMOOTHING ** (index + 1))
            smoothed.append(current)
            tried.append(rates[index])
            best = min(best, current)
            if current > DIVERGED * best:
                diverged = True
                break
    finally:
        model.load_state_dict(saved)
        torch.set_rng_state(rng)
        model.train(was_training)
    if len(smoothed) < 2:
        if default is None:
            raise ValueError("learning_rate=auto: the loss was not finite from the first range-test step; give a "
                             "learning rate")
        return default, {"skipped": "the loss was not finite at the smallest rate; kept the default",
                         "learning_rate": default}
    rate, why = pick_rate(tried, smoothed, default, diverged)
    return rate, {"learning_rate": rate, "why": why, "default": default, "steps": len(tried), "budget_steps": budget_steps,
                  "seconds": round(time.perf_counter() - started, 2),
                  "sweep": [{"learning_rate": float(f"{r:.3g}"), "loss": round(l, 5)} for r, l in zip(tried, smoothed)]}


def _cycle(batches, steps: int):
    """``steps`` training batches from epoch 0 on (a tiny training split wraps around)."""
    epoch, given = 0, 0
    while given < steps:
        produced = False
        for batch in batches.batches(epoch):
            produced = True
            yield batch
            given += 1
            if given == steps:
                return
        if not produced:
            return
        epoch += 1
