"""One rank of the DDP test: train the toy model, then save this rank's weights.

Launched by tests/test_train_ddp.py through ``python -m torch.distributed.run``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from train_toys import ToyDataset, register_toy

from hmrt.train import distributed as D
from hmrt.train.config import TrainConfig
from hmrt.train.losses import DanetCriterion
from hmrt.train.models.registry import build
from hmrt.train.trainer import Source, Trainer


def main(out: str) -> None:
    register_toy()
    torch.set_num_threads(1)
    info = D.init_from_env("cpu")
    cfg = TrainConfig.from_dict(
        dict(
            model="toy",
            variant="edge",
            steps=6,
            batch_size=4,
            workers=0,
            log_every=2,
            tensorboard=False,
            device="cpu",
            optim=dict(lr=3e-3, warmup_steps=0),
        )
    )
    torch.manual_seed(info.rank)  # different initial weights: DDP must broadcast rank 0's
    model = build("toy", "edge")
    trainer = Trainer(
        cfg,
        out,
        model,
        DanetCriterion(cfg.loss, body=model.body),
        [Source(ToyDataset(32), 32, fresh=True)],
        val_set=ToyDataset(8, seed=5),
        body=model.body,
        progress=False,
        dist=info,
    )
    trainer.fit()
    # Parameters only: BatchNorm running stats are rank-local between DDP's buffer broadcasts.
    params = {k: v.detach() for k, v in trainer.model.named_parameters()}
    torch.save(params, Path(out) / f"rank{info.rank}.pt")
    D.cleanup(info)


if __name__ == "__main__":
    main(sys.argv[1])
