"""The loop's hooks protocol: a batch split into passes accumulates into the same steps; incomplete hooks are refused."""

import pytest
import torch

from fmkit.train import TrainConfig, train
from fmkit.train.hooks import TrainHooks

CFG = dict(epochs=1, batch_size=6, learning_rate=0.05, warmup_ratio=0, max_grad_norm=None, precision="fp32",
           device="cpu", progress=False, early_stopping_patience=None)


class Rows:
    """Four batches of six rows of a linear regression, in one fixed order."""

    num_examples = 24

    def __init__(self):
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(24, 3, generator=generator)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5])

    def __len__(self):
        return 4

    def batches(self, epoch, start=0):
        for index in range(start, 4):
            yield {"x": self.x[6 * index:6 * index + 6], "y": self.y[6 * index:6 * index + 6]}


def sum_loss(model, batch):
    return ((model(batch["x"]).squeeze(-1) - batch["y"]) ** 2).sum()  # a sum: the parts of a split add up


class Halves(TrainHooks):
    """Computes every batch in two passes of three rows and counts the passes that do not end a step."""

    def __init__(self):
        self.accumulated = 0

    def split_batch(self, batch):
        return [{k: v[:3] for k, v in batch.items()}, {k: v[3:] for k, v in batch.items()}]

    def accumulate(self, optimizer):
        self.accumulated += 1


def trained(hooks, accumulation):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    result = train(model, Rows(), TrainConfig(**CFG, gradient_accumulation_steps=accumulation), loss_fn=sum_loss,
                   hooks=hooks)
    return result, torch.cat([p.detach().flatten() for p in model.parameters()])


def test_a_batch_split_into_passes_accumulates_into_the_same_steps():
    plain_result, plain = trained(None, 2)
    halves = Halves()
    split_result, split = trained(halves, 2)
    assert plain_result.steps == split_result.steps == 2
    assert halves.accumulated == 6  # 4 batches x 2 passes = 8 passes, 2 of which end a step
    assert split_result.samples_per_second > 0
    torch.testing.assert_close(plain, split)


def test_hooks_lacking_part_of_the_protocol_are_refused_by_name():
    class OldHooks:
        def setup(self, model, optimizer, batches):
            return model, optimizer, batches

        def after_step(self, step):
            return False

        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass

        def summary(self):
            return {}

    with pytest.raises(TypeError, match=r"OldHooks lack wrap_loss, split_batch, accumulate: "
                                        r"subclass fmkit.train.hooks.TrainHooks"):
        train(torch.nn.Linear(3, 1), Rows(), TrainConfig(**CFG), loss_fn=sum_loss, hooks=OldHooks())
