"""FSDP2 through the one training loop: ``fmkit finetune --nproc 2 --distributed fsdp`` on 2 gloo ranks on CPU.

tests/test_fsdp.py checks fmkit/train/fsdp.py called directly; here the whole stage runs under torchrun with the
loop sharding a copy of the model (fmkit/train/parallel.py ``lay_out``), gathering it into the plain model for
rank 0's evaluations and the bundle, and writing full states into the checkpoints. The reference is the same as
tests/test_distributed.py's: one process with batch B and accumulation 2 takes the same batches per optimizer step
as 2 ranks with batch B; the reference runs in this process with one thread, as each rank has. FSDP averages the
ranks' gradients with a reduce-scatter instead of DDP's all-reduce and clips the norm over sharded DTensors.
Measured 2026-12-02 (torch 2.13, gloo): the largest tensor's relative difference is 0.0 for fine-tuning, the
restart and pretraining alike, since with 2 ranks (a + b) / 2 is exactly one process's a / 2 + b / 2. Other world
sizes or NCCL's ring add in another order, so the check is TOLERANCE (1e-5, fp32 rounding), not equality.
"""

from __future__ import annotations

import json

import pytest

from distributed_fixtures import (FLAGS, TOLERANCE, WORKER, aborted_before_the_kill, check, fmkit,
                                 largest_relative_difference, launch, manifest, one_process, still_bert, torchrun,
                                 weights)


@pytest.fixture(scope="module")
def runs(tiny_bert_dir, reviews_csv, tmp_path_factory):
    """One process (batch 13, accumulation 2) and 2 FSDP ranks through ``fmkit finetune --nproc 2`` (batch 13 each)."""
    root = tmp_path_factory.mktemp("fsdp-loop")
    model = still_bert(tiny_bert_dir, root / "still-bert")
    common = ["finetune", "--model", str(model), "--data", str(reviews_csv), *FLAGS]
    one_process(*common, "--gradient-accumulation-steps", "2", "--out", str(root / "single"))
    ranks = check(launch(fmkit(*common, "--nproc", "2", "--distributed", "fsdp", "--out", str(root / "fsdp"))), "2 FSDP ranks")
    return root, ranks


def test_two_fsdp_ranks_through_the_loop_match_one_process(runs):
    root, ranks = runs
    single, sharded = manifest(root / "single")["training"], manifest(root / "fsdp")["training"]
    difference = largest_relative_difference(weights(root / "fsdp"), weights(root / "single"))
    assert difference <= TOLERANCE, difference
    # training moved the weights: two untouched models would match trivially
    moved = {name: tensor for name, tensor in weights(root / "single").items() if "classifier" not in name}
    assert largest_relative_difference(moved, {k: weights(root / "still-bert")[k] for k in moved}) > 1e-3
    # rank 0 evaluated the gathered weights at the same steps, with the same losses
    assert [h["step"] for h in sharded["history"]] == [h["step"] for h in single["history"]] == [4, 8, 12, 13]
    for mine, reference in zip(sharded["history"], single["history"]):
        assert mine["train_loss"] == pytest.approx(reference["train_loss"], rel=TOLERANCE)
        assert mine["log_loss"] == pytest.approx(reference["log_loss"], rel=TOLERANCE)
    assert (sharded["world_size"], sharded["backend"], sharded["global_batch"], sharded["steps"]) == (2, "gloo", 26, 13)
    assert sharded["parallel"]["strategy"] == "fsdp" and sharded["parallel"]["per_rank_batch"] == 13
    assert "2 ranks (fsdp, gloo)" in ranks.stderr
    assert ranks.stdout.count("wrote ") == 1  # rank 0 writes the one bundle


def test_a_killed_fsdp_rank_restarts_from_the_full_state_checkpoint(runs):
    """Rank 1 is SIGKILLed after step 6 (tests/distributed_worker.py); torchrun restarts both ranks, which load the
    step-4 checkpoint (full weights and AdamW state, sharded back) and end where the uninterrupted FSDP run did."""
    root, _ = runs
    config = manifest(root / "fsdp")["lineage"][-1]["config"]
    assert config["train"]["distributed"] == "fsdp"
    path = root / "fsdp-config.json"
    path.write_text(json.dumps(config))
    out, checkpoints = root / "restarted", root / "restarted.checkpoints"
    kill_rank, kill_step = 1, 6
    result = check(launch(torchrun(2, str(WORKER), str(path), str(out), str(kill_rank), str(kill_step), max_restarts=1),
                          is_abort=lambda run: aborted_before_the_kill(run, kill_rank), outputs=(out, checkpoints)),
                   "restarted FSDP job")
    assert f"failed (exitcode: -9) local_rank: {kill_rank} " in result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    every = int(FLAGS[FLAGS.index("--checkpoint-every") + 1])
    resumed_at = kill_step // every * every + 1  # one after the last checkpoint written before the kill
    assert (report["restart_count"], report["first_step"], report["world_size"]) == (1, resumed_at, 2)
    # the checkpoint holds the full, unsharded weights under the plain model's names: one process can load it
    from safetensors.torch import load_file

    saved = load_file(str(checkpoints / "latest" / "model.safetensors"))
    assert saved.keys() == weights(root / "fsdp").keys()
    assert {name: tuple(t.shape) for name, t in saved.items()} == {
        name: tuple(t.shape) for name, t in weights(root / "fsdp").items()}
    difference = largest_relative_difference(weights(out), weights(root / "fsdp"))
    assert difference <= TOLERANCE, difference
    resumed, uninterrupted = manifest(out)["training"]["history"], manifest(root / "fsdp")["training"]["history"]
    assert [h["log_loss"] for h in resumed] == pytest.approx([h["log_loss"] for h in uninterrupted], rel=TOLERANCE)


# -- pretrain: mlm_loss calls model.bert and model.cls, not forward -------------------------------------------

PRETRAIN = ["--seq-length", "32", "--heldout-fraction", "0.1", "--epochs", "1", "--batch-size", "8",
            "--learning-rate", "5e-3", "--patience", "none", "--eval-every", "2", "--precision", "fp32", "--device",
            "cpu", "--no-progress"]


def test_continued_pretraining_on_two_fsdp_ranks_matches_one_process(runs):
    """The masked-LM loss runs the vocabulary projection at the masked positions only, so it calls the encoder and
    the head (tied to the word embeddings) itself; under FSDP the loop enters it like forward
    (fmkit/train/fsdp.py ``sharded_loss``). Masks are a function of (seed, epoch, batch), the BERT is dropout-free:
    2 FSDP ranks must equal one process with accumulation 2."""
    from test_pretrain import sentences

    root, _ = runs
    (root / "corpus.txt").write_text("\n".join(sentences(120)) + "\n", encoding="utf-8")
    common = ["pretrain", "--corpus", str(root / "corpus.txt"), "--from", str(root / "still-bert"), *PRETRAIN]
    one_process(*common, "--gradient-accumulation-steps", "2", "--out", str(root / "mlm-single"))
    check(launch(fmkit(*common, "--nproc", "2", "--distributed", "fsdp", "--out", str(root / "mlm-fsdp"))),
          "continued pretraining, 2 FSDP ranks")
    sharded, single = manifest(root / "mlm-fsdp"), manifest(root / "mlm-single")
    difference = largest_relative_difference(weights(root / "mlm-fsdp"), weights(root / "mlm-single"))
    assert difference <= TOLERANCE, difference
    start = weights(root / "still-bert")
    encoder = {name: tensor for name, tensor in weights(root / "mlm-single").items() if name in start}
    assert encoder and largest_relative_difference(encoder, {name: start[name] for name in encoder}) > 1e-3
    training = sharded["training"]
    assert (training["world_size"], training["parallel"]["strategy"]) == (2, "fsdp")
    assert [h["step"] for h in training["history"]] == [h["step"] for h in single["training"]["history"]]
    for mine, reference in zip(training["history"], single["training"]["history"]):
        assert mine["train_loss"] == pytest.approx(reference["train_loss"], rel=TOLERANCE)
        assert mine["loss"] == pytest.approx(reference["loss"], rel=TOLERANCE)
    assert sharded["metrics"]["heldout"]["loss"] == pytest.approx(single["metrics"]["heldout"]["loss"], rel=TOLERANCE)
