"""The loop's callbacks: they see every step and evaluation, may stop training, and see the result once."""

import pytest
import torch

from fmkit.train import TrainConfig, train
from fmkit.train.callbacks import TrainCallback

from test_train_hooks import CFG, Rows, sum_loss


class Recorder(TrainCallback):
    def __init__(self, stop_at_evaluation=None):
        self.steps, self.evaluations, self.results = [], [], []
        self.stop_at_evaluation = stop_at_evaluation

    def on_step(self, step, loss, learning_rate):
        self.steps.append((step, loss, learning_rate))

    def on_evaluate(self, step, epoch, metrics):
        self.evaluations.append((step, epoch, metrics["score"]))
        return len(self.evaluations) == self.stop_at_evaluation

    def on_end(self, result):
        self.results.append(result)


def evaluate(model):
    return {"score": -float(model.weight.detach().abs().sum())}


def run(callbacks, epochs=3):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    cfg = TrainConfig(**{**CFG, "epochs": epochs})
    return train(model, Rows(), cfg, loss_fn=sum_loss, evaluate_fn=evaluate, selection_metric="score",
                 callbacks=callbacks)


def test_callbacks_see_each_step_and_evaluation_and_the_result_once():
    first, second = Recorder(), Recorder()
    result = run([first, second])
    assert [step for step, _, _ in first.steps] == list(range(1, 13))  # 3 epochs x 4 batches
    assert all(loss > 0 and rate == pytest.approx(0.05 * (12 - step) / 12) for step, loss, rate in first.steps)
    assert [(step, epoch) for step, epoch, _ in first.evaluations] == [(4, 1.0), (8, 2.0), (12, 3.0)]
    assert first.results == [result] and second.results == [result] and second.steps == first.steps


def test_a_callback_that_returns_true_stops_training_after_that_evaluation():
    recorder = Recorder(stop_at_evaluation=2)
    result = run([recorder])
    assert result.steps == 8 and result.stopped_early
    assert len(recorder.evaluations) == 2


def test_an_exception_from_a_callback_ends_training_and_reaches_the_caller():
    class Pruned(Exception):
        pass

    class Prune(TrainCallback):
        def on_evaluate(self, step, epoch, metrics):
            raise Pruned(f"pruned at step {step}")

    with pytest.raises(Pruned, match="pruned at step 4"):
        run([Prune()])


def test_an_object_that_is_not_a_callback_is_refused_with_the_fix():
    class Almost:
        def on_evaluate(self, step, epoch, metrics):
            return False

    with pytest.raises(TypeError, match="Almost is not a fmkit.train.callbacks.TrainCallback: subclass it"):
        run([Almost()])
