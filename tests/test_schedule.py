"""Issue 15 parts 1, 2, 3, 7: the step budget, the learning-rate range test, class-balanced losses and
collapse detection, on plain numbers and tiny in-code torch models (milliseconds each)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from fmkit.finetune.collapse import chance_macro_f1, collapse_message, detect_collapse
from fmkit.train.config import TrainConfig
from fmkit.train.losses import ClassificationCriterion, LossConfig, criterion_for, resolve_class_weights
from fmkit.train.lr_range import BUDGET_SHARE, find_learning_rate, pick_rate
from fmkit.train.schedule import AUTO_MAX_EPOCHS, AUTO_MIN_STEPS, plan_schedule


# --- the step budget -------------------------------------------------------------------------------------

@pytest.mark.parametrize("rows, epochs, patience", [
    (10_246, 3, 2),   # the Rotten Tomatoes demo split: exactly the old default (3 epochs, patience 2)
    (2_291, 12, 3),   # issue 15's 8-class set: the 12 epochs / patience 3 that reached 0.853
    (600, 40, 8),     # the 4-class LoRA set that collapsed in 30 steps: capped at 40 epochs
])
def test_auto_budget_gives_small_data_many_epochs_and_large_data_the_old_three(rows, epochs, patience):
    plan = plan_schedule(TrainConfig(), math.ceil(rows / 32))
    assert (plan.epochs, plan.patience, plan.source) == (epochs, patience, "auto")
    assert plan.total_steps == epochs * math.ceil(rows / 32)
    assert plan.total_steps >= min(AUTO_MIN_STEPS, AUTO_MAX_EPOCHS * math.ceil(rows / 32))
    assert f"{epochs} epochs" in plan.reason and "early stopping" in plan.reason


def test_explicit_epochs_and_max_steps_win():
    assert plan_schedule(TrainConfig(epochs=2), 19).total_steps == 38
    by_steps = plan_schedule(TrainConfig(max_steps=50), 19)
    assert (by_steps.epochs, by_steps.total_steps, by_steps.source) == (3, 50, "max_steps")
    both = plan_schedule(TrainConfig(epochs=5, max_steps=50, early_stopping_patience=4), 19)
    assert (both.epochs, both.total_steps, both.patience) == (5, 50, 4)
    assert plan_schedule(TrainConfig(early_stopping_patience=None), 19).patience is None


def test_no_validation_means_no_early_stopping_and_a_batch_source_may_fix_the_epochs():
    plan = plan_schedule(TrainConfig(), 19, evaluates=False)
    assert plan.patience is None and "no validation" in plan.reason
    fixed = plan_schedule(TrainConfig(), 500, fixed_epochs=1)
    assert (fixed.epochs, fixed.total_steps, fixed.source) == (1, 500, "batches")
    assert plan_schedule(TrainConfig(epochs=4), 500, fixed_epochs=1).epochs == 4  # the user's epochs still win


def test_applied_schedule_is_a_concrete_config():
    cfg = plan_schedule(TrainConfig(), 72).apply(TrainConfig())
    assert (cfg.epochs, cfg.early_stopping_patience) == (12, 3)


def test_train_config_errors_name_the_value_and_the_fix():
    with pytest.raises(ValidationError, match=r"epochs='lots': use a whole number or auto"):
        TrainConfig(epochs="lots")
    with pytest.raises(ValidationError, match=r"learning_rate='fast': use a rate such as 1e-4 or auto"):
        TrainConfig(learning_rate="fast")
    with pytest.raises(ValidationError) as error:
        TrainConfig(epochs=0, early_stopping_patience=0, learning_rate=2.0)
    for fragment in ("epochs=0", "early_stopping_patience=0: must be >= 1, auto or null", "learning_rate=2.0"):
        assert fragment in str(error.value)
    assert TrainConfig(epochs="4", learning_rate="1e-4").model_dump()["learning_rate"] == 1e-4  # YAML/CLI strings


# --- class weights and focal loss -------------------------------------------------------------------------

def test_auto_class_weights_turn_on_at_the_imbalance_threshold():
    balanced_enough = [0] * 30 + [1] * 10  # ratio 3 < 4
    weights, record = resolve_class_weights(LossConfig(), balanced_enough, 2)
    assert weights is None and record["mode"] == "none" and record["imbalance_ratio"] == 3.0
    skewed = [0] * 80 + [1] * 10 + [2] * 10  # ratio 8
    weights, record = resolve_class_weights(LossConfig(), skewed, 3)
    assert record["mode"] == "sqrt"
    assert weights[1] == pytest.approx(weights[0] * math.sqrt(8), rel=1e-5)
    assert sum(weights[label] for label in skewed) / len(skewed) == pytest.approx(1.0, rel=1e-5)  # mean 1 per row
    full, _ = resolve_class_weights(LossConfig(class_weights="balanced"), skewed, 3)
    assert full[1] == pytest.approx(full[0] * 8, rel=1e-5)
    assert resolve_class_weights(LossConfig(class_weights="none"), skewed, 3)[0] is None


def test_weighted_and_focal_criteria_match_slow_references():
    torch.manual_seed(0)
    logits, labels = torch.randn(12, 3), torch.randint(0, 3, (12,))
    weights = [0.5, 1.0, 2.0]
    assert ClassificationCriterion(weights)(logits, labels).item() == pytest.approx(
        F.cross_entropy(logits, labels, weight=torch.tensor(weights)).item(), rel=1e-6)
    assert ClassificationCriterion(None, 0.0)(logits, labels).item() == pytest.approx(
        F.cross_entropy(logits, labels).item(), rel=1e-6)
    gamma = 2.0
    rows = []
    for row, label in zip(logits, labels):  # Lin et al.: -(1 - p_t)^gamma log p_t, one row at a time
        p = torch.softmax(row, 0)[label]
        rows.append((weights[label], -((1 - p) ** gamma) * torch.log(p)))
    expected = sum(w * loss for w, loss in rows) / sum(w for w, _ in rows)
    assert ClassificationCriterion(weights, gamma)(logits, labels).item() == pytest.approx(expected.item(), rel=1e-5)


def test_plain_cross_entropy_needs_no_criterion_and_focal_is_recorded():
    assert criterion_for(LossConfig(), [0, 1] * 10, 2)[0] is None
    criterion, facts = criterion_for(LossConfig(function="focal", focal_gamma=1.5), [0, 1] * 10, 2)
    assert criterion.describe() == {"function": "focal", "focal_gamma": 1.5, "weighted": False}
    assert facts["loss"] == "focal" and facts["focal_gamma"] == 1.5
    with pytest.raises(ValidationError, match="focal_gamma=-1.0"):
        LossConfig(focal_gamma=-1)


# --- the learning-rate range test -------------------------------------------------------------------------

def test_pick_is_a_tenth_of_the_lowest_loss_within_ten_times_the_default():
    rates = [1e-5 * 2 ** i for i in range(10)]
    valley = [1.0, 0.95, 0.85, 0.7, 0.55, 0.45, 0.4, 0.5, 0.9, 2.0]
    rate, why = pick_rate(rates, valley, default=1e-4)
    assert rate == pytest.approx(float(f"{rates[6] / 10:.2g}")) and "lowest smoothed loss" in why
    rate, why = pick_rate(rates, valley, default=1e-2)
    assert rate == pytest.approx(1e-3) and "within 10x" in why  # clamped to default / 10


def test_a_flat_sweep_picks_the_largest_rate_tried():
    rates = [1e-6 * 2 ** i for i in range(10)]
    rate, why = pick_rate(rates, [0.693, 0.694, 0.692, 0.693] + [0.693] * 6, default=None)
    assert rate == pytest.approx(float(f"{rates[-1]:.2g}")) and "too small" in why


class _Batches:
    """A deterministic BatchSource over a fixed linear-separable problem."""

    def __init__(self, count=64, batch_size=8):
        generator = torch.Generator().manual_seed(1)
        self.features = torch.randn(count, 4, generator=generator)
        self.labels = (self.features[:, 0] > 0).long()
        self.batch_size, self.num_examples = batch_size, count

    def __len__(self):
        return self.num_examples // self.batch_size

    def batches(self, epoch, start=0):
        for index in range(start, len(self)):
            rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
            yield {"features": self.features[rows], "labels": self.labels[rows]}


def _loss(model, batch):
    return F.cross_entropy(model(batch["features"]), batch["labels"])


def test_range_test_costs_at_most_five_percent_and_restores_the_model():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    model.eval()
    rate, record = find_learning_rate(model, _Batches(), _loss, TrainConfig(learning_rate="auto"),
                                      torch.device("cpu"), "fp32", budget_steps=400, default=1e-2)
    assert record["steps"] <= BUDGET_SHARE * 400 and record["budget_steps"] == 400
    assert len(record["sweep"]) == record["steps"] and record["learning_rate"] == rate
    assert 1e-3 <= rate <= 1e-1  # within 10x of the default
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng) and not model.training


def test_range_test_with_too_small_a_budget_keeps_the_default_or_says_why():
    model = torch.nn.Linear(4, 2)
    rate, record = find_learning_rate(model, _Batches(), _loss, TrainConfig(), torch.device("cpu"), "fp32",
                                      budget_steps=100, default=3e-4)
    assert rate == 3e-4 and "fewer than" in record["skipped"]
    with pytest.raises(ValueError, match="give a learning rate"):
        find_learning_rate(model, _Batches(), _loss, TrainConfig(), torch.device("cpu"), "fp32", budget_steps=100)


def test_loop_runs_the_range_test_and_the_auto_schedule_and_records_both():
    from fmkit.train import train

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    lines = []
    result = train(model, _Batches(), TrainConfig(learning_rate="auto", batch_size=8, progress=False, precision="fp32",
                                                  warmup_ratio=0), loss_fn=_loss, default_learning_rate=1e-2,
                   announce=lines.append)
    assert result.schedule["source"] == "auto" and result.schedule["epochs"] == AUTO_MAX_EPOCHS  # 8 steps per epoch
    assert result.steps == result.schedule["total_steps"] == AUTO_MAX_EPOCHS * 8
    assert result.learning_rate == result.learning_rate_search["learning_rate"]
    assert result.learning_rate_search["steps"] <= BUDGET_SHARE * result.steps
    assert any(line.startswith("learning rate") for line in lines) and any("schedule:" in line for line in lines)


# --- collapse detection -----------------------------------------------------------------------------------

def _metrics(matrix, labels=("a", "b", "c", "d")):
    from fmkit.evaluate.metrics import StreamingClassificationMetrics
    import numpy as np

    metrics = StreamingClassificationMetrics(list(labels))
    for true, row in enumerate(matrix):
        for predicted, count in enumerate(row):
            if count:
                probabilities = np.full((count, len(labels)), 0.01)
                probabilities[:, predicted] = 1 - 0.01 * (len(labels) - 1)
                metrics.update(probabilities, np.full(count, true))
    return metrics.compute()


def test_a_majority_class_model_on_not_that_imbalanced_data_is_degenerate():
    # issue 15's 600-row LoRA run: every text predicted as the 39% class
    evidence = detect_collapse(_metrics([[23, 0, 0, 0], [15, 0, 0, 0], [12, 0, 0, 0], [10, 0, 0, 0]]))
    assert evidence["kind"] == "one-class" and evidence["predicted_class"] == "a"
    assert evidence["predicted_share"] == 1.0 and evidence["true_share"] == pytest.approx(23 / 60, abs=1e-4)
    message = collapse_message(evidence, "validation", {"steps": 30, "learning_rate": 5e-4,
                                                         "class_weights": {"mode": "none", "imbalance_ratio": 2.3}})
    for fragment in ("DEGENERATE", "'a' for 100%", "too few optimizer steps (30)", "--class-weights balanced",
                     "--learning-rate auto"):
        assert fragment in message


def test_macro_f1_at_chance_is_degenerate_and_a_real_model_is_not():
    assert chance_macro_f1([25, 25]) == pytest.approx(0.5)
    shuffled = detect_collapse(_metrics([[12, 13], [13, 12]], labels=("x", "y")))
    assert shuffled["kind"] == "chance"
    assert detect_collapse(_metrics([[20, 5], [4, 21]], labels=("x", "y"))) is None
    # a class that really is 85% of the rows may take 95% of the predictions without being called a collapse
    assert detect_collapse(_metrics([[85, 0], [10, 5]], labels=("x", "y"))) is None
    assert detect_collapse(_metrics([[3, 0], [2, 0]], labels=("x", "y"))) is None  # too few rows to say


# --- the CLI ----------------------------------------------------------------------------------------------

def test_finetune_flags_reach_the_schedule_lr_and_loss_settings():
    from fmkit.cli.commands.finetune import build_config
    from fmkit.cli.main import build_parser

    args = build_parser().parse_args(["finetune", "--data", "x.csv", "--out", "o", "--epochs", "auto", "--learning-rate",
                                      "auto", "--patience", "5", "--class-weights", "balanced", "--loss", "focal",
                                      "--focal-gamma", "1.5"])
    cfg = build_config(args)
    assert (cfg.train.epochs, cfg.train.learning_rate, cfg.train.early_stopping_patience) == ("auto", "auto", 5)
    assert (cfg.loss.class_weights, cfg.loss.function, cfg.loss.focal_gamma) == ("balanced", "focal", 1.5)
    explicit = build_config(build_parser().parse_args(["finetune", "--data", "x.csv", "--out", "o", "--epochs", "12",
                                                       "--learning-rate", "1.5e-4"]))
    assert (explicit.train.epochs, explicit.train.learning_rate) == (12, 1.5e-4)


def test_recall_lines_list_the_rarest_class_first():
    from fmkit.cli.commands.finetune import recall_lines

    metrics = {"test": _metrics([[20, 0], [3, 2]], labels=("common", "rare"))}
    assert metrics["test"]["min_recall"] == pytest.approx(0.4)
    assert recall_lines(metrics) == ["test recall per class: rare 0.400, common 1.000"]
