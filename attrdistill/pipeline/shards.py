"""The sharded cache: rows computed a shard at a time, each shard a file, reused by every later run.

    rows = sharded(examples, shard_size=1024, folder=cache / f"{method}-{key}", compute=score_shard,
                   what="attribution saliency", crash="shard")

Attribution scores and the teacher's sparse kd logits are both made this way. A shard on disk is a
whole shard (written atomically), so an interrupted run resumes at the next one; a shard that is
unreadable or holds other examples than expected is recomputed, with a log line. `split=True` shares
the shards out by process rank under `accelerate launch`, then every process reads all of them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from tqdm.auto import tqdm

from attrdistill.data.example import read_jsonl, write_jsonl
from attrdistill.pipeline.distributed import barrier, process, quiet
from attrdistill.pipeline.store import crash_point

log = logging.getLogger(__name__)
T = TypeVar("T")


def sharded(items: Sequence[T], ids: Sequence[str], shard_size: int, folder: Path | None,
            compute: Callable[[list[T]], list[dict[str, Any]]], what: str, crash: str,
            split: bool = False) -> list[dict[str, Any]]:
    """One row per item, in order: `compute(shard)` (rows with an "id", one per item) for each shard not cached
    in folder/shard-NNNNN.jsonl. `ids` are the items' ids (a cached shard must hold exactly these); `crash` names
    the resume tests' kill point (`<crash>@<shard>`); with `split` each process computes its rank's shards."""
    rank, world = process() if split else (0, 1)
    if world > 1 and folder is None:
        raise ValueError(f"{what} across processes needs a cache folder to share the shards")
    starts = list(range(0, len(items), shard_size))
    shards = [list(items[i:i + shard_size]) for i in starts]
    want = [list(ids[i:i + shard_size]) for i in starts]
    path = (lambda s: folder / f"shard-{s:05d}.jsonl") if folder is not None else (lambda s: None)
    computed: dict[int, list[dict[str, Any]]] = {}
    mine = [s for s in range(len(shards)) if s % world == rank]
    if world > 1:
        log.info("process %d of %d: %s shards %s", rank, world, what, mine)
    for s in tqdm(mine, desc=f"{what} (shards)", unit="shard", disable=len(mine) < 2 or quiet()):
        if path(s) is not None and path(s).is_file():
            continue
        computed[s] = _computed(compute, shards[s], path(s))
        crash_point(f"{crash}@{s}")
    if split:
        barrier()
    out: list[dict[str, Any]] = []
    for s, shard in enumerate(shards):
        rows = computed.get(s) or _cached(path(s), want[s])
        if rows is None:   # damaged on disk: recompute it here rather than trust it
            rows = _computed(compute, shard, path(s))
        out += rows
    return out


def _computed(compute: Callable[[list[T]], list[dict[str, Any]]], shard: list[T],
              path: Path | None) -> list[dict[str, Any]]:
    rows = compute(shard)
    if path is not None:
        write_jsonl(path, rows)   # atomic: a shard file on disk is a whole shard
    return rows


def _cached(path: Path | None, ids: list[str]) -> list[dict[str, Any]] | None:
    """A cached shard's rows, or None (with a log line) when the file is unreadable or holds other examples."""
    if path is None:
        return None
    try:
        rows = read_jsonl(path)
    except (ValueError, OSError) as e:
        log.warning("%s is damaged (%s): recomputing it", path, e)
        return None
    if [r.get("id") for r in rows] != ids:
        log.warning("%s holds other examples than expected: recomputing it", path)
        return None
    return rows
