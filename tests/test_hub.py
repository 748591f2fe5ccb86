"""Hub loader on tiny DatasetDicts saved to disk in the hub's column schemas (offline stand-ins for the hub).

Each stand-in holds real DSbS rows rewritten in the hub schema, so the formatted strings can be
compared with what the DSbS loader gives for the same content.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from attrdistill.data.dsbs import NLI_LABELS, load_dsbs
from attrdistill.data.hub import hub_source, load_hub

datasets = pytest.importorskip("datasets")

ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "dsbs"
STRINGS = datasets.List(datasets.Value("string"))
NLI = datasets.ClassLabel(names=list(NLI_LABELS))


def head(name: str, split: str, n: int = 3) -> list[dict]:
    with open(ROOT / name / f"{name}_{split}.json", encoding="utf-8") as fh:
        return [json.loads(next(fh)) for _ in range(n)]


def save(tmp_path: Path, splits: dict[str, list[dict]], features: dict) -> str:
    folder = tmp_path / "hub"
    datasets.DatasetDict({s: datasets.Dataset.from_list(rows, features=datasets.Features(features))
                          for s, rows in splits.items()}).save_to_disk(str(folder))
    return str(folder)


COS_E = {"id": datasets.Value("string"), "question": datasets.Value("string"), "choices": STRINGS,
         "answer": datasets.Value("string"), "abstractive_explanation": datasets.Value("string"),
         "extractive_explanation": datasets.Value("string")}
ANLI = {"uid": datasets.Value("string"), "premise": datasets.Value("string"),
        "hypothesis": datasets.Value("string"), "label": NLI, "reason": datasets.Value("string")}
ESNLI = {"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"), "label": NLI,
         "explanation_1": datasets.Value("string"), "explanation_2": datasets.Value("string"),
         "explanation_3": datasets.Value("string")}
SVAMP = {"ID": datasets.Value("string"), "Body": datasets.Value("string"), "Question": datasets.Value("string"),
         "Equation": datasets.Value("string"), "Answer": datasets.Value("float64"), "Type": datasets.Value("string"),
         "question_concat": datasets.Value("string")}


def test_cqa_matches_dsbs(tmp_path: Path) -> None:
    train, test = head("cqa", "train"), head("cqa", "test")   # the DSbS rows carry exactly cos_e's columns
    hub = save(tmp_path, {"train": train, "validation": test}, COS_E)
    for split, n in (("train", 3), ("test", 3)):
        got, want = load_hub("cqa", split, hub_id=hub), load_dsbs(ROOT, "cqa", split)[:n]
        for ex in want:
            ex.rationale = None   # the PaLM rationales come with the DSbS release only
        assert got == want        # input, label, choices, id and the CoS-E `human` words alike
    assert load_hub("cqa", "test", hub_id=hub)[0].human == [8, 9, 10]   # "their supplies come"


def test_cqa_valid_points_to_train_valid_split(tmp_path: Path) -> None:
    hub = save(tmp_path, {"train": head("cqa", "train")}, COS_E)
    with pytest.raises(ValueError, match="train_valid_split"):
        load_hub("cqa", "valid", hub_id=hub)
    with pytest.raises(ValueError, match="train_valid_split"):
        load_hub("svamp", "valid")


@pytest.mark.parametrize("nli_format", ["eos", "text"])
def test_anli_matches_dsbs(tmp_path: Path, nli_format: str) -> None:
    valid, test = head("anli1", "valid"), head("anli1", "test")
    hub = save(tmp_path, {"train_r1": valid[:1], "dev_r1": valid, "test_r1": test}, ANLI)
    for split in ("valid", "test"):
        got = load_hub("anli1", split, hub_id=hub, nli_format=nli_format)
        want = load_dsbs(ROOT, "anli1", split, nli_format)[:3]
        assert [(e.id, e.input, e.label, e.choices) for e in got] == [(e.id, e.input, e.label, e.choices) for e in want]
    assert len(load_hub("anli1", "train", hub_id=hub)) == 1


@pytest.mark.parametrize("nli_format", ["eos", "text"])
def test_esnli_matches_dsbs_and_drops_unlabelled(tmp_path: Path, nli_format: str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    valid = head("esnli", "valid")
    unlabelled = {**valid[0], "label": -1}
    hub = save(tmp_path, {"train": valid, "validation": valid + [unlabelled], "test": valid}, ESNLI)
    with caplog.at_level(logging.WARNING, logger="attrdistill.data.hub"):
        got = load_hub("esnli", "valid", hub_id=hub, nli_format=nli_format)
    assert "dropped 1 of 4 rows with label -1" in caplog.text
    want = load_dsbs(ROOT, "esnli", "valid", nli_format)[:3]
    assert [(e.id, e.input, e.label, e.choices) for e in got] == [(e.id, e.input, e.label, e.choices) for e in want]
    assert "Two women are embracing" in got[0].input and got[0].label == "neutral"


def test_svamp_matches_dsbs(tmp_path: Path) -> None:
    # SVAMP.json is what both DSbS and ChilleD/SVAMP are built from; find the originals of DSbS's first test rows.
    originals = json.loads((ROOT / "svamp" / "SVAMP.json").read_text(encoding="utf-8"))
    by_input = {f"{p['Body']}\n{p['Question']}": p for p in originals}
    want = load_dsbs(ROOT, "svamp", "test")[:3]
    rows = [{**by_input[ex.input], "question_concat": f"{by_input[ex.input]['Body']} {by_input[ex.input]['Question']}"}
            for ex in want]
    hub = save(tmp_path, {"train": rows[:1], "test": rows}, SVAMP)
    got = load_hub("svamp", "test", hub_id=hub)
    assert [(e.input, e.label) for e in got] == [(e.input, e.label) for e in want]
    assert [e.id for e in got] == [r["ID"] for r in rows]


def test_missing_split_names_source_and_present_splits(tmp_path: Path) -> None:
    hub = save(tmp_path, {"dev_r1": head("anli1", "valid")}, ANLI)
    with pytest.raises(ValueError) as err:
        load_hub("anli1", "test", hub_id=hub)
    assert hub in str(err.value) and "'test_r1'" in str(err.value) and "splits present: dev_r1" in str(err.value)


def test_missing_column_is_named(tmp_path: Path) -> None:
    rows = [{k: v for k, v in r.items() if k != "hypothesis"} for r in head("esnli", "valid")]
    hub = save(tmp_path, {"test": rows}, {k: v for k, v in ESNLI.items() if k != "hypothesis"})
    with pytest.raises(ValueError, match=r"\[test\]: missing column\(s\) hypothesis"):
        load_hub("esnli", "test", hub_id=hub)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown dataset"):
        load_hub("squad", "train")
    with pytest.raises(ValueError, match="unknown split"):
        load_hub("cqa", "validation")
    with pytest.raises(ValueError, match="nli_format"):
        load_hub("esnli", "test", nli_format="xml")


def test_default_sources() -> None:
    assert hub_source("cqa", "test") == ("cos_e", "v1.11", "validation")
    assert hub_source("anli1", "valid") == ("facebook/anli", None, "dev_r1")
    assert hub_source("esnli", "train") == ("esnli", None, "train")
    assert hub_source("svamp", "train") == ("ChilleD/SVAMP", None, "train")
