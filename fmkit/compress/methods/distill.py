"""Knowledge distillation: a teacher bundle -> a student with fewer layers, trained by the shared loop.

The student copies the teacher's embeddings, an evenly spaced subset of its layers, its pooler
and head (so it starts close to the teacher), then learns from
``alpha * KL(softmax(t/T) || softmax(s/T)) * T^2 + (1 - alpha) * CE(s, y)`` (Hinton et al. 2015).

``embedding_teacher`` adds ``embedding_weight * (1 - cos(student embedding, encoder embedding))``: the
sentence embedding the student's head reads is kept close to a sentence encoder's (the base model's by
default), so the student also *embeds like that encoder*: one forward gives the prediction and an
embedding for search or few-shot topics (the monitor's topics and sentiment: fmkit/apps/monitor). A
fine-tuned classifier alone drifts away from its base's embedding space, which ruins such a reuse.
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
    embedding_teacher: str | None = Field(
        None, description="also keep the student's sentence embedding close (cosine) to this encoder's: 'base' (the "
        "teacher bundle's base model) or a model name/folder; the student then embeds like it too (needs a head "
        "on a sentence pooling, fmkit's default for MiniLM)")
    embedding_weight: float = Field(1.0, gt=0, description="weight of the embedding term, 1 - cosine (with "
                                                           "embedding_teacher)")


def distillation_loss(student_logits, teacher_logits, labels, alpha: float, temperature: float):
    """alpha * KL(teacher_T || student_T) * T^2 + (1 - alpha) * cross-entropy(student, labels)."""
    import torch.nn.functional as F

    soft = F.kl_div(F.log_softmax(student_logits / temperature, dim=-1),
                    F.softmax(teacher_logits / temperature, dim=-1), reduction="batchmean") * temperature ** 2
    hard = F.cross_entropy(student_logits, labels)
    return alpha * soft + (1 - alpha) * hard


def embedding_loss(student_embedding, teacher_embedding):
    """Mean of 1 - cos(student, teacher) over the batch (0 when every student vector points like its teacher's)."""
    import torch.nn.functional as F

    return (1 - F.cosine_similarity(student_embedding.float(), teacher_embedding.float(), dim=-1)).mean()


class EmbeddingAnchor:
    """The sentence encoder a student's embedding is kept close to (frozen): its name, digest and torch module."""

    def __init__(self, spec: str, manifest, device):
        from fmkit.errors import BadInputError
        from fmkit.finetune.text_model import base_model_record
        from fmkit.models import resolve_model
        from fmkit.retrieval.encoder_model import load_bi_encoder

        name = anchor_name(spec, manifest)
        if name is None:
            raise BadInputError(f"--embedding-teacher base: {manifest.base_model or 'the bundle'} records no base "
                                "model to anchor to; name one (e.g. --embedding-teacher minilm)")
        base = resolve_model(name)
        self.record = {key: value for key, value in base_model_record(base).items() if key in ("name", "digest")}
        self.module = load_bi_encoder(base.path).to(device).eval()
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)

    def embed(self, batch):
        import torch

        with torch.no_grad():
            return self.module(batch["input_ids"], batch["attention_mask"])


def anchor_name(spec: str | None, manifest) -> str | None:
    """The encoder ``spec`` names: "base" -> the bundle's recorded base model name, else ``spec`` itself."""
    if spec is None or spec != "base":
        return spec
    return (manifest.base_model or {}).get("name")


def embedding_anchor_of(manifest) -> str | None:
    """The encoder whose embedding space this bundle's sentence embedding was distilled to (its lineage's
    ``distill`` step with ``embedding_teacher``), or None: a bundle whose embedding can stand in for that encoder's."""
    for entry in reversed(manifest.lineage):
        method = (entry.config or {}).get("method") if isinstance(entry.config, dict) else None
        if entry.stage == "distill" and isinstance(method, dict) and method.get("embedding_teacher"):
            return anchor_name(method["embedding_teacher"], manifest)
    return None


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
    anchor = None
    if options.embedding_teacher is not None:
        from fmkit.errors import BadInputError

        if not hasattr(student, "sentence_embedding"):
            raise BadInputError(f"--embedding-teacher {options.embedding_teacher}: {context.parent}'s head reads BERT's "
                                "[CLS] pooler, not a sentence embedding; fine-tune it with --pooling mean (or auto)")
        anchor = EmbeddingAnchor(options.embedding_teacher, context.manifest, device)
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
        if anchor is None:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        else:
            embedding = model.sentence_embedding(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            logits = model.classifier(model.dropout(embedding))
        loss = distillation_loss(logits.float(), teacher_logits.float(), batch["labels"], options.alpha,
                                 options.temperature)
        if anchor is not None:
            loss = loss + options.embedding_weight * embedding_loss(embedding, anchor.embed(batch))
        return loss

    def evaluate_fn(model):
        metrics = stream_metrics(model, encoded["validation"], label_ids["validation"], data.label_names,
                                 tokenizer.pad_token_id, 64, device)
        kept = {k: metrics[k] for k in ("accuracy", "macro_f1", "log_loss")}
        if anchor is not None:
            kept["embedding_cosine"] = mean_cosine(model, anchor, encoded["validation"], tokenizer.pad_token_id,
                                                   device)
        return kept

    result = train(student, batches, options.train, loss_fn=loss_fn,
                   evaluate_fn=evaluate_fn if label_ids["validation"] else None)
    copy_support_files(context.parent, directory)
    student.to("cpu").save_pretrained(str(directory), safe_serialization=True)
    facts = {"teacher_layers": len(teacher.bert.encoder.layer), "student_layers": options.student_layers,
             "layers_kept": keep, "distillation": result.as_dict()}
    if anchor is not None:
        facts["embedding_teacher"] = {**anchor.record, "weight": options.embedding_weight,
                                      "validation_cosine": mean_cosine(student, anchor, encoded["validation"],
                                                                       tokenizer.pad_token_id, device)}
    return facts


def mean_cosine(model, anchor: EmbeddingAnchor, encoded, pad_id: int, device, batch_size: int = 64) -> float | None:
    """Mean cosine between ``model``'s sentence embeddings and ``anchor``'s over ``encoded`` (None: no rows)."""
    import torch

    from fmkit.data.batching import pad_batch, sorted_batches

    if not len(encoded.lengths):
        return None
    was_training, total = model.training, 0.0
    model.eval()
    with torch.no_grad():
        for rows in sorted_batches(encoded.lengths, batch_size):
            batch = {k: v.to(device) for k, v in pad_batch([encoded.input_ids[i] for i in rows], pad_id).items()}
            student = model.sentence_embedding(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            total += float((1 - embedding_loss(student, anchor.embed(batch))) * len(rows))
    model.train(was_training)
    return round(total / len(encoded.lengths), 4)


COMPRESS_METHODS.register("distill")(CompressMethod(
    DistillOptions, apply, runtime="torch",
    description="teacher -> student with fewer layers (KD loss, shared training loop)"))
