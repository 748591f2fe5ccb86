"""Data: one Example type, JSONL storage and the task sources that produce examples.

    splits = build_splits(cfg.data)   # {"teacher_train": [...], "student_train": [...], "valid": [...], "test": [...]}
"""

from attrdistill.data.example import SPLITS, Example, read_jsonl, write_jsonl
from attrdistill.data.sources import build_splits, scaffolds

__all__ = ["SPLITS", "Example", "build_splits", "read_jsonl", "scaffolds", "write_jsonl"]
