"""Data-parallel training on torchrun, gloo on CPU: 2 real ranks against one process, a crashed rank, a restart.

The reference for 2 ranks with batch B is one process with batch B and twice the gradient accumulation: the same
global batch (2B examples per optimizer step) made of the same batches in the same order (fmkit/train/distributed.py).
The tiny BERT has dropout 0, so both compute the same function; tolerance 1e-5 relative per tensor (fp32).
torchrun aborts about one launch in 11 here (../shared/OFFLINE.md): a launch killed by SIGABRT is retried once and
recorded as a warning (tests/distributed_fixtures.py), never skipped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distributed_fixtures import (FLAGS, TOLERANCE, WORKER, aborted_before_the_kill, check, fmkit,
                                 largest_relative_difference, launch, manifest, still_bert, torchrun, weights)


@pytest.fixture(scope="module")
def runs(tiny_bert_dir, reviews_csv, tmp_path_factory):
    """One process (batch 13, accumulation 2) and 2 ranks through ``fmkit finetune --nproc 2`` (batch 13 each)."""
    root = tmp_path_factory.mktemp("distributed")
    model = still_bert(tiny_bert_dir, root / "still-bert")
    common = ["finetune", "--model", str(model), "--data", str(reviews_csv), *FLAGS]
    check(launch(fmkit(*common, "--gradient-accumulation-steps", "2", "--out", str(root / "single"))), "one process")
    ranks = check(launch(fmkit(*common, "--nproc", "2", "--out", str(root / "ddp"))), "2 ranks")
    return root, ranks


def test_two_ranks_match_one_process_with_the_same_global_batch(runs):
    root, ranks = runs
    single, ddp = manifest(root / "single")["training"], manifest(root / "ddp")["training"]
    assert largest_relative_difference(weights(root / "ddp"), weights(root / "single")) <= TOLERANCE
    # training actually moved the weights (a comparison of two untouched models would pass trivially)
    moved = {name: tensor for name, tensor in weights(root / "single").items() if "classifier" not in name}
    assert largest_relative_difference(moved, {k: weights(root / "still-bert")[k] for k in moved}) > 1e-3
    # the loss curve: the running training loss (reduced over the ranks) and validation loss at every evaluation
    assert [h["step"] for h in ddp["history"]] == [h["step"] for h in single["history"]] == [4, 8, 12, 13]
    for mine, reference in zip(ddp["history"], single["history"]):
        assert mine["train_loss"] == pytest.approx(reference["train_loss"], rel=TOLERANCE)
        assert mine["log_loss"] == pytest.approx(reference["log_loss"], rel=TOLERANCE)
    assert ddp["history"][-1]["train_loss"] < ddp["history"][0]["train_loss"]
    # the manifest records the launch; the log states the global batch
    assert (ddp["world_size"], ddp["backend"], ddp["global_batch"], ddp["steps"]) == (2, "gloo", 26, 13)
    assert (single["world_size"], single["backend"], single["global_batch"], single["steps"]) == (1, None, 26, 13)
    assert ddp["parallel"]["strategy"] == "ddp" and ddp["parallel"]["per_rank_batch"] == 13
    assert "global batch 13 per rank x 2 ranks x 1 accumulation = 26" in ranks.stderr
    assert ranks.stdout.count("wrote ") == 1  # rank 0 reports for the job
    assert not list(root.glob(".ddp*"))  # no temporary directory of a second writer


def worker_config(root: Path) -> Path:
    """The 2-rank run's own finetune config (from its manifest's lineage), for the worker to run again."""
    config = manifest(root / "ddp")["lineage"][-1]["config"]
    path = root / "ddp-config.json"
    path.write_text(json.dumps(config))
    return path


def test_a_crashed_rank_fails_the_job_clearly_and_writes_no_bundle(runs):
    root, _ = runs
    out = root / "crashed"
    result = launch(torchrun(2, str(WORKER), str(worker_config(root)), str(out), "1", "5"),
                    outputs=(out, root / "crashed.checkpoints"))
    text = result.stdout + result.stderr
    assert result.returncode != 0
    assert "SIGKILL" in text and "rank" in text, text[-4000:]  # torchrun names the rank that died and how
    assert not out.exists() and not list(root.glob(".crashed*"))  # neither a bundle nor a half-written one
    assert (root / "crashed.checkpoints" / "latest" / "state.json").is_file()  # what a rerun resumes from


def test_torchrun_max_restarts_resumes_from_the_last_checkpoint(runs):
    """Rank 1 is SIGKILLed after step KILL_STEP; torchrun restarts both ranks, which resume from the last checkpoint.

    The restarted gloo group used to fail in connectFullMesh ('Connection refused') or hang: torchrun's shared
    agent store keeps the dead group's keys (fmkit/train/distributed.py, attempt_store)."""
    root, _ = runs
    out, checkpoints = root / "restarted", root / "restarted.checkpoints"
    kill_rank, kill_step = 1, 6
    result = check(launch(torchrun(2, str(WORKER), str(worker_config(root)), str(out), str(kill_rank), str(kill_step),
                                   max_restarts=1), is_abort=lambda run: aborted_before_the_kill(run, kill_rank),
                          outputs=(out, checkpoints)), "restarted job")
    text = result.stdout + result.stderr
    assert f"failed (exitcode: -9) local_rank: {kill_rank} " in text, text[-4000:]  # the kill, seen by torchrun
    report = json.loads(result.stdout.strip().splitlines()[-1])
    every = int(FLAGS[FLAGS.index("--checkpoint-every") + 1])
    # the second attempt finished, and its first step follows the last checkpoint written before the kill
    assert (report["restart_count"], report["first_step"]) == (1, kill_step // every * every + 1), report
    state = json.loads((checkpoints / "latest" / "state.json").read_text())
    assert state["step"] == report["steps"] == manifest(root / "ddp")["training"]["steps"]
    # the resumed job ends where the uninterrupted one did: same weights, same evaluations
    assert largest_relative_difference(weights(out), weights(root / "ddp")) <= TOLERANCE
    resumed, uninterrupted = manifest(out)["training"]["history"], manifest(root / "ddp")["training"]["history"]
    assert [h["log_loss"] for h in resumed] == pytest.approx([h["log_loss"] for h in uninterrupted], rel=TOLERANCE)


def test_each_restart_attempt_joins_its_own_part_of_torchruns_shared_store(monkeypatch):
    """The cause of the restart defect, isolated: attempt 1 must not read attempt 0's keys from the agent store."""
    import torch.distributed as dist

    from fmkit.train.distributed import Ranks, attempt_store

    server = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)  # what torchrun's agent hosts
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(server.port))
    monkeypatch.delenv("TORCHELASTIC_USE_AGENT_STORE", raising=False)
    assert attempt_store(Ranks(0, 2, restart_count=1)) is None  # not torchrun's shared store: torch's env:// path
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    monkeypatch.setenv("GROUP_WORLD_SIZE", "1")
    first, second = (attempt_store(Ranks(0, 2, restart_count=count)) for count in (0, 1))
    first.set("rank_1", "the dead rank's address")
    assert first.check(["rank_1"]) and not second.check(["rank_1"])
    assert server.check(["fmkit/attempt_0/default_pg/rank_1"])
    monkeypatch.setenv("GROUP_WORLD_SIZE", "2")  # several machines: their agents' restart counts may differ
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "1")
    with pytest.warns(UserWarning, match="TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1"):
        assert attempt_store(Ranks(0, 2, restart_count=1)) is None


class Numbered:
    """A BatchSource of 5 one-row batches whose order depends on the epoch."""

    num_examples = 5

    def __len__(self):
        return 5

    def batches(self, epoch, start=0):
        for index in range(start, 5):
            yield {"id": (index + epoch) % 5}


def test_each_rank_gets_its_share_of_the_same_batches_and_resumes_exactly():
    from fmkit.train.distributed import FILLER, RankBatches, Ranks

    shares = [list(RankBatches(Numbered(), Ranks(rank, 2)).batches(1)) for rank in (0, 1)]
    assert [b["id"] for b in shares[0]] == [1, 3, 0] and [b["id"] for b in shares[1][:2]] == [2, 4]
    assert shares[1][2][FILLER] and FILLER not in shares[0][2]  # 5 batches on 2 ranks: rank 1's last has weight 0
    assert len(RankBatches(Numbered(), Ranks(1, 2))) == 3
    resumed = list(RankBatches(Numbered(), Ranks(1, 2)).batches(1, start=2))
    assert len(resumed) == 1 and resumed[0][FILLER]
    assert [b["id"] for b in RankBatches(Numbered(), Ranks(0, 2)).batches(1, start=1)] == [3, 0]


def test_bad_launches_are_clear_errors():
    from fmkit.cli.launch import check_launch, cpu_cores, strip_launch_flags
    from fmkit.errors import BadInputError

    warnings: list[str] = []
    env = check_launch(cpu_cores() + 2, None, "cpu", warn=warnings.append)
    assert len(warnings) == 1 and f"--nproc {cpu_cores() + 2} is more than" in warnings[0] and "longer" in warnings[0]
    assert env["OMP_NUM_THREADS"]
    with pytest.raises(BadInputError, match="--backend nccl needs CUDA GPUs"):
        check_launch(2, "nccl", "cpu")
    with pytest.raises(BadInputError, match="--nproc 0"):
        check_launch(0, None, "cpu")
    assert strip_launch_flags(["finetune", "--nproc", "2", "--backend=gloo", "--max-restarts", "1", "--out", "x"]) == [
        "finetune", "--out", "x"]


def test_nccl_without_cuda_is_refused_inside_a_rank(monkeypatch):
    import torch

    from fmkit.errors import BadInputError
    from fmkit.train.distributed import choose_backend

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: NCCL is allowed")  # the refusal is what a CPU machine must show
    monkeypatch.setenv("FMKIT_BACKEND", "nccl")
    with pytest.raises(BadInputError, match="backend nccl needs CUDA GPUs"):
        choose_backend("auto")
    monkeypatch.setenv("FMKIT_BACKEND", "mpi")
    with pytest.raises(BadInputError, match="FMKIT_BACKEND='mpi'"):
        choose_backend("auto")
