"""Data-parallel training of every other stage that trains: 2 real gloo ranks on CPU against one process.

tests/test_distributed.py covers full text-classification fine-tuning; this file covers LoRA fine-tuning, the
text-retrieval task, pretraining (continued and from scratch) and ``compress --method distill``.

Reference, as there: W=2 ranks with batch B equal one process with batch B and accumulation 2 (the same global
batch, the same batches in the same order, fmkit/train/distributed.py) when the model has no dropout, so the tiny
BERT is the fixture's with dropout 0 (LoRA's adapter dropout 0 too) and the weights must agree within 1e-5
relative per tensor. The one-process reference runs in this pytest process with one thread, as each rank has
(OMP_NUM_THREADS=1). The data are a few dozen rows chosen so that the number of batches is odd: rank 1 computes
a filler batch (weight 0) in the last step and the last batch is short, the two uneven cases of the equivalence.

What is deterministic, stage by stage:
- retrieval: every rank mines the same hard negatives with the same zero-shot encoder before training, and the
  in-batch negatives are those of one micro-batch in both runs (a rank's batch is one of the reference's
  accumulated micro-batches), so the loss of each micro-batch is the same function: weights must match;
- pretraining: the masks are a function of (seed, epoch, source batch index), and a rank's batch keeps its source
  index (RankBatches), so continued pretraining of the dropout-free BERT must match too. From scratch the new BERT
  has transformers' default dropout 0.1 and each rank draws its own dropout masks (seed + rank), so the 2-rank
  run cannot equal one process: it is checked for completion, finite losses and the manifest's facts;
- distillation: teacher and student (a copy of the teacher's layers) are dropout-free: the student must match.
``compress`` has no ``--nproc``; the distillation job is launched with torchrun directly.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path

import pytest

from conftest import synthetic_reviews, write_csv
from distributed_fixtures import (TOLERANCE, check, fmkit, largest_relative_difference, launch, manifest, one_process,
                                 still_bert, torchrun, weights)
from test_pretrain import sentences
from test_text_retrieval import synthetic_faq

RANKS = 2
BATCH = 7  # 48 training reviews: 7 batches (the last of 6 rows); 28 training questions at 6: 5 batches (last 4)
RETRIEVAL_BATCH = 6
PRETRAIN_BATCH = 8
COMMON = ["--precision", "fp32", "--device", "cpu", "--no-progress", "--seed", "0"]


def moved(trained: dict, start: dict) -> float:
    """Largest relative change of the tensors ``trained`` shares with ``start`` (a bare encoder's names gain the
    ``bert.`` prefix of the classifier it came from)."""
    pairs = {name: (tensor, start.get(name, start.get(f"bert.{name}"))) for name, tensor in trained.items()}
    pairs = {name: pair for name, pair in pairs.items() if pair[1] is not None and pair[1].shape == pair[0].shape}
    assert pairs, "no tensor of the trained model is in the start model"
    return largest_relative_difference({n: p[0] for n, p in pairs.items()}, {n: p[1] for n, p in pairs.items()})


def train_split(bundle: Path) -> list[int]:
    from fmkit.bundle.split import read_split

    return read_split(bundle)["indices"]["train"]


def steps_per_epoch(rows: int, batch: int, accumulation: int) -> int:
    return math.ceil(math.ceil(rows / batch) / accumulation)


def assert_same_training(ddp: dict, single: dict, batch: int) -> None:
    """The manifests' training records of 2 ranks (batch B) and one process (B x accumulation 2) agree."""
    assert (ddp["world_size"], ddp["backend"], ddp["global_batch"]) == (RANKS, "gloo", batch * RANKS)
    assert (single["world_size"], single["backend"], single["global_batch"]) == (1, None, batch * RANKS)
    assert ddp["parallel"]["strategy"] == "ddp" and ddp["parallel"]["per_rank_batch"] == batch
    assert ddp["steps"] == single["steps"]
    assert [h["step"] for h in ddp["history"]] == [h["step"] for h in single["history"]]
    for mine, reference in zip(ddp["history"], single["history"]):
        assert mine["train_loss"] == pytest.approx(reference["train_loss"], rel=TOLERANCE)
        assert math.isfinite(mine["train_loss"])


@pytest.fixture(scope="module")
def workspace(tiny_bert_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("distributed-stages")
    still_bert(tiny_bert_dir, root / "still-bert")
    write_csv(root / "reviews.csv", synthetic_reviews(60))
    write_csv(root / "faq.csv", synthetic_faq(40), header=("q", "a"))
    (root / "corpus.txt").write_text("\n".join(sentences(120)) + "\n", encoding="utf-8")
    return root


# -- finetune --method lora (text classification) ----------------------------------------------------------

@pytest.fixture(scope="module")
def lora(workspace):
    common = ["finetune", "--model", str(workspace / "still-bert"), "--data", str(workspace / "reviews.csv"),
              "--method", "lora", "--lora-r", "4", "--lora-dropout", "0", "--epochs", "1", "--batch-size", str(BATCH),
              "--learning-rate", "5e-3", "--patience", "none", "--eval-every", "2", *COMMON]
    one_process(*common, "--gradient-accumulation-steps", "2", "--out", str(workspace / "lora-single"))
    ranks = check(launch(fmkit(*common, "--nproc", str(RANKS), "--out", str(workspace / "lora-ddp"))),
                      "LoRA on 2 ranks")
    return workspace, ranks


def test_lora_on_two_ranks_matches_one_process_with_the_same_global_batch(lora):
    root, ranks = lora
    ddp, single = manifest(root / "lora-ddp"), manifest(root / "lora-single")
    assert largest_relative_difference(weights(root / "lora-ddp"), weights(root / "lora-single")) <= TOLERANCE
    from safetensors.torch import load_file

    adapters = [load_file(str(root / name / "adapter" / "adapter_model.safetensors")) for name in ("lora-ddp",
                                                                                                  "lora-single")]
    assert largest_relative_difference(*adapters) <= TOLERANCE  # the saved adapter, not only the merged weights
    assert moved(weights(root / "lora-single"), weights(root / "still-bert")) > 1e-3  # training changed the weights
    assert_same_training(ddp["training"], single["training"], BATCH)
    train_rows = len(train_split(root / "lora-single"))
    assert math.ceil(train_rows / BATCH) % RANKS == 1  # rank 1 computes a filler in the last step
    assert ddp["training"]["steps"] == steps_per_epoch(train_rows, BATCH, RANKS)
    assert ddp["training"]["method"] == "lora" and ddp["training"]["trainable_parameters"] == \
        single["training"]["trainable_parameters"] < ddp["training"]["total_parameters"]
    for mine, reference in zip(ddp["training"]["history"], single["training"]["history"]):
        assert mine["log_loss"] == pytest.approx(reference["log_loss"], rel=TOLERANCE)
    assert ddp["metrics"]["test"]["log_loss"] == pytest.approx(single["metrics"]["test"]["log_loss"], rel=TOLERANCE)
    assert ranks.stdout.count("wrote ") == 1  # rank 0 reports for the job
    assert not list(root.glob(".lora-ddp*")) and not (root / "lora-ddp.checkpoints").exists()


# -- finetune --task text-retrieval -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def retrieval(workspace):
    common = ["finetune", "--task", "text-retrieval", "--model", str(workspace / "still-bert"),
              "--data", str(workspace / "faq.csv"), "--query-column", "q", "--document-column", "a",
              "--max-length", "32", "--hard-negatives", "2", "--epochs", "1", "--batch-size", str(RETRIEVAL_BATCH),
              "--learning-rate", "3e-3", "--patience", "none", "--eval-every", "2", *COMMON]
    one_process(*common, "--gradient-accumulation-steps", "2", "--out", str(workspace / "retrieval-single"))
    ranks = check(launch(fmkit(*common, "--nproc", str(RANKS), "--out", str(workspace / "retrieval-ddp"))),
                      "text retrieval on 2 ranks")
    return workspace, ranks


def test_retrieval_on_two_ranks_matches_one_process_with_the_same_global_batch(retrieval):
    root, ranks = retrieval
    ddp, single = manifest(root / "retrieval-ddp"), manifest(root / "retrieval-single")
    assert ddp["task"] == "text-retrieval"
    # the hard negatives were mined by the same zero-shot encoder: the same facts, the same zero-shot scores
    assert ddp["training"]["mining"] == single["training"]["mining"] and ddp["training"]["mining"]["hard_negatives"] == 2
    for split, scores in single["training"]["zero_shot"].items():
        assert ddp["training"]["zero_shot"][split] == pytest.approx(scores, abs=TOLERANCE)
    assert largest_relative_difference(weights(root / "retrieval-ddp"), weights(root / "retrieval-single")) <= TOLERANCE
    assert moved(weights(root / "retrieval-single"), weights(root / "still-bert")) > 1e-3
    assert_same_training(ddp["training"], single["training"], RETRIEVAL_BATCH)
    train_rows = len(train_split(root / "retrieval-single"))
    assert math.ceil(train_rows / RETRIEVAL_BATCH) % RANKS == 1  # a filler batch on rank 1 in the last step
    assert ddp["training"]["steps"] == steps_per_epoch(train_rows, RETRIEVAL_BATCH, RANKS)
    for mine, reference in zip(ddp["training"]["history"], single["training"]["history"]):
        assert mine["mrr@10"] == pytest.approx(reference["mrr@10"], abs=TOLERANCE)
    for key in ("mrr@10", "recall@1", "ndcg@10"):
        assert ddp["metrics"]["test"][key] == pytest.approx(single["metrics"]["test"][key], abs=TOLERANCE)
    assert ranks.stdout.count("wrote ") == 1
    assert (root / "retrieval-ddp" / "modules.json").is_file() and not list(root.glob(".retrieval-ddp*"))


# -- pretrain -------------------------------------------------------------------------------------------------

PRETRAIN = ["--seq-length", "32", "--heldout-fraction", "0.1", "--epochs", "1", "--batch-size", str(PRETRAIN_BATCH),
            "--learning-rate", "5e-3", "--patience", "null", "--eval-every", "2", *COMMON]


@pytest.fixture(scope="module")
def continued(workspace):
    """Continued pretraining of the dropout-free BERT: one process (accumulation 2) and 2 ranks."""
    common = ["pretrain", "--corpus", str(workspace / "corpus.txt"), "--from", str(workspace / "still-bert"),
              *PRETRAIN]
    one_process(*common, "--gradient-accumulation-steps", "2", "--out", str(workspace / "continued-single"))
    ranks = check(launch(fmkit(*common, "--nproc", str(RANKS), "--out", str(workspace / "continued-ddp"))),
                      "continued pretraining on 2 ranks")
    return workspace, ranks


def test_continued_pretraining_on_two_ranks_matches_one_process(continued):
    root, ranks = continued
    ddp, single = manifest(root / "continued-ddp"), manifest(root / "continued-single")
    assert largest_relative_difference(weights(root / "continued-ddp"), weights(root / "continued-single")) <= TOLERANCE
    assert moved(weights(root / "continued-single"), weights(root / "still-bert")) > 1e-3
    assert_same_training(ddp["training"], single["training"], PRETRAIN_BATCH)
    sequences = ddp["data"]["train_sequences"]
    assert sequences == single["data"]["train_sequences"] and math.ceil(sequences / PRETRAIN_BATCH) % RANKS == 1
    assert ddp["training"]["steps"] == steps_per_epoch(sequences, PRETRAIN_BATCH, RANKS)
    for mine, reference in zip(ddp["training"]["history"], single["training"]["history"]):
        assert mine["masked_accuracy"] == pytest.approx(reference["masked_accuracy"], abs=TOLERANCE)
    heldout, reference = ddp["metrics"]["heldout"], single["metrics"]["heldout"]
    assert heldout["loss"] == pytest.approx(reference["loss"], rel=TOLERANCE)
    assert heldout["masked_tokens"] == reference["masked_tokens"] > 0  # the same held-out masks
    # the job's tokens, not rank 0's share
    assert ddp["training"]["tokens_seen"] == single["training"]["tokens_seen"] > 0
    assert ranks.stdout.count("wrote ") == 1 and not (root / "continued-ddp.checkpoints").exists()


def test_pretraining_from_scratch_on_two_ranks_completes(workspace):
    """Rank 0 trains the tokenizer and packs the corpus, rank 1 reads them; dropout 0.1 differs per rank, so this is
    not compared with one process (see the module docstring)."""
    out = workspace / "scratch-ddp"
    ranks = check(launch(fmkit("pretrain", "--corpus", str(workspace / "corpus.txt"), "--size", "tiny",
                                   "--vocab-size", "200", "--min-frequency", "1", *PRETRAIN, "--nproc", str(RANKS),
                                   "--out", str(out))), "pretraining from scratch on 2 ranks")
    bundle = manifest(out)
    training = bundle["training"]
    assert bundle["task"] == "masked-lm" and bundle["base_model"]["name"] == "scratch:tiny"
    assert (training["world_size"], training["backend"], training["global_batch"]) == (RANKS, "gloo",
                                                                                        PRETRAIN_BATCH * RANKS)
    assert training["steps"] == steps_per_epoch(bundle["data"]["train_sequences"], PRETRAIN_BATCH, RANKS)
    assert training["tokenizer_trained"]["vocab_size"] <= 200 and (out / "tokenizer.json").is_file()
    losses = [h["train_loss"] for h in training["history"]]
    assert losses and all(math.isfinite(loss) for loss in losses)
    heldout = bundle["metrics"]["heldout"]
    assert math.isfinite(heldout["loss"]) and heldout["masked_tokens"] > 0
    assert training["tokens_seen"] > 0
    assert ranks.stdout.count("wrote ") == 1 and not (workspace / "scratch-ddp.checkpoints").exists()


# -- compress --method distill (torchrun; compress has no --nproc) ---------------------------------------------

DISTILL = ["--method", "distill", "--student-layers", "1", "--train-epochs", "1", "--train-batch-size", str(BATCH),
           "--train-learning-rate", "5e-3", "--train-precision", "fp32", "--train-device", "cpu",
           "--train-early-stopping-patience", "null", "--no-train-progress", "--no-measure",
           "--max-accuracy-drop", "100"]


@contextlib.contextmanager
def environment_variable(name: str, value: str):
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


@pytest.fixture(scope="module")
def distilled(workspace):
    """A dropout-free teacher (1 epoch of full fine-tuning, in process), distilled by one process (accumulation 2)
    and by 2 ranks under torchrun; the ranks' temporary directories go to a folder of their own."""
    teacher = workspace / "teacher"
    one_process("finetune", "--model", str(workspace / "still-bert"), "--data", str(workspace / "reviews.csv"),
                "--epochs", "1", "--batch-size", "16", "--learning-rate", "5e-3", "--few-shot", "off", "--patience",
                "none", *COMMON, "--out", str(teacher))
    one_process("compress", str(teacher), *DISTILL, "--train-gradient-accumulation-steps", "2",
                "--out", str(workspace / "distill-single"))
    scratch = workspace / "rank-tmp"
    scratch.mkdir()
    with environment_variable("TMPDIR", str(scratch)):
        ranks = launch(torchrun(RANKS, "-m", "fmkit", "compress", str(teacher), *DISTILL,
                                "--out", str(workspace / "distill-ddp")))
    return workspace, check(ranks, "distillation on 2 ranks")


def test_distillation_on_two_ranks_matches_one_process_and_rank_0_alone_writes(distilled):
    root, _ = distilled
    ddp, single = manifest(root / "distill-ddp"), manifest(root / "distill-single")
    assert largest_relative_difference(weights(root / "distill-ddp"), weights(root / "distill-single")) <= TOLERANCE
    # the student's layer 0 is the teacher's layer 1: compared outside the layers (embeddings, pooler, head)
    outside = {name: tensor for name, tensor in weights(root / "distill-single").items() if ".layer." not in name}
    assert moved(outside, weights(root / "teacher")) > 1e-3
    mine, reference = ddp["compression"], single["compression"]
    assert mine["status"] == "ok" and mine["student_layers"] == 1 and mine["layers_kept"] == reference["layers_kept"]
    assert_same_training(mine["distillation"], reference["distillation"], BATCH)
    assert ddp["metrics"]["test"]["log_loss"] == pytest.approx(single["metrics"]["test"]["log_loss"], rel=TOLERANCE)
    # one bundle, published by rank 0; rank 1 trained in a private directory that it removed
    assert not list(root.glob(".distill-ddp*"))
    assert not [p.name for p in (root / "rank-tmp").iterdir() if p.name.startswith("fmkit-rank")]


def test_compress_under_torchrun_reports_once(distilled):
    """Rank 0 wrote the bundle and alone reports it (fmkit/cli/commands/compress.py)."""
    _, ranks = distilled
    assert ranks.stdout.count("wrote ") == 1, ranks.stdout[-2000:]
