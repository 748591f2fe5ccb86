"""Which process am I: one process by default, or one of N under `accelerate launch` / torchrun.

    rank, world = process()          # (0, 1) in a plain run
    barrier()                        # wait for every process (no-op alone)

Only the main process writes a stage's shared outputs; work that splits (attribution shards)
is assigned by rank.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any


def launched() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@lru_cache(maxsize=1)
def state() -> Any:
    import torch
    from accelerate import PartialState   # sets up torch.distributed (gloo on CPU, nccl on GPUs)
    # cpu=True on a GPU-less machine, else processes started by torchrun / `accelerate launch --multi_gpu`
    # each believe they are alone.
    return PartialState(cpu=not torch.cuda.is_available())


def process() -> tuple[int, int]:
    """(rank, world size) of this process."""
    if not launched():
        return 0, 1
    s = state()
    return s.process_index, s.num_processes


def is_main() -> bool:
    return process()[0] == 0


def barrier() -> None:
    if launched():
        state().wait_for_everyone()
