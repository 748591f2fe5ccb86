"""e-SNLI CSV loader on hand-written files in the release format: highlights, formatting, train merge, errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from attrdistill.data.dsbs import load_dsbs
from attrdistill.data.esnli_csv import load_esnli_csv, starred_spans
from attrdistill.data.example import Example
from attrdistill.modeling.words import words

ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "dsbs"

HEADER = ["pairID", "gold_label", "Sentence1", "Sentence2"] + [
    f"{field}_{k}" for k in (1, 2, 3) for field in
    ("Explanation", "Sentence1_marked", "Sentence2_marked", "Sentence1_Highlighted", "Sentence2_Highlighted")]
TRAIN_HEADER = HEADER[:9]

PREMISE = "Two women are embracing while holding to go packages."
HYPOTHESIS = "The sisters are hugging goodbye while holding to go packages after just eating lunch."

# First data row of esnli_dev.csv (../shared/data/esnli/README.md); annotators 2 and 3 marked no premise word.
DEV_ROW = ["4705552913.jpg#2r1n", "neutral", PREMISE, HYPOTHESIS,
           "The to go packages may not be from lunch.", PREMISE,
           " The sisters are hugging goodbye while holding to go packages after just eating *lunch.*", "{}", "13",
           "Just because two women are embracing, does not mean they are sisters.  Two women that are embracing are "
           "not necessarily hugging goodbye.", PREMISE,
           " The *sisters* are *hugging* *goodbye* while holding to go packages after just eating lunch.", "{}",
           "1,3,4",
           "Two women do not have to be sisters.  Embracing does not mean hugging goodbye.  The women do not have to "
           "have just finished lunch to be embracing.", PREMISE,
           " *The* *sisters* are *hugging* *goodbye* while holding to go packages *after* *just* *eating* *lunch.*",
           "{}", "1,0,3,4,10,11,13,12"]

# Hand-made: highlights in both sentences, punctuation inside stars, a word that occurs in both sentences.
BOTH_ROW = ["p2", "entailment", "A man in red jerseys, plays soccer.", "A man plays a sport.",
            "Soccer is a sport.", "A man in red *jerseys,* plays *soccer.*", "A man plays a *sport.*", "4,6", "4",
            "x", "*A* man in red jerseys, plays soccer.", "A *man* plays a sport.", "0", "1",
            "x", "A man in red jerseys, plays soccer.", "A man plays a sport.", "{}", "{}"]

NONE_ROW = ["p3", "contradiction", "A dog runs.", "A cat sleeps.", "Dogs are not cats.", "A dog runs.",
            "A cat sleeps.", "{}", "{}"] + ["x", "A dog runs.", "A cat sleeps.", "{}", "{}"] * 2


def write(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")   # quotes "1,3,4", leaves 13 and {} bare, as the release does
        writer.writerow(header)
        writer.writerows(rows)
    return path


def highlighted(ex: Example) -> list[str]:
    w = words(ex.input)
    return [w[i] for i in ex.human]


@pytest.fixture
def dev(tmp_path: Path) -> Path:
    write(tmp_path / "esnli_dev.csv", [DEV_ROW, BOTH_ROW, NONE_ROW])
    return tmp_path


def test_release_quoting(dev: Path) -> None:
    lines = (dev / "esnli_dev.csv").read_text(encoding="utf-8").splitlines()
    assert ",{},13," in lines[1] and ',"1,3,4",' in lines[1]


@pytest.mark.parametrize("nli_format", ["eos", "text"])
def test_annotators_of_the_real_row(dev: Path, nli_format: str) -> None:
    got = {k: load_esnli_csv(dev, "valid", nli_format, annotator=k)[0] for k in (1, 2, 3)}
    assert highlighted(got[1]) == ["lunch"]
    assert highlighted(got[2]) == ["sisters", "hugging", "goodbye"]
    assert highlighted(got[3]) == ["The", "sisters", "hugging", "goodbye", "after", "just", "eating", "lunch"]
    ex = got[1]
    assert ex.id == "4705552913.jpg#2r1n" and ex.label == "neutral" and ex.rationale is None
    dsbs = load_dsbs(ROOT, "esnli", "valid", nli_format)[0]   # the same pair, first row of both files
    assert (ex.input, ex.label, ex.choices) == (dsbs.input, dsbs.label, dsbs.choices)


@pytest.mark.parametrize("nli_format", ["eos", "text"])
def test_highlights_in_both_sentences(dev: Path, nli_format: str) -> None:
    row = load_esnli_csv(dev, "valid", nli_format)[1]
    assert highlighted(row) == ["jerseys", "soccer", "sport"]
    second = load_esnli_csv(dev, "valid", nli_format, annotator=2)[1]
    assert highlighted(second) == ["A", "man"]
    n_premise = len(words("A man in red jerseys, plays soccer."))
    assert second.human[0] == words(second.input).index("A") and second.human[1] > n_premise   # the hypothesis' man
    assert row.label == "entailment" and load_esnli_csv(dev, "valid", nli_format)[2].human == []


def test_train_merges_both_files(tmp_path: Path) -> None:
    write(tmp_path / "esnli_train_1.csv", [DEV_ROW[:9], BOTH_ROW[:9]], TRAIN_HEADER)
    write(tmp_path / "esnli_train_2.csv", [NONE_ROW[:9]], TRAIN_HEADER)
    train = load_esnli_csv(tmp_path, "train")
    assert [ex.id for ex in train] == ["4705552913.jpg#2r1n", "p2", "p3"]
    assert [highlighted(ex) for ex in train] == [["lunch"], ["jerseys", "soccer", "sport"], []]
    with pytest.raises(ValueError, match=r"esnli_train_1\.csv:1: missing column\(s\) Sentence1_marked_2"):
        load_esnli_csv(tmp_path, "train", annotator=2)


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="esnli_dev.csv"):
        load_esnli_csv(tmp_path, "valid")
    with pytest.raises(FileNotFoundError, match="esnli_test.csv"):
        load_esnli_csv(tmp_path, "test")
    write(tmp_path / "esnli_train_1.csv", [DEV_ROW[:9]], TRAIN_HEADER)
    with pytest.raises(FileNotFoundError, match="missing esnli_train_2.csv"):
        load_esnli_csv(tmp_path, "train")


def test_missing_column(tmp_path: Path) -> None:
    write(tmp_path / "esnli_test.csv", [[v for i, v in enumerate(DEV_ROW) if i != 1]],
          [h for h in HEADER if h != "gold_label"])
    with pytest.raises(ValueError, match=r"esnli_test\.csv:1: missing column\(s\) gold_label"):
        load_esnli_csv(tmp_path, "test")


def test_bad_gold_label_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path / "esnli_dev.csv", [DEV_ROW, ["p9", "-"] + BOTH_ROW[2:]])
    with pytest.raises(ValueError, match=r"esnli_dev\.csv:3: gold_label must be one of .*got '-'"):
        load_esnli_csv(tmp_path, "valid")


def test_line_numbers_count_multiline_fields(tmp_path: Path) -> None:
    multiline = DEV_ROW[:4] + ["line one\nline two"] + DEV_ROW[5:]
    write(tmp_path / "esnli_dev.csv", [multiline, ["p9", "neutral"] + BOTH_ROW[2:5] + ["A man *in* blue."]
                                       + BOTH_ROW[6:]])
    with pytest.raises(ValueError, match=r"esnli_dev\.csv:4: Sentence1_marked_1: marked sentence"):
        load_esnli_csv(tmp_path, "valid")


def test_starred_spans() -> None:
    assert starred_spans(" *The* cat  *sat.*", "The cat sat.", "f:2") == [(0, 3), (8, 12)]
    assert starred_spans("a * b", "a * b", "f:2") == []   # a lone star is a word, not a mark
    with pytest.raises(ValueError, match="f:2: marked sentence"):
        starred_spans("The *dog*", "The cat", "f:2")


def test_bad_arguments(dev: Path) -> None:
    with pytest.raises(ValueError, match="annotator"):
        load_esnli_csv(dev, "valid", annotator=4)
    with pytest.raises(ValueError, match="split"):
        load_esnli_csv(dev, "dev")
    with pytest.raises(ValueError, match="nli_format"):
        load_esnli_csv(dev, "valid", nli_format="xml")
