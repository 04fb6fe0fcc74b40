"""Knowledge distillation: a teacher bundle -> a student with fewer layers, trained by the shared loop.

The student copies the teacher's embeddings, an evenly spaced subset of its layers, its pooler
and head (so it starts close to the teacher), then learns from
``alpha * KL(softmax(t/T) || softmax(s/T)) * T^2 + (1 - alpha) * CE(s, y)`` (Hinton et al. 2015).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fmkit.compress.methods.base import COMPRESS_METHODS, CompressContext, CompressMethod
from fmkit.train.config import TrainConfig


class DistillOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["distill"] = "distill"
    student_layers: int = Field(3, ge=1, description="transformer layers of the student")
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the soft (teacher) loss; 1 - alpha on the labels")
    temperature: float = Field(2.0, gt=0, description="softening temperature T")
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(epochs=3, learning_rate=1e-4))


def distillation_loss(student_logits, teacher_logits, labels, alpha: float, temperature: float):
    """alpha * KL(teacher_T || student_T) * T^2 + (1 - alpha) * cross-entropy(student, labels)."""
    import torch.nn.functional as F

    soft = F.kl_div(F.log_softmax(student_logits / temperature, dim=-1),
                    F.softmax(teacher_logits / temperature, dim=-1), reduction="batchmean") * temperature ** 2
    hard = F.cross_entropy(student_logits, labels)
    return alpha * soft + (1 - alpha) * hard


def chosen_layers(teacher_layers: int, student_layers: int) -> list[int]:
    """Evenly spaced teacher layers, always keeping the last (e.g. 6 -> 3: [1, 3, 5])."""
    step = teacher_layers / student_layers
    return [int(round(step * (index + 1))) - 1 for index in range(student_layers)]


def make_student(teacher, student_layers: int):
    import copy

    from fmkit.errors import BadInputError

    encoder = getattr(getattr(teacher, "bert", None), "encoder", None)
    if encoder is None:
        raise BadInputError(f"distillation supports BERT-family classifiers; got {type(teacher).__name__}")
    teacher_layers = len(encoder.layer)
    if student_layers >= teacher_layers:
        raise BadInputError(f"student_layers={student_layers} is not smaller than the teacher's {teacher_layers} "
                            "layers; a student must be smaller than its teacher")
    keep = chosen_layers(teacher_layers, student_layers)
    student = copy.deepcopy(teacher)
    import torch

    student.bert.encoder.layer = torch.nn.ModuleList([student.bert.encoder.layer[i] for i in keep])
    student.config.num_hidden_layers = student_layers
    return student, keep


def apply(context: CompressContext, options: DistillOptions, directory: Path) -> dict:
    import torch

    from fmkit.compress.files import copy_support_files
    from fmkit.data.batching import ClassificationBatches, encode_texts
    from fmkit.runtime.inference import stream_metrics
    from fmkit.train import train
    from fmkit.train.precision import select_device

    if options.train.learning_rate is None:
        options = options.model_copy(update={"train": options.train.model_copy(update={"learning_rate": 1e-4})})
    tokenizer, teacher = context.load_torch_model()
    student, keep = make_student(teacher, options.student_layers)
    device = select_device(options.train.device)
    teacher.to(device).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)

    data = context.data
    label_ids = {name: [data.label_names.index(l) for l in data.split(name)[1]] for name in ("train", "validation")}
    encoded = {name: encode_texts(tokenizer, data.split(name)[0], context.manifest.max_length, warn=False)
               for name in ("train", "validation")}
    batches = ClassificationBatches(encoded["train"], label_ids["train"], options.train.batch_size,
                                    tokenizer.pad_token_id, options.train.seed)

    def loss_fn(model, batch):
        with torch.no_grad():
            teacher_logits = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return distillation_loss(logits.float(), teacher_logits.float(), batch["labels"], options.alpha,
                                 options.temperature)

    def evaluate_fn(model):
        metrics = stream_metrics(model, encoded["validation"], label_ids["validation"], data.label_names,
                                 tokenizer.pad_token_id, 64, device)
        return {k: metrics[k] for k in ("accuracy", "macro_f1", "log_loss")}

    result = train(student, batches, options.train, loss_fn=loss_fn,
                   evaluate_fn=evaluate_fn if label_ids["validation"] else None)
    copy_support_files(context.parent, directory)
    student.to("cpu").save_pretrained(str(directory), safe_serialization=True)
    return {"teacher_layers": len(teacher.bert.encoder.layer), "student_layers": options.student_layers,
            "layers_kept": keep, "distillation": result.as_dict()}


COMPRESS_METHODS.register("distill")(CompressMethod(
    DistillOptions, apply, runtime="torch",
    description="teacher -> student with fewer layers (KD loss, shared training loop)"))
