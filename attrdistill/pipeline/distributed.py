"""Which process am I (one process by default, or one of N under `accelerate launch` / torchrun), and does it
show progress bars.

    rank, world = process()          # (0, 1) in a plain run
    barrier()                        # wait for every process (no-op alone)
    with on_main_only(): ...         # work the other processes skip: barriers inside are no-ops

Only the main process writes a stage's shared outputs; work that splits (attribution shards)
is assigned by rank.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Iterator

_solo = False   # inside on_main_only(): the other processes are not there to meet at a barrier


def quiet() -> bool:
    """No progress bars (`attrdistill -q`): TQDM_DISABLE=1, tqdm's own variable, which tqdm itself reads only
    when it is imported; so every bar of ours passes `disable=quiet()`."""
    return os.environ.get("TQDM_DISABLE") == "1"


def launched() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@lru_cache(maxsize=1)
def state() -> Any:
    import torch
    from accelerate import PartialState  # sets up torch.distributed (gloo on CPU, nccl on GPUs)
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
    if launched() and not _solo:
        state().wait_for_everyone()


@contextmanager
def on_main_only() -> Iterator[None]:
    """Work that the main process does alone (the others skip it): barriers inside it do not wait."""
    global _solo
    _solo, before = True, _solo
    try:
        yield
    finally:
        _solo = before
