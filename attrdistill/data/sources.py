"""Task sources: turn the `data` section of a config into the four splits of a run."""

from __future__ import annotations

from attrdistill.config import DataConfig
from attrdistill.data import synthetic
from attrdistill.data.example import Example


def build_splits(cfg: DataConfig) -> dict[str, list[Example]]:
    """{teacher_train, student_train, valid, test} for the configured task."""
    if cfg.source == "builtin":
        # Distinct generator seeds per split keep the splits independent draws of one task.
        sizes = {"teacher_train": cfg.n_teacher_train, "student_train": cfg.n_student_train,
                 "valid": cfg.n_valid, "test": cfg.n_test}
        return {name: synthetic.generate(n, seed=cfg.seed * 10 + i) for i, (name, n) in enumerate(sizes.items())}
    raise ValueError(f"data.source: unknown source {cfg.source!r}; expected 'builtin'")
