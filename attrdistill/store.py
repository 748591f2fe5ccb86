"""Writing results so that nothing half-written looks whole: fingerprints and atomic writes.

    key = fingerprint("attribution", teacher_fp, params)   # 16 hex chars, stable across runs
    write_json(out / "DONE.json", record)                   # readers see the old file or the new one
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_json(path: Path, obj: Any) -> None:
    """Atomic JSON write: readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
