"""A torchrun worker for tests/test_distributed.py: ``run_finetune`` with a rank that dies (SIGKILL, a real crash).

    python -m torch.distributed.run --nproc-per-node 2 tests/distributed_worker.py CONFIG.json OUT KILL_RANK KILL_STEP

Rank KILL_RANK kills itself after optimizer step KILL_STEP on the first attempt only (TORCHELASTIC_RESTART_COUNT 0),
so ``torchrun --max-restarts 1`` restarts the job and it resumes from the last checkpoint. Rank 0 prints one JSON line:
the steps, the attempt that finished (``restart_count``) and the first optimizer step that attempt took (``first_step``:
one after the checkpoint it resumed from).
"""

import json
import os
import signal
import sys

from fmkit.train.hooks import TrainHooks


class KillAfter(TrainHooks):
    def __init__(self, rank: int, step: int):
        self.rank, self.step = rank, step
        self.first_step = None  # of this attempt

    def after_step(self, step):
        if self.first_step is None:
            self.first_step = step
        first_attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) == 0
        if first_attempt and step == self.step and int(os.environ["RANK"]) == self.rank:
            os.kill(os.getpid(), signal.SIGKILL)
        return False


def main() -> int:
    from fmkit.finetune import FinetuneConfig
    from fmkit.finetune.stage import run_finetune

    config, out, kill_rank, kill_step = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    cfg = FinetuneConfig.model_validate(json.loads(open(config).read()))
    hooks = KillAfter(kill_rank, kill_step)
    manifest = run_finetune(cfg, out, hooks=hooks, keep_checkpoints=True)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"steps": manifest.training["steps"], "world_size": manifest.training["world_size"],
                          "restart_count": int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")),
                          "first_step": hooks.first_step}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
