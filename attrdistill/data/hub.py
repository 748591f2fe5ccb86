"""The paper's datasets from the Hugging Face hub, formatted exactly as the DSbS release loader formats them.

    test = load_hub("cqa", "test")                      # cos_e v1.11 validation, with CoS-E `human` spans
    valid = load_hub("anli1", "valid")                  # facebook/anli dev_r1
    train = load_hub("esnli", "train", hub_id="/data/esnli_saved")   # a DatasetDict.save_to_disk folder

Every row goes through `dsbs.format_example`, so `input`/`label` strings equal the DSbS ones for
the same content. Sources (`_HUB`): cqa -> `cos_e` v1.11 (DSbS's own source: train -> train,
validation -> test); anli1 -> `facebook/anli` (train_r1, dev_r1, test_r1); esnli -> `esnli` (train,
validation, test; rows with label -1, i.e. no gold label, are dropped and counted in a warning);
svamp -> `ChilleD/SVAMP` (train, test).

SVAMP assumption (not checked against the hub offline): ChilleD/SVAMP keeps the original SVAMP
columns `ID, Body, Question, Equation, Answer, Type` (plus derived ones such as `question_concat`).
DSbS builds `input = Body + "\\n" + Question` and `label = Equation` from SVAMP.json, so that is the
mapping used here; `question_concat` is ignored because its joiner is not DSbS's. Its 700/300
train/test split (seed 42) is not DSbS's 800/200 split, so the rows differ even though each
row's strings match.

CQA and SVAMP have no valid split on the hub: take one with `dsbs.train_valid_split` as DSbS does.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from attrdistill.data.dsbs import NAMES, NLI_FORMATS, format_example
from attrdistill.data.example import Example
from attrdistill.errors import DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")

# name -> (hub id, config, {our split: hub split}); a split left out is not on the hub.
_HUB: dict[str, tuple[str, str | None, dict[str, str]]] = {
    "cqa": ("cos_e", "v1.11", {"train": "train", "test": "validation"}),
    "svamp": ("ChilleD/SVAMP", None, {"train": "train", "test": "test"}),
    "anli1": ("facebook/anli", None, {"train": "train_r1", "valid": "dev_r1", "test": "test_r1"}),
    "esnli": ("esnli", None, {"train": "train", "valid": "validation", "test": "test"}),
}

# Hub columns each dataset needs; cos_e's extractive_explanation is optional (it only fills `human`).
_COLUMNS = {"cqa": ("id", "question", "choices", "answer"), "svamp": ("Body", "Question", "Equation"),
            "anli1": ("uid", "premise", "hypothesis", "label"), "esnli": ("premise", "hypothesis", "label")}
_OPTIONAL = {"cqa": ("extractive_explanation",), "svamp": ("ID",), "anli1": (), "esnli": ()}


def hub_source(name: str, split: str) -> tuple[str, str | None, str]:
    """(hub id, config, hub split) that `load_hub` reads for one of our splits by default."""
    if name not in NAMES:
        raise DataError(f"unknown dataset {name!r}; expected one of {', '.join(NAMES)}")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    hub_id, config, splits = _HUB[name]
    if split not in splits:
        raise DataError(f"{name} has no {split} split on the hub ({hub_id} has {', '.join(splits.values())}); "
                        f"DSbS makes one with train_valid_split(load_hub({name!r}, 'train')).")
    return hub_id, config, splits[split]


def has_split(name: str, split: str) -> bool:
    """Whether the hub has `split` of dataset `name` (CQA and SVAMP have no valid split there)."""
    return split in _HUB[name][2]


def _load_split(hub_id: str, config: str | None, hub_split: str) -> Any:
    import datasets  # slow to import; only loading needs it

    if (Path(hub_id) / "dataset_dict.json").is_file():   # a DatasetDict.save_to_disk folder (tests, offline copies)
        saved = datasets.load_from_disk(hub_id)
        if hub_split not in saved:
            raise DataError(f"{hub_id}: no split {hub_split!r}; splits present: {', '.join(saved) or 'none'}")
        return saved[hub_split]
    try:
        return datasets.load_dataset(hub_id, config, split=hub_split)
    except ValueError as e:
        if "split" not in str(e).lower():
            raise
        try:
            present = ", ".join(datasets.get_dataset_split_names(hub_id, config))
        except Exception:   # listing needs the hub too; the original message still says what went wrong
            present = f"unknown ({e})"
        raise DataError(f"{hub_id}: no split {hub_split!r}; splits present: {present}") from None


def _rows(data: Any, name: str, where: str) -> list[dict[str, Any]]:
    """The needed columns as one dict per row (column-wise reads: row-wise iteration is slow on e-SNLI's 550k)."""
    missing = [c for c in _COLUMNS[name] if c not in data.column_names]
    if missing:
        raise DataError(f"{where}: missing column(s) {', '.join(missing)}; expected {', '.join(_COLUMNS[name])} "
                        f"(columns present: {', '.join(data.column_names)})")
    keep = [c for c in _COLUMNS[name] + _OPTIONAL[name] if c in data.column_names]
    columns = data.select_columns(keep).to_dict()
    return [dict(zip(keep, values)) for values in zip(*(columns[c] for c in keep))]


def load_hub(name: str, split: str, hub_id: str | None = None, nli_format: str = "eos") -> list[Example]:
    """The examples of one split of a paper dataset, read with the `datasets` library.

    split is ours (train, valid, test), mapped to the hub's split names. hub_id overrides the
    default id (the default config is kept only for the default id); a local folder holding
    `dataset_dict.json` is read with `datasets.load_from_disk`. Raises ValueError for a split the
    hub lacks, a missing split or column (naming the source and what is present) or a bad label.
    """
    if nli_format not in NLI_FORMATS:
        raise DataError(f"nli_format must be one of {', '.join(NLI_FORMATS)}, got {nli_format!r}")
    default_id, config, hub_split = hub_source(name, split)
    source = hub_id or default_id
    data = _load_split(source, config if source == default_id else None, hub_split)
    where = f"{source}[{hub_split}]"
    rows = _rows(data, name, where)

    if name in ("anli1", "esnli"):
        # -1 marks a pair without a gold label (SNLI's '-'); such rows have nothing to learn or score.
        kept = [(i, row) for i, row in enumerate(rows) if row["label"] != -1]
        if len(kept) < len(rows):
            log.warning("%s: dropped %d of %d rows with label -1 (no gold label)", where, len(rows) - len(kept),
                        len(rows))
    else:
        kept = list(enumerate(rows))

    examples = []
    for i, row in kept:
        if name == "svamp":
            ex_id = str(row.get("ID") or f"svamp-{split}-{i}")
            row = {"input": f"{row['Body']}\n{row['Question']}", "label": row["Equation"]}
        else:
            # The index is the hub row's, so ids stay the same whether or not unlabelled rows were dropped.
            ex_id = str(row.get("id") or row.get("uid") or f"{name}-{split}-{i}")
        examples.append(format_example(name, row, ex_id, nli_format, f"{where} row {i}"))
    return examples
