"""Differentially private fine-tuning (DP-SGD) with Opacus, as hooks of the shared training loop.

``DPHooks`` implements ``fmkit.train.hooks.TrainHooks``: ``setup`` swaps the batches for Poisson-sampled
ones (each training row joins a step independently with probability q = batch_size / N) and lets
Opacus wrap model and optimizer, with the noise multiplier calibrated so that the planned epochs
spend exactly the target ε at the given δ; ``split_batch`` cuts a Poisson batch into length-sorted
physical chunks and ``accumulate`` clips each chunk into Opacus' running sum (a skipped step), while
the loop itself runs every backward and the one real step (noise once, update once); ``after_step``
stops training before the budget would be exceeded; the accountant's history rides in checkpoints.
Per-sample gradients: ghost clipping for full fine-tuning (no per-sample gradient is materialised),
hooks for LoRA (few trainable parameters). The manifest gets ε, δ, the accountant, the noise
multiplier, q and the steps.
"""

from __future__ import annotations

import math
import warnings
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fmkit.errors import BadInputError
from fmkit.train.hooks import TrainHooks


class DPConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_epsilon: float = Field(8.0, gt=0, description="privacy budget ε for the whole training run")
    delta: float | None = Field(None, gt=0, lt=1, description="δ; default 1/(10·N), must be below 1/N")
    max_grad_norm: float = Field(1.0, gt=0, description="per-example gradient clipping norm C")
    accountant: Literal["prv", "rdp"] = Field("prv", description="privacy accountant: prv (tighter) or rdp")
    grad_sample_mode: Literal["auto", "ghost", "hooks"] = Field(
        "auto", description="per-sample gradients: ghost clipping (full FT) or hooks (LoRA); auto picks")
    secure_rng: bool = Field(False, description="cryptographically secure noise (needs torchcsprng)")
    dropout: bool = Field(
        False, description="keep the model's dropout during DP training. Off by default: DP-SGD's noise already "
        "regularizes, and on CPU dropout's random masks cost ~a third of a LoRA step (measured in docs/benchmarks.md)")
    physical_batch_size: int = Field(
        16, ge=1, description="rows per forward/backward: a Poisson batch is length-sorted and cut into chunks this "
        "size, each trimmed to its longest row (bounds memory, saves padding); the step is still one logical batch")


def switch_off_dropout(model) -> list[tuple]:
    """Set every active ``nn.Dropout`` in ``model`` to p = 0 (BERT's attention reads its rate from its Dropout
    module too); returns the (module, previous p) pairs so the caller can give the rates back."""
    import torch

    switched = [(m, m.p) for m in model.modules() if isinstance(m, torch.nn.Dropout) and m.p > 0]
    for module, _ in switched:
        module.p = 0.0
    return switched


def pad_dp_batch(examples: list[tuple[list[int], int]], pad_id: int) -> dict:
    """Pad a Poisson batch; position and token-type ids explicit with a batch dimension (Opacus needs them)."""
    import torch

    from fmkit.data.batching import pad_batch

    batch = pad_batch([ids for ids, _ in examples], pad_id)
    size, length = batch["input_ids"].shape
    batch["position_ids"] = torch.arange(length).expand(size, length).contiguous()
    batch["token_type_ids"] = torch.zeros(size, length, dtype=torch.long)
    batch["labels"] = torch.tensor([label for _, label in examples], dtype=torch.long)
    return batch


def physical_chunks(batch: dict, size: int) -> list[dict]:
    """Cut a padded batch into length-sorted chunks of at most ``size`` rows, each trimmed to its longest row."""
    import torch

    lengths = batch["attention_mask"].sum(dim=1)
    if len(lengths) <= size:
        longest = int(lengths.max()) if len(lengths) else 0
        return [{k: v[:, :longest].contiguous() if v.dim() == 2 else v for k, v in batch.items()}]
    order = torch.argsort(lengths, descending=True, stable=True)
    chunks = []
    for start in range(0, len(order), size):
        rows = order[start:start + size]
        longest = int(lengths[rows].max())
        chunks.append({k: (v[rows, :longest].contiguous() if v.dim() == 2 else v[rows]) for k, v in batch.items()})
    return chunks


class _Rows:
    def __init__(self, input_ids, labels):
        self.input_ids, self.labels = input_ids, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.input_ids[index], int(self.labels[index])


class PoissonBatches:
    """The loop's batch source over an Opacus DataLoader with Poisson sampling (empty draws skipped)."""

    def __init__(self, loader):
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def num_examples(self) -> int:
        return len(self.loader.dataset)

    def batches(self, epoch: int, start: int = 0):
        for index, batch in enumerate(self.loader):
            if index < start or batch["input_ids"].shape[0] == 0:
                continue
            yield batch


def steps_per_epoch(rows: int, batch_size: int) -> int:
    return max(1, round(rows / batch_size))


def make_loader(input_ids, labels, batch_size: int, pad_id: int, seed: int):
    """A DataLoader whose batch sampler draws each row with probability q = 1 / steps_per_epoch (Poisson).

    q is exactly the rate Opacus' accountant records (1 / len(loader)), so the ε calibrated before
    training is the ε the accountant reports after it; the expected batch is N·q ≈ batch_size.
    """
    import torch
    from opacus.utils.uniform_sampler import UniformWithReplacementSampler
    from torch.utils.data import DataLoader

    rows = _Rows(input_ids, labels)
    steps = steps_per_epoch(len(rows), batch_size)

    class Sampler(UniformWithReplacementSampler):
        def __len__(self):  # the parent computes int(1 / q), which float rounding can push to steps - 1
            return steps

    sampler = Sampler(num_samples=len(rows), sample_rate=1.0 / steps, generator=torch.Generator().manual_seed(seed))
    return DataLoader(rows, batch_sampler=sampler, collate_fn=lambda examples: pad_dp_batch(examples, pad_id))


def resolve_delta(cfg: DPConfig, rows: int) -> float:
    delta = cfg.delta if cfg.delta is not None else 1.0 / (10 * rows)
    if delta >= 1.0 / rows:
        raise BadInputError(f"delta={delta:g} is not below 1/N = {1 / rows:.3g} (N = {rows} training rows): a δ that "
                            f"large allows leaking a whole row. Use --delta {10 ** math.floor(math.log10(0.1 / rows)):g} "
                            "or smaller")
    return delta


def check_budget(cfg: DPConfig, sample_rate: float, epochs: int, steps: int, delta: float) -> float:
    """The noise multiplier that spends exactly ε over ``steps``; a clear error when ε cannot be met."""
    from opacus.accountants.utils import get_noise_multiplier

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Optimal order")  # RDP's note on its alpha grid
            return get_noise_multiplier(target_epsilon=cfg.target_epsilon, target_delta=delta,
                                        sample_rate=sample_rate, steps=steps, accountant=cfg.accountant)
    except ValueError:
        from opacus.accountants import create_accountant

        reachable = []
        for trial_epochs in (1, max(1, epochs // 2)):
            accountant = create_accountant(cfg.accountant)
            accountant.history = [(50.0, sample_rate, round(steps * trial_epochs / epochs))]
            reachable.append((trial_epochs, accountant.get_epsilon(delta)))
        hints = "; ".join(f"{e} epoch(s) at noise 50 spend ε≈{eps:.2f}" for e, eps in reachable)
        raise BadInputError(
            f"ε={cfg.target_epsilon} cannot be met with {epochs} epoch(s) at sample rate {sample_rate:.4g} "
            f"({steps} steps): {hints}. Raise --target-epsilon, train fewer epochs or use a smaller batch") from None


class DPHooks(TrainHooks):
    """``TrainHooks`` for DP-SGD (see the module docstring)."""

    def __init__(self, cfg: DPConfig, input_ids, labels, *, batch_size: int, epochs: int, pad_id: int, seed: int,
                 full_finetune: bool):
        if cfg.secure_rng:
            raise BadInputError("secure_rng needs torchcsprng, which is not installable with torch 2.13 here; "
                                "train with secure_rng off (warned) or on a machine that has it")
        self.cfg = cfg
        self.rows = len(labels)
        self.delta = resolve_delta(cfg, self.rows)
        self.loader = make_loader(input_ids, labels, batch_size, pad_id, seed)
        self.sample_rate = 1.0 / len(self.loader)  # what the accountant records per step
        self.epochs = epochs
        self.planned_steps = epochs * len(self.loader)
        self.noise_multiplier = check_budget(cfg, self.sample_rate, epochs, self.planned_steps, self.delta)
        self.mode = cfg.grad_sample_mode if cfg.grad_sample_mode != "auto" else ("ghost" if full_finetune else "hooks")
        self.engine = self.criterion = self.model = self.optimizer = None
        self._dropout_rates: list = []  # (module, p) set to 0 for training, restored by cleanup

    def setup(self, model, optimizer, batches):
        import torch
        from opacus import PrivacyEngine

        warnings.warn("DP-SGD noise comes from torch's default (non-cryptographic) RNG: fine for experiments; "
                      "for a release, use secure_rng on a machine with torchcsprng", stacklevel=2)
        self.engine = PrivacyEngine(accountant=self.cfg.accountant, secure_mode=False)
        model.train()
        if not self.cfg.dropout:
            self._dropout_rates = switch_off_dropout(model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Opacus' own notes on secure mode and optimizer flags
            wrapped = self.engine.make_private(
                module=model, optimizer=optimizer, data_loader=self.loader,
                criterion=torch.nn.CrossEntropyLoss(reduction="mean"), noise_multiplier=self.noise_multiplier,
                max_grad_norm=self.cfg.max_grad_norm, poisson_sampling=False, grad_sample_mode=self.mode)
        if self.mode == "ghost":
            self.model, optimizer, self.criterion, loader = wrapped
        else:
            self.model, optimizer, loader = wrapped
            self.criterion = torch.nn.CrossEntropyLoss(reduction="mean")
        self.optimizer = optimizer
        return self.model, optimizer, PoissonBatches(loader)

    def wrap_loss(self, loss_fn):
        """Opacus' criterion on the logits (ghost clipping needs its own); the stage's loss is not used."""

        def dp_loss(model, chunk):
            inputs = {k: v for k, v in chunk.items() if k != "labels"}
            return self.criterion(model(**inputs).logits, chunk["labels"])

        return dp_loss

    def split_batch(self, batch: dict) -> list[dict]:
        """Physical batches inside one logical (Poisson) batch, as Opacus' BatchMemoryManager cuts them."""
        return physical_chunks(batch, self.cfg.physical_batch_size)

    def accumulate(self, optimizer) -> None:
        """Every chunk but a step's last: clip its per-example gradients into the step's sum, as a step that Opacus
        skips (no noise, no update, no accountant step); the loop's real step on the last chunk noises once."""
        optimizer.signal_skip_step(do_skip=True)
        optimizer.step()
        optimizer.zero_grad()  # drops the chunk's per-example gradients; the clipped sum stays while skipping

    def after_step(self, step: int) -> bool:
        return step >= self.planned_steps  # the calibrated budget is spent exactly here

    def epsilon(self) -> float:
        return float(self.engine.accountant.get_epsilon(self.delta)) if self.engine.accountant.history else 0.0

    def state_dict(self) -> dict:
        return {"history": [list(entry) for entry in self.engine.accountant.history]} if self.engine else {}

    def load_state_dict(self, state: dict) -> None:
        if state.get("history"):
            self.engine.accountant.history = [tuple(entry) for entry in state["history"]]

    def summary(self) -> dict:
        steps = sum(entry[2] for entry in self.engine.accountant.history) if self.engine else 0
        return {"epsilon": self.epsilon(), "target_epsilon": self.cfg.target_epsilon, "delta": self.delta,
                "accountant": self.cfg.accountant, "noise_multiplier": self.noise_multiplier,
                "max_grad_norm": self.cfg.max_grad_norm, "sample_rate": self.sample_rate,
                "expected_batch_size": round(self.sample_rate * self.rows, 3), "training_rows": self.rows,
                "steps": steps, "planned_steps": self.planned_steps, "grad_sample_mode": self.mode,
                "dropout": self.cfg.dropout, "physical_batch_size": self.cfg.physical_batch_size,
                "poisson_sampling": True, "secure_rng": False}

    def cleanup(self) -> None:
        """Remove Opacus' hooks from the trained model (the weights stay) and give dropout its rates back."""
        for module, rate in self._dropout_rates:
            module.p = rate
        if self.model is not None and hasattr(self.model, "remove_hooks"):
            try:
                self.model.remove_hooks()
            except Exception:  # noqa: BLE001  (already removed)
                pass
