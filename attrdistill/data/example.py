"""The one example type every stage reads and writes, and its JSONL form."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from attrdistill.errors import DataError
from attrdistill.pipeline.store import atomic_open

SPLITS = ("teacher_train", "student_train", "valid", "test")
TRANSFER = "transfer"   # with data.transfer_file: unlabelled inputs, written beside the splits


@dataclass
class Example:
    id: str
    input: str
    label: str
    choices: list[str] | None = None
    rationale: str | None = None           # a given free-text rationale (e.g. an LLM's), if the data has one
    decisive: list[int] | None = None      # ground truth: word indices (attrdistill.words) of the words
                                           # that decide the label, in the order the label combines them
    human: list[int] | None = None         # human-highlighted word indices (CoS-E span, e-SNLI marks), sorted


def write_jsonl(path: Path, rows: Iterable[Any]) -> None:
    """Write rows (dicts, or records: their `to_json()`, else all their fields) to `path` atomically: a reader
    never sees a half-written file."""
    with atomic_open(path) as fh:
        for row in rows:
            if hasattr(row, "to_json"):
                row = row.to_json()
            elif dataclasses.is_dataclass(row):
                row = dataclasses.asdict(row)
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_text(path: Path) -> str:
    """A UTF-8 text file (a leading BOM dropped); other bytes raise ValueError naming file, line and byte."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
                        "save the file as UTF-8") from None


def read_jsonl_lines(path: Path) -> list[tuple[int, dict]]:
    """(line number, object) for each non-blank line; bad lines raise ValueError naming file and line."""
    rows = []
    # Only "\n" ends a line: JSON written with ensure_ascii=False may hold a raw U+2028 inside a string.
    for n, line in enumerate(read_text(path).split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
        rows.append((n, row))
    return rows


def read_jsonl(path: Path) -> list[dict]:
    return [row for _, row in read_jsonl_lines(path)]


def read_examples(path: Path) -> list[Example]:
    fields = {f.name for f in dataclasses.fields(Example)}
    out = []
    for n, row in read_jsonl_lines(path):
        missing = {"id", "input", "label"} - set(row)
        if missing:
            raise DataError(f"{path}:{n}: missing field(s) {', '.join(sorted(missing))}")
        out.append(Example(**{k: v for k, v in row.items() if k in fields}))
    return out
