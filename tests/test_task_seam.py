"""The task seam: no stage branches on a task's name, and a task defined in one place is picked up everywhere.

The first test reads fmkit/ (outside fmkit/tasks/) for the branches the task adapters replace.
``NOT_YET`` names the files other work on issue 14 is still moving behind the adapter; it must
shrink to empty: a file listed there that no longer branches fails the test until it is removed.
"""

from __future__ import annotations

import io
import json
import re
import tokenize
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from fmkit.train.config import TrainConfig

PACKAGE = Path(__file__).resolve().parents[1] / "fmkit"
BRANCHES = {
    "a comparison with a task's name": re.compile(r"\btask\s*(==|!=)|\.task\s+(not\s+)?in\s+(?!TASKS\b)"),
    "a task name written out": re.compile(r"""["'](text-classification|image-classification|masked-lm)["']"""),
    "a task constant": re.compile(r"(==|!=)\s*(TEXT|IMAGE)\b|\b(TEXT|IMAGE)\s*(==|!=)|"
                                  r"from fmkit\.tasks import .*\b(TEXT|IMAGE)\b"),
    "a probe for image runtimes": re.compile(r"\btakes_images\b"),
    "a guess at the input kind": re.compile(r"""["']input_ids["'],\s*["']pixel_values["']"""),
}
NOT_YET: dict[str, str] = {}  # file -> who on issue 14 is moving its branches behind the adapter


def code_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, source without comments) of every line of ``path``."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            row, column = token.start
            lines[row - 1] = lines[row - 1][:column]
    return list(enumerate(lines, start=1))


def task_branches() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith("tasks/"):
            continue
        for number, line in code_lines(path):
            for what, pattern in BRANCHES.items():
                if pattern.search(line):
                    found.setdefault(relative, []).append(f"fmkit/{relative}:{number}: {what}: {line.strip()}")
    return found


def test_no_stage_branches_on_a_task_name():
    found = task_branches()
    unexpected = [hit for path, hits in found.items() if path not in NOT_YET for hit in hits]
    assert not unexpected, ("ask the task adapter (fmkit/tasks/) instead of branching on a task's name:\n"
                            + "\n".join(unexpected))
    done = sorted(set(NOT_YET) - set(found))
    assert not done, f"{done} no longer branch on a task's name: remove them from NOT_YET"


def test_the_branch_finder_sees_a_branch_and_ignores_comments(tmp_path):
    path = tmp_path / "stage.py"
    path.write_text('if manifest.task == "masked-lm":  # "image-classification" in a comment is fine\n    pass\n')
    assert code_lines(path)[0][1].rstrip().endswith('"masked-lm":')
    hits = [what for _, line in code_lines(path) for what, p in BRANCHES.items() if p.search(line)]
    assert hits == ["a comparison with a task's name", "a task name written out"]


# -- a task registered here, in the test, reaches finetune, evaluate and the runtimes -------------------

TASK = "point-classification"


class PointsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str
    seed: int = 0


class PointsFinetuneConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: Literal["point-classification"] = TASK
    model: str = "linear"
    data: PointsConfig
    train: TrainConfig = Field(default_factory=TrainConfig)

    @property
    def method_name(self) -> str:
        return "full"


class Points:
    """2-D points labelled by the sign of x: 60 train, 20 validation, 20 test rows."""

    def __init__(self, config: PointsConfig):
        import numpy as np

        raw = json.loads(Path(config.source).read_text())
        self.config = config
        self.points = np.asarray(raw["points"], dtype=np.float32)
        self.labels = raw["labels"]
        self.label_names = sorted(set(self.labels))
        self.splits = {"train": list(range(60)), "validation": list(range(60, 80)), "test": list(range(80, 100))}
        self.fingerprint = "sha256:" + "0" * 56 + f"{len(self.labels):08d}"

    def split(self, name):
        rows = self.splits[name]
        return self.points[rows], [self.labels[i] for i in rows]

    def summary(self) -> dict:
        return {"fingerprint": self.fingerprint, "config": self.config.model_dump()}


class PointBatches:
    def __init__(self, points, label_ids, batch_size):
        import torch

        self.points, self.labels = torch.as_tensor(points), torch.as_tensor(label_ids)
        self.batch_size, self.num_examples = batch_size, len(label_ids)

    def __len__(self):
        return -(-self.num_examples // self.batch_size)

    def batches(self, epoch, start=0):
        for index in range(start, len(self)):
            rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
            yield {"features": self.points[rows], "labels": self.labels[rows]}


def logits_of(model, points):
    import torch

    with torch.no_grad():
        return model(torch.as_tensor(points)).numpy()


def point_metrics(setup, model, points, label_ids, label_names, device):
    import numpy as np

    from fmkit.evaluate.metrics import metrics_from_logits

    return metrics_from_logits([(np.arange(len(points)), logits_of(model, points))], label_ids, label_names)


def prepare(cfg, data):
    import torch

    from fmkit.tasks import TrainingSetup

    torch.manual_seed(cfg.train.seed)
    return TrainingSetup(model=torch.nn.Linear(2, len(data.label_names)),
                         inputs={name: data.split(name)[0] for name in data.splits},
                         base={"name": "linear", "digest": None}, parent="linear", parent_lineage=[],
                         default_learning_rate=0.1)


def save(setup, model, cfg, directory) -> dict:
    from safetensors.torch import save_model

    save_model(model, str(directory / "model.safetensors"))
    return {"parameters": sum(p.numel() for p in model.parameters())}


class PointInputs:
    """The point task's runtime input preparation: both backends (torch, onnx) run it, no runtime of its own."""

    batch_size = 32

    def __init__(self, path, manifest):
        self.labels = len(manifest.labels)

    def encode(self, points, warn=True):
        import numpy as np

        return np.asarray(points, dtype=np.float32).reshape(-1, 2)

    def count(self, points) -> int:
        return len(points)

    def batches(self, points, batch_size):
        import numpy as np

        for start in range(0, len(points), batch_size):
            yield np.arange(start, min(start + batch_size, len(points))), {"features": points[start:start + batch_size]}

    def load_torch_model(self, path):
        import torch
        from safetensors.torch import load_model

        model = torch.nn.Linear(2, self.labels)
        load_model(model, str(Path(path) / "model.safetensors"))
        return model

    @staticmethod
    def torch_logits(model, tensors):
        return model(tensors["features"])


@pytest.fixture
def point_task(monkeypatch):
    import torch.nn.functional as F

    from fmkit.tasks import TASKS, Capabilities, TaskAdapter

    adapter = TaskAdapter(
        TASK, "a label per 2-D point (a test task)", Capabilities(finetune_methods=("full",)), examples="points",
        finetune_config=f"{__name__}:PointsFinetuneConfig",
        claims=lambda settings: str(settings.get("data", {}).get("source", "")).endswith(".points.json"),
        load_data=Points, prepare=prepare,
        batches=lambda setup, cfg, inputs, label_ids: PointBatches(inputs, label_ids, cfg.train.batch_size),
        loss=lambda model, batch: F.cross_entropy(model(batch["features"]), batch["labels"]),
        split_metrics=point_metrics, save=save,
        data_config=lambda stored, cfg: PointsConfig.model_validate({**stored["config"], **(
            {"source": cfg.data} if cfg.data else {})}),
        evaluation_inputs=lambda runtime, data, rows: (data.points[rows], {}), runtime_inputs=f"{__name__}:PointInputs")
    monkeypatch.setitem(TASKS._items, TASK, adapter)  # registered for this test only
    return adapter


def test_a_task_registered_in_one_place_is_fine_tuned_evaluated_and_run(point_task, tmp_path):
    import numpy as np

    from fmkit.bundle.split import read_split
    from fmkit.evaluate.stage import EvaluateConfig, evaluate_bundle
    from fmkit.finetune.stage import run_finetune
    from fmkit.runtime import load_runtime
    from fmkit.tasks import bundle_task, finetune_config, task_of_bundle, task_of_settings

    points = np.random.default_rng(0).normal(size=(100, 2))
    points[:, 0] += np.sign(points[:, 0])  # a margin around x = 0
    source = tmp_path / "signs.points.json"
    source.write_text(json.dumps({"points": points.tolist(),
                                  "labels": ["right" if x > 0 else "left" for x, _ in points]}))
    settings = {"data": {"source": str(source)}, "train": {"epochs": 20, "batch_size": 10, "progress": False,
                                                            "device": "cpu", "precision": "fp32"}}
    assert task_of_settings(settings) == TASK  # claimed by its data, no `task` key needed
    cfg = finetune_config(settings)
    assert isinstance(cfg, PointsFinetuneConfig)

    manifest = run_finetune(cfg, tmp_path / "bundle")
    bundle = tmp_path / "bundle"
    assert manifest.task == TASK and bundle_task(bundle) == TASK and task_of_bundle(bundle, TASK) is point_task
    assert manifest.metrics["test"]["accuracy"] >= 0.9 and manifest.training["parameters"] == 6
    assert read_split(bundle)["indices"]["test"] == list(range(80, 100))
    assert (bundle / "reports" / "confusion_test.png").is_file()

    metrics = evaluate_bundle(bundle, EvaluateConfig(device="cpu"), record=False)
    assert metrics["accuracy"] == manifest.metrics["test"]["accuracy"] and metrics["count"] == 20
    runtime = load_runtime(bundle)  # the shared torch backend, fed by the task's PointInputs
    assert runtime.backend == "torch" and isinstance(runtime.inputs, PointInputs)
    assert [p.label for p in runtime.predict([[3.0, 0.0], [-3.0, 0.5]])] == ["right", "left"]


def test_a_finetune_method_the_task_lacks_is_refused(point_task, tmp_path, monkeypatch):
    import dataclasses

    from fmkit.errors import BadInputError
    from fmkit.finetune.stage import run_finetune
    from fmkit.tasks import TASKS, Capabilities

    cfg = PointsFinetuneConfig(data={"source": str(tmp_path / "x.points.json")})
    monkeypatch.setitem(TASKS._items, TASK, dataclasses.replace(point_task, capabilities=Capabilities()))
    with pytest.raises(BadInputError, match="point-classification fine-tunes with no method, not 'full'"):
        run_finetune(cfg, tmp_path / "out")


def test_masked_lm_bundles_are_refused_by_their_adapter(tmp_path):
    from fmkit.bundle import Manifest, write_bundle
    from fmkit.errors import BadInputError
    from fmkit.evaluate.stage import EvaluateConfig, evaluate_bundle

    base = tmp_path / "base"
    write_bundle(base, Manifest(task="masked-lm", labels=[], base_model={}), lambda directory: None)
    with pytest.raises(BadInputError, match=r"masked-LM base model .*Fine-tune it first: fmkit finetune --model"):
        evaluate_bundle(base, EvaluateConfig())
