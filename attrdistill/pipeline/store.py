"""Writing results so that nothing half-written looks whole: fingerprints, atomic writes, manifests.

    key = fingerprint("attribution", teacher_fp, params)   # 16 hex chars, stable across runs
    write_json(out / "DONE.json", record)                   # readers see the old file or the new one
    files = manifest(out)                                   # {relative path: {size, sha256}} of a stage's outputs
    problem = verify(out, files)                            # None, or which file is missing, truncated or altered

Every file goes to a temporary name first and is renamed when complete; a failed write removes
the temporary file and leaves the previous version in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

# Written by the stage machinery itself, or resumable scratch state: not part of a stage's result.
UNTRACKED = ("DONE.json", "STARTED.json")
CHECKPOINTS = "checkpoints"   # a training unit's resumable state, removed once the unit is done
UNTRACKED_DIRS = (CHECKPOINTS,)


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@contextmanager
def atomic_open(path: Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary sibling of `path` for writing; rename it to `path` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    """Atomic JSON write: readers see the old file or the new one, never half of one."""
    with atomic_open(path) as fh:
        fh.write(json.dumps(obj, indent=2, default=str) + "\n")


def files_digest(path: Path) -> str:
    """A digest of a file or folder by each file's relative path, size and modification time: cheap for a model of
    gigabytes, and changed by any rewrite (a copy with new times counts as changed)."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return fingerprint([(str(p.relative_to(path)) if p != path else p.name, p.stat().st_size, p.stat().st_mtime_ns)
                        for p in files])


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _tracked(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file() and p.name not in UNTRACKED
                  and not p.name.endswith(".tmp")
                  and not any(part in UNTRACKED_DIRS for part in p.relative_to(out).parts[:-1]))


def manifest(out: Path) -> dict[str, dict[str, Any]]:
    """Size and SHA-256 of every result file under `out` (not the bookkeeping files or checkpoints)."""
    return {str(p.relative_to(out)): {"size": p.stat().st_size, "sha256": sha256(p)} for p in _tracked(out)}


def verify(out: Path, files: dict[str, dict[str, Any]]) -> str | None:
    """None when every listed file is there with its size and checksum, else what is wrong with the first bad one."""
    for rel, want in files.items():
        path = out / rel
        if not path.is_file():
            return f"{path} is missing"
        if path.stat().st_size != want["size"]:
            return f"{path} is truncated or altered ({path.stat().st_size} bytes, expected {want['size']})"
        if sha256(path) != want["sha256"]:
            return f"{path} is corrupted (checksum differs from the manifest)"
    return None


def crash_point(name: str) -> None:
    """Test hook: SIGKILL this process here when ATTRDISTILL_CRASH_AT names this point (e.g. 'shard@1').

    The resume tests kill a run at chosen points this way; unset, it costs one dict lookup.
    """
    if os.environ.get("ATTRDISTILL_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
