"""DP-SGD through the shared loop: ε matches Opacus' accountant exactly, clipping bounds each example, physical
chunks change no weight, bad input."""

import json
import subprocess
import sys

import pytest

from fmkit.errors import BadInputError


def fmkit(*args):
    return subprocess.run([sys.executable, "-m", "fmkit", *map(str, args)], capture_output=True, text=True)


def finetune_cfg(tiny_bert_dir, reviews_csv, method="full", **privacy):
    from fmkit.finetune import FinetuneConfig

    return FinetuneConfig(model=str(tiny_bert_dir), data={"source": str(reviews_csv)}, method=method,
                          train={"epochs": 2, "batch_size": 24, "learning_rate": 5e-3, "progress": False},
                          privacy={"target_epsilon": 8.0, "delta": 1e-4, **privacy})


@pytest.mark.parametrize("method, mode", [("full", "ghost"), ("lora", "hooks")])
def test_dp_training_reports_the_accountants_epsilon(tiny_bert_dir, reviews_csv, tmp_path, method, mode):
    from opacus.accountants import create_accountant

    from fmkit.bundle import read_manifest
    from fmkit.finetune.stage import run_finetune

    out = tmp_path / method
    cfg = finetune_cfg(tiny_bert_dir, reviews_csv, method)
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"early_stopping_patience": None})})
    run_finetune(cfg, out)
    dp = read_manifest(out).privacy["dp"]
    assert dp["grad_sample_mode"] == mode and dp["accountant"] == "prv" and dp["delta"] == 1e-4
    # Opacus' own accountant for the same steps, sampling rate and noise: the same ε, exactly
    accountant = create_accountant("prv")
    accountant.history = [(dp["noise_multiplier"], dp["sample_rate"], dp["steps"])]
    assert dp["epsilon"] == accountant.get_epsilon(1e-4)
    assert dp["steps"] == dp["planned_steps"] == 2 * 13  # 320 rows / 24 per batch -> 13 steps an epoch
    assert dp["sample_rate"] == 1 / 13  # the rate the sampler draws with is the rate the accountant records
    assert 7.9 <= dp["epsilon"] <= 8.0  # calibrated to spend the budget, never more


def test_per_example_clipping_bounds_each_contribution(tiny_bert_dir):
    """With noise 0 and plain SGD (lr 1), one example's update has norm min(||g||, C): clipping bounds it."""
    import torch
    from opacus import PrivacyEngine
    from transformers import AutoModelForSequenceClassification

    from fmkit.privacy.dp import make_loader

    clip = 0.01
    for mode in ("hooks", "ghost"):
        model = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert_dir)).train()
        before = [p.detach().clone() for p in model.parameters()]
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        loader = make_loader([[2, 5, 6, 7, 3]], [1], batch_size=1, pad_id=0, seed=0)
        engine = PrivacyEngine(accountant="rdp")
        wrapped = engine.make_private(module=model, optimizer=optimizer, data_loader=loader,
                                      criterion=torch.nn.CrossEntropyLoss(), noise_multiplier=0.0,
                                      max_grad_norm=clip, poisson_sampling=False, grad_sample_mode=mode)
        module, optimizer, criterion = wrapped[0], wrapped[1], (wrapped[2] if mode == "ghost" else
                                                                 torch.nn.CrossEntropyLoss())
        batch = next(iter(loader))
        loss = criterion(module(**{k: v for k, v in batch.items() if k != "labels"}).logits * 50, batch["labels"])
        loss.backward()
        optimizer.step()
        update = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(model.parameters(), before)))
        assert update.item() == pytest.approx(clip, rel=1e-3), mode  # the raw gradient is far larger than C


def test_delta_epsilon_and_budget_errors(tiny_bert_dir, reviews_csv, tmp_path):
    from fmkit.finetune.stage import run_finetune

    with pytest.raises(ValueError, match="target_epsilon"):
        finetune_cfg(tiny_bert_dir, reviews_csv, target_epsilon=0)
    with pytest.raises(BadInputError, match=r"delta=0.01 is not below 1/N = 0.003.*320 training rows"):
        run_finetune(finetune_cfg(tiny_bert_dir, reviews_csv, delta=0.01), tmp_path / "a")
    with pytest.raises(BadInputError, match=r"ε=0.001 cannot be met with 2 epoch\(s\).*Raise --target-epsilon"):
        run_finetune(finetune_cfg(tiny_bert_dir, reviews_csv, target_epsilon=0.001), tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_cli_dp_flags_need_privacy_dp(tiny_bert_dir, reviews_csv, tmp_path):
    result = fmkit("finetune", "--model", tiny_bert_dir, "--data", reviews_csv, "--target-epsilon", "4",
                   "--out", tmp_path / "x")
    assert result.returncode == 2 and "add --privacy dp" in result.stderr
    result = fmkit("finetune", "--model", tiny_bert_dir, "--data", reviews_csv, "--privacy", "dp",
                   "--target-epsilon", "-1", "--out", tmp_path / "x")
    assert result.returncode == 2 and "target_epsilon" in result.stderr


@pytest.mark.parametrize("mode", ["hooks", "ghost"])
def test_physical_chunks_give_the_same_update_as_one_pass(tiny_bert_dir, mode):
    """Virtual steps over length-sorted chunks (noise 0) update the weights exactly as one big pass does."""
    import torch
    from opacus import PrivacyEngine
    from transformers import AutoModelForSequenceClassification

    from fmkit.privacy.dp import DPConfig, DPHooks, make_loader, physical_chunks

    rows = [[2] + [5 + (i * 7 + j) % 20 for j in range(3 + i % 9)] + [3] for i in range(12)]
    labels = [i % 2 for i in range(12)]
    loader = make_loader(rows, labels, batch_size=12, pad_id=0, seed=0)
    batch = loader.collate_fn([(r, l) for r, l in zip(rows, labels)])
    assert sum(c["input_ids"].shape[0] for c in physical_chunks(batch, 5)) == 12
    updates = []
    for size in (64, 5):
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert_dir)).train()
        model.config.hidden_dropout_prob = 0.0
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        before = [p.detach().clone() for p in model.parameters()]
        hooks = DPHooks.__new__(DPHooks)
        hooks.cfg = DPConfig(physical_batch_size=size)
        engine = PrivacyEngine(accountant="rdp")
        wrapped = engine.make_private(module=model, optimizer=torch.optim.SGD(model.parameters(), lr=1.0),
                                      data_loader=loader, criterion=torch.nn.CrossEntropyLoss(), noise_multiplier=0.0,
                                      max_grad_norm=0.5, poisson_sampling=False, grad_sample_mode=mode)
        hooks.criterion = wrapped[2] if mode == "ghost" else torch.nn.CrossEntropyLoss()
        dp_loss, parts = hooks.wrap_loss(None), hooks.split_batch(batch)
        assert len(parts) == (1 if size == 64 else 3)
        for index, part in enumerate(parts):  # the loop's passes: accumulate after each but the step's last
            dp_loss(wrapped[0], part).backward()
            if index < len(parts) - 1:
                hooks.accumulate(wrapped[1])
        wrapped[1].step()
        updates.append(torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)]))
        assert len(engine.accountant.history) == 1 and engine.accountant.history[0][2] == 1  # one step counted
    assert torch.allclose(updates[0], updates[1], atol=1e-6)


@pytest.mark.parametrize("mode", ["hooks", "ghost"])
def test_the_loop_with_physical_chunks_reaches_the_weights_of_unchunked_steps(tiny_bert_dir, mode):
    """Through ``train``, noise included (same seed, same draws): Poisson steps computed in chunks of 5 rows end
    at the weights of the same steps computed in one pass each."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from fmkit.privacy.dp import DPConfig, DPHooks
    from fmkit.train import TrainConfig, train

    class CountingHooks(DPHooks):
        def accumulate(self, optimizer):
            self.accumulated += 1
            super().accumulate(optimizer)

    rows = [[2] + [5 + (i * 7 + j) % 20 for j in range(3 + i % 9)] + [3] for i in range(48)]
    labels = [i % 2 for i in range(48)]
    weights, accumulated = [], []
    for size in (64, 5):
        model = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert_dir))
        start = torch.cat([p.detach().flatten() for p in model.parameters()])
        hooks = CountingHooks(DPConfig(target_epsilon=8.0, delta=1e-3, grad_sample_mode=mode, physical_batch_size=size),
                              rows, labels, batch_size=16, epochs=1, pad_id=0, seed=0, full_finetune=mode == "ghost")
        hooks.accumulated = 0
        result = train(model, hooks.loader, TrainConfig(epochs=1, batch_size=16, learning_rate=5e-3, max_grad_norm=None,
                                                        precision="fp32", progress=False, early_stopping_patience=None),
                       hooks=hooks)
        hooks.cleanup()
        assert result.steps == result.hooks["steps"] == 3
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
        accumulated.append(hooks.accumulated)
        assert not torch.allclose(weights[-1], start)
    assert accumulated[0] == 0 and accumulated[1] >= 6  # ~16 rows a step: 3-4 chunks, all but the last accumulate
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=1e-5)


def test_dropout_is_off_during_dp_training_and_restored_after(tiny_bert_dir, reviews_csv, tmp_path):
    import torch

    from fmkit.bundle import read_manifest
    from fmkit.finetune.stage import run_finetune
    from fmkit.privacy.dp import DPHooks

    seen, models = [], []
    original_setup = DPHooks.setup

    def spying_setup(self, model, optimizer, batches):
        wrapped = original_setup(self, model, optimizer, batches)
        seen.append(sorted({m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}))
        models.append(model)
        return wrapped

    DPHooks.setup = spying_setup
    try:
        for keep in (False, True):
            out = tmp_path / f"dropout-{keep}"
            run_finetune(finetune_cfg(tiny_bert_dir, reviews_csv, "lora", dropout=keep), out)
            assert read_manifest(out).privacy["dp"]["dropout"] is keep
    finally:
        DPHooks.setup = original_setup
    assert seen[0] == [0.0]  # every dropout off while DP trains...
    assert 0.0 not in {m.p for m in models[0].modules() if isinstance(m, torch.nn.Dropout)}  # ...and back after
    assert 0.0 not in seen[1] and len(seen[1]) >= 1  # --dp-dropout keeps them


def test_dp_dropout_flag_reaches_the_config(tiny_bert_dir, reviews_csv, tmp_path):
    result = fmkit("finetune", "--model", tiny_bert_dir, "--data", reviews_csv, "--out", tmp_path / "m",
                   "--dp-dropout", "--epochs", "1")
    assert result.returncode == 2 and "--dp-dropout only apply to DP training; add --privacy dp" in result.stderr
