"""The numbers Ballout et al. (2024) report, for printing beside measured ones (test accuracy, 0..1).

    PAPER["cqa"]["t5-small"]["saliency"]   # 0.457
"""

from __future__ import annotations

DATASETS = ("anli1", "esnli", "cqa", "svamp")


def _row(*values: float) -> dict[str, float]:
    return {name: v / 100 for name, v in zip(DATASETS, values)}


_TABLE = {  # Table 1 (T5-small), Table 2 (Flan-T5-small), Table 6 (teacher); columns ANLI r1, e-SNLI, CQA, SVAMP
    ("t5-small", "standard"): _row(37.7, 84.3, 44.1, 49.0),
    ("t5-small", "dsbs"): _row(39.5, 84.6, 44.4, 49.5),
    ("t5-small", "saliency"): _row(39.5, 84.8, 45.7, 50.0),
    ("flan-t5-small", "standard"): _row(39.6, 87.2, 48.4, 53.0),
    ("flan-t5-small", "dsbs"): _row(40.2, 87.6, 49.3, 53.0),
    ("flan-t5-small", "saliency"): _row(40.3, 87.8, 49.0, 52.0),
    ("teacher", "flan-t5-xl"): _row(67.3, 93.1, 81.4, 86.0),
}
# Table 3: random words as rationales on CQA with T5-small.
_TABLE[("t5-small", "random")] = {"cqa": 0.421}

PAPER: dict[str, dict[str, dict[str, float]]] = {}
for (model, variant), by_dataset in _TABLE.items():
    for dataset, value in by_dataset.items():
        PAPER.setdefault(dataset, {}).setdefault(model, {})[variant] = value


def paper_accuracy(setting: str | None, variant: str) -> float | None:
    """Accuracy the paper reports for `setting` ('<dataset>/<student model>') and a variant or 'teacher'."""
    if not setting:
        return None
    dataset, model = setting.split("/", 1)
    if variant == "teacher":
        return PAPER.get(dataset, {}).get("teacher", {}).get("flan-t5-xl")
    return PAPER.get(dataset, {}).get(model, {}).get(variant)


SETTINGS = tuple(f"{d}/{m}" for d in DATASETS for m in ("t5-small", "flan-t5-small"))
