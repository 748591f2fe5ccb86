"""CoS-E human spans of CQA as `Example.human` word indices: the span helpers and the real DSbS files."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest

from attrdistill.data.dsbs import cqa_human, format_example, load_dsbs
from attrdistill.data.example import Example
from attrdistill.data.highlights import find_span, span_word_indices, words_in_spans
from attrdistill.modeling.words import word_spans, words

ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "dsbs"


@lru_cache(maxsize=None)
def cqa(split: str) -> tuple[tuple[dict, Example], ...]:
    assert ROOT.is_dir(), f"DSbS data not found at {ROOT}"
    with open(ROOT / "cqa" / f"cqa_{split}.json", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return tuple(zip(rows, load_dsbs(ROOT, "cqa", split)))


def highlighted(ex: Example) -> list[str]:
    w = words(ex.input)
    return [w[i] for i in ex.human]


# ---------------------------------------------------------------------------------------------- helpers


def test_words_in_spans() -> None:
    text = "Two women hug, lunch."
    assert words_in_spans(text, [(4, 9)]) == [1]
    assert words_in_spans(text, [(15, 21)]) == [4, 5]
    assert words_in_spans(text, [(15, 21)], alnum_only=True) == [4]
    assert words_in_spans(text, [(0, 0), (100, 120)]) == []
    assert words_in_spans(text, [(15, 21), (0, 3)]) == [0, 4, 5]   # sorted whatever the span order


def test_find_span_prefers_whole_words_and_ignores_case_and_spacing() -> None:
    text = "Concat the cat. A  Cat"
    assert find_span(text, "cat") == (11, 14)
    assert find_span(text, "a cat") == (16, 22)
    assert find_span(text, "conc") == (0, 4)                # only a partial match exists
    assert find_span(text, "cat", start=15) == (19, 22)
    assert find_span(text, "dog") is None and find_span(text, "  ") is None


def test_span_word_indices_fallbacks() -> None:
    text = "Where would you find  Swords in your house?\nAnswer Choices:\n(a) swords"
    q_end = text.index("\n")

    def pick(span: str) -> list[str]:
        return [words(text)[i] for i in span_word_indices(text, span, 0, q_end)]

    assert pick("find swords in") == ["find", "Swords", "in"]            # substring, any case and spacing
    assert pick("ind swor") == ["find", "Swords"]                        # partial words extend to whole words
    assert pick(": you find, swords") == ["you", "find", "Swords"]       # word sequence, punctuation ignored
    assert pick("house swords banana") == ["Swords", "house"]            # single words, in text order
    assert pick("answer choices") == []                                  # outside the question part
    assert pick("") == pick("{}") == pick("banana") == []


def test_cqa_human_in_formatted_input() -> None:
    row = {"id": "x", "question": "Where is the cat?", "choices": list("abcde"), "answer": "a",
           "extractive_explanation": "the cat"}
    ex = format_example("cqa", row, "x")
    assert highlighted(ex) == ["the", "cat"] and ex.human == [2, 3]
    assert format_example("cqa", {**row, "extractive_explanation": "{}"}, "x").human == []
    assert format_example("cqa", {k: v for k, v in row.items() if k != "extractive_explanation"}, "x").human is None
    assert cqa_human(ex.input, row["question"], None) == []


# ---------------------------------------------------------------------------------------------- real files


def test_first_test_example() -> None:
    row, ex = cqa("test")[0]
    assert row["extractive_explanation"] == "their supplies come"
    assert highlighted(ex) == words(row["extractive_explanation"]) == ["their", "supplies", "come"]


def test_substring_spans_are_covered() -> None:
    """Where the span is a substring of the question, the highlighted words cover exactly one copy of it."""
    n = covered = 0
    for split in ("train", "test"):
        for row, ex in cqa(split):
            span = row["extractive_explanation"].strip()
            if not span or span.lower() not in row["question"].lower():
                continue
            n += 1
            spans = word_spans(ex.input)
            a, b = spans[ex.human[0]][0], spans[ex.human[-1]][1]
            covered += span.lower() in ex.input[a:b].lower() and ex.human == list(range(ex.human[0], ex.human[-1] + 1))
            assert b <= len(row["question"])
    assert n > 10_000 and covered == n


def test_coverage_train_and_test() -> None:
    pairs = cqa("train") + cqa("test")
    with_human = sum(bool(ex.human) for _, ex in pairs)
    # Observed: 10,941 of 10,962 (99.8%); the rest are '{}' spans or words glued together ("whereyouvisitdentist").
    assert len(pairs) == 10_962 and with_human / len(pairs) > 0.9
    assert all(ex.human == sorted(set(ex.human)) for _, ex in pairs)
    assert all(ex.human == [] for row, ex in pairs if row["extractive_explanation"].strip() in ("", "{}"))


@pytest.mark.parametrize("name, split", [("svamp", "test"), ("anli1", "valid")])
def test_other_datasets_have_no_human(name: str, split: str) -> None:
    assert all(ex.human is None for ex in load_dsbs(ROOT, name, split))
