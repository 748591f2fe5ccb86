"""DSbS loaders on the real release in shared/data/dsbs: sizes, formatting, LLM alignment, errors."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest

from attrdistill.data.dsbs import (
    NLI_LABELS,
    available_splits,
    llm_labels,
    load_dsbs,
    parse_llm_output,
    train_valid_split,
)
from attrdistill.data.example import Example
from attrdistill.evaluate.arith import same_value

ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "dsbs"

# README "Contents" table.
SIZES = {("cqa", "train"): 9741, ("cqa", "test"): 1221, ("svamp", "train"): 800, ("svamp", "test"): 200,
         ("anli1", "valid"): 1000, ("anli1", "test"): 1000, ("esnli", "valid"): 9842, ("esnli", "test"): 9824}

# README "Parse statistics" table: (empty llm labels, llm-label accuracy against gold).
PARSE_STATS = {("cqa", "train"): (3, 0.7426), ("cqa", "test"): (0, 0.7723), ("svamp", "train"): (13, 0.7350),
               ("svamp", "test"): (2, 0.7400), ("esnli", "valid"): (4, 0.7317), ("esnli", "test"): (0, 0.7299),
               ("anli1", "valid"): (9, 0.6680), ("anli1", "test"): (10, 0.6560)}


def test_shared_data_present() -> None:
    assert ROOT.is_dir(), f"DSbS data not found at {ROOT}"


@lru_cache(maxsize=None)
def load(name: str, split: str, nli_format: str = "eos") -> tuple[Example, ...]:
    assert ROOT.is_dir(), f"DSbS data not found at {ROOT}"
    return tuple(load_dsbs(ROOT, name, split, nli_format=nli_format))


def first_row(name: str, split: str) -> dict:
    with open(ROOT / name / f"{name}_{split}.json", encoding="utf-8") as fh:
        return json.loads(fh.readline())


@pytest.mark.parametrize("name, split", list(SIZES))
def test_split_sizes_and_unique_ids(name: str, split: str) -> None:
    examples = load(name, split)
    assert len(examples) == SIZES[name, split]
    assert len({ex.id for ex in examples}) == len(examples)
    assert all(isinstance(ex.rationale, str) for ex in examples)


def test_available_splits() -> None:
    assert available_splits(ROOT, "cqa") == ["train", "test"]
    assert available_splits(ROOT, "svamp") == ["train", "test"]
    assert available_splits(ROOT, "anli1") == ["valid", "test"]
    assert available_splits(ROOT, "esnli") == ["valid", "test"]


@pytest.mark.parametrize("split", ["train", "test"])
def test_cqa_formatting(split: str) -> None:
    row, ex = first_row("cqa", split), load("cqa", split)[0]
    c = row["choices"]
    assert ex.input == (f"{row['question']}\nAnswer Choices:\n(a) {c[0]}\n(b) {c[1]}\n(c) {c[2]}\n(d) {c[3]}"
                        f"\n(e) {c[4]}")
    assert ex.label == row["answer"] and ex.choices == c and ex.id == row["id"]


def test_cqa_test_row0_by_hand() -> None:
    ex = load("cqa", "test")[0]
    assert ex.id == "080ef6941410139d6869e78122bc741e"
    assert ex.input == ("A beaver is know for building prowess, their supplies come from where?\nAnswer Choices:\n"
                        "(a) british columbia\n(b) body of water\n(c) wooded area\n(d) pay debts\n(e) zoo")
    assert ex.label == "wooded area"
    assert ex.rationale.startswith("The answer must be the place where beavers")
    assert ex.rationale.endswith("that beavers need.")
    assert llm_labels(ROOT, "cqa", "test")[0] == "wooded area"


@pytest.mark.parametrize("split", ["train", "test"])
def test_svamp_formatting(split: str) -> None:
    row, ex = first_row("svamp", split), load("svamp", split)[0]
    assert (ex.input, ex.label, ex.id, ex.choices) == (row["input"], row["label"], f"svamp-{split}-0", None)


def test_svamp_test_row0_llm() -> None:
    ex = load("svamp", "test")[0]
    assert ex.label == "( 10.0 * 45.0 )"
    assert ex.rationale.startswith("They put 10 seeds in each flower bed.") and ex.rationale.endswith("10 * 45 is 450.")
    label = llm_labels(ROOT, "svamp", "test")[0]
    assert label == "(10 * 45)" and same_value(label, ex.label)


@pytest.mark.parametrize("name, split", [("anli1", "valid"), ("anli1", "test"), ("esnli", "valid"),
                                         ("esnli", "test")])
def test_nli_formatting(name: str, split: str) -> None:
    row = first_row(name, split)
    eos, text = load(name, split)[0], load(name, split, "text")[0]
    assert eos.input == row["premise"] + "</s>" + row["hypothesis"]
    assert text.input == f"Premise: {row['premise']}\nHypothesis: {row['hypothesis']}"
    assert eos.label == text.label == NLI_LABELS[row["label"]]
    assert eos.choices == list(NLI_LABELS)
    assert eos.id == text.id == row.get("uid", f"{name}-{split}-0")
    assert eos.rationale == text.rationale


def test_nli_label_mapping_and_row0_llm() -> None:
    anli = load("anli1", "test")[0]
    assert anli.id == "4aae63a8-fcf7-406c-a2f3-50c31c5934a9" and anli.label == "entailment"
    assert anli.rationale.startswith("The premise mentions that the first Ernest Jones store")
    assert llm_labels(ROOT, "anli1", "test")[0] == "contradiction"
    esnli = load("esnli", "valid")[0]
    assert esnli.label == "neutral" and esnli.id == "esnli-valid-0"
    assert load("esnli", "test")[0].rationale.startswith("The church choir singing to the masses")
    assert llm_labels(ROOT, "esnli", "test")[0] == "neutral"
    assert {ex.label for ex in load("esnli", "test")} == set(NLI_LABELS)


@pytest.mark.parametrize("split", ["train", "test"])
def test_cqa_llm_labels_are_own_choices(split: str) -> None:
    examples, labels = load("cqa", split), llm_labels(ROOT, "cqa", split)
    aligned = sum(lab in ex.choices for ex, lab in zip(examples, labels)) / len(examples)
    shifted = sum(lab in ex.choices for ex, lab in zip(examples, labels[1:])) / len(examples)
    assert aligned > 0.9 and shifted < 0.1


@pytest.mark.parametrize("name, split", list(PARSE_STATS))
def test_parse_statistics_match_readme(name: str, split: str) -> None:
    examples, labels = load(name, split), llm_labels(ROOT, name, split)
    empty, accuracy = PARSE_STATS[name, split]
    assert sum(lab == "" for lab in labels) == empty
    match = same_value if name == "svamp" else str.__eq__
    assert sum(match(lab, ex.label) for ex, lab in zip(examples, labels)) / len(examples) == pytest.approx(
        accuracy, abs=5e-5)


def test_missing_anli_train_is_explained() -> None:
    with pytest.raises(FileNotFoundError) as err:
        load_dsbs(ROOT, "anli1", "train")
    message = str(err.value)
    assert "anli1_train.json" in message and "data.loader: hub" in message and "train_r1" in message
    assert "valid, test" in message


def test_missing_esnli_train_is_explained() -> None:
    with pytest.raises(FileNotFoundError) as err:
        load_dsbs(ROOT, "esnli", "train")
    message = str(err.value)
    assert "esnli_train.json" in message and "data.loader: hub" in message and "data.loader: esnli_csv" in message


def test_missing_cqa_valid_points_to_split() -> None:
    with pytest.raises(FileNotFoundError, match="train_valid_split"):
        load_dsbs(ROOT, "cqa", "valid")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown DSbS dataset"):
        load_dsbs(ROOT, "squad", "train")
    with pytest.raises(ValueError, match="nli_format"):
        load_dsbs(ROOT, "esnli", "test", nli_format="xml")
    with pytest.raises(ValueError, match="invalid split"):
        load_dsbs(ROOT, "cqa", "../cqa/cqa_test")


def test_cqa_train_valid_split() -> None:
    train_all = list(load("cqa", "train"))
    train, valid = train_valid_split(train_all)
    assert (len(train), len(valid)) == (8766, 975)
    assert len(train) + len(valid) == 9741
    assert {ex.id for ex in train} | {ex.id for ex in valid} == {ex.id for ex in train_all}
    assert not {ex.id for ex in train} & {ex.id for ex in valid}
    train2, valid2 = train_valid_split(train_all)
    assert [ex.id for ex in train2] == [ex.id for ex in train] and [ex.id for ex in valid2] == [ex.id for ex in valid]
    assert [ex.id for ex in train_valid_split(train_all, seed=1)[1]] != [ex.id for ex in valid]
    assert all(ex.rationale is not None for ex in valid)
    with pytest.raises(ValueError):
        train_valid_split(train_all, fraction=1.0)


# ---------------------------------------------------------------------------------------------- parsing


def test_parse_readme_examples() -> None:
    assert parse_llm_output("cqa", "Beavers need wood. So the answer is (c) wooded area.\n\nQ: What? (a) x") == (
        "Beavers need wood.", "wooded area")
    assert parse_llm_output("svamp", "10 * 45 is 450. The answer is (10 * 45).\n\nQ: next") == (
        "10 * 45 is 450.", "(10 * 45)")
    assert parse_llm_output("esnli", "Not necessarily.\nAnswer: neutral\n\nPremise: p\nHypothesis: h") == (
        "Not necessarily.", "neutral")
    assert parse_llm_output("anli1", "Oxford Street. So the answer is contradiction.\n\nPremise: x") == (
        "Oxford Street.", "contradiction")
    # e-SNLI's rule keeps a tail cut off mid-word (one such row in the test split).
    assert parse_llm_output("esnli", "r\nAnswer: entailment\n\nPre")[1] == "entailment\n\nPre"


@pytest.mark.parametrize("name", ["cqa", "svamp", "anli1", "esnli"])
@pytest.mark.parametrize("text", ["", " ", "no marker at all", "So the answer is", "The answer is",
                                  "So the answer is x So the answer is y", "Answer:", "Answer: ", "(a)", "Q:",
                                  "So the answer is (a)", "So the answer is (a) .", "\x00" * 10, "x" * 100_000])
def test_parse_never_raises(name: str, text: str) -> None:
    rationale, label = parse_llm_output(name, text)
    assert isinstance(rationale, str) and isinstance(label, str)
    assert label.strip() or label == ""


def test_parse_failures_are_empty() -> None:
    assert parse_llm_output("cqa", "two. So the answer is (a) x. So the answer is (b) y.") == ("", "")
    assert parse_llm_output("cqa", "r. So the answer is nothing") == ("r.", "")
    assert parse_llm_output("svamp", "no equation. The answer is 450.") == ("no equation.", "")
    assert parse_llm_output("svamp", "nothing here") == ("", "")
    assert parse_llm_output("anli1", "no verdict") == ("", "")
    assert parse_llm_output("esnli", "degenerate text") == ("degenerate text", "")


# ---------------------------------------------------------------------------------------------- synthetic files


def write_svamp(root: Path, n_rows: int, llm_sizes: list[int]) -> None:
    folder = root / "svamp"
    (folder / "llm").mkdir(parents=True)
    (folder / "svamp_train.json").write_text(
        "".join(json.dumps({"input": f"q{i}", "label": f"({i} + 0)"}) + "\n" for i in range(n_rows)))
    j = 0
    for i, size in enumerate(llm_sizes):
        outputs = [f"row {j + k}. The answer is ({j + k} + 0)." for k in range(size)]
        (folder / "llm" / f"train_CoT_{i}.json").write_text(json.dumps(outputs))
        j += size


def test_llm_files_concatenate_in_numeric_order(tmp_path: Path) -> None:
    write_svamp(tmp_path, 23, [2] * 11 + [1])   # train_CoT_0..11: lexicographic order would put 10, 11 after 1
    examples = load_dsbs(tmp_path, "svamp", "train")
    assert [ex.rationale for ex in examples] == [f"row {i}." for i in range(23)]
    assert llm_labels(tmp_path, "svamp", "train") == [ex.label for ex in examples]


def test_llm_count_mismatch_raises(tmp_path: Path) -> None:
    write_svamp(tmp_path, 5, [2, 2])
    with pytest.raises(ValueError, match="4 train_CoT completions for 5 rows"):
        load_dsbs(tmp_path, "svamp", "train")


def test_llm_numbering_gap_raises(tmp_path: Path) -> None:
    write_svamp(tmp_path, 4, [2, 2])
    (tmp_path / "svamp" / "llm" / "train_CoT_1.json").rename(tmp_path / "svamp" / "llm" / "train_CoT_2.json")
    with pytest.raises(ValueError, match="not numbered"):
        load_dsbs(tmp_path, "svamp", "train")


def test_no_llm_files_gives_none_rationale(tmp_path: Path) -> None:
    write_svamp(tmp_path, 3, [])
    assert [ex.rationale for ex in load_dsbs(tmp_path, "svamp", "train")] == [None] * 3


def test_malformed_jsonl_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "cqa").mkdir()
    good = json.dumps({"id": "a", "question": "q", "choices": list("vwxyz"), "answer": "v",
                       "extractive_explanation": "q"})
    (tmp_path / "cqa" / "cqa_train.json").write_text(f"{good}\n{good}\n{{\"id\": \"b\", \"question\": \n{good}\n")
    with pytest.raises(ValueError, match=r"cqa_train\.json:3"):
        load_dsbs(tmp_path, "cqa", "train")


def test_missing_field_and_bad_label_name_the_line(tmp_path: Path) -> None:
    (tmp_path / "anli1").mkdir()
    rows = [{"uid": "u0", "premise": "p", "hypothesis": "h", "label": 0},
            {"uid": "u1", "premise": "p", "hypothesis": "h", "label": -1}]
    (tmp_path / "anli1" / "anli1_test.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=r"anli1_test\.json:2: NLI label"):
        load_dsbs(tmp_path, "anli1", "test")
    (tmp_path / "anli1" / "anli1_test.json").write_text(json.dumps({"premise": "p", "label": 0}) + "\n")
    with pytest.raises(ValueError, match=r"anli1_test\.json:1: missing field\(s\) hypothesis"):
        load_dsbs(tmp_path, "anli1", "test")
