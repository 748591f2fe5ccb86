"""The built-in task: deterministic, well-formed, and its ground truth really decides the label."""

from __future__ import annotations

from attrdistill.config import DataConfig
from attrdistill.data import build_splits
from attrdistill.data.synthetic import OBJECTS, PLACES, SPOTS, TOOLS, generate
from attrdistill.evaluate.answers import accuracy, normalize
from attrdistill.modeling.words import words


def test_generator_is_deterministic_and_seeded():
    assert generate(20, seed=5) == generate(20, seed=5)
    assert generate(20, seed=5) != generate(20, seed=6)


def test_examples_are_well_formed():
    for ex in generate(300, seed=1):
        w = words(ex.input)
        assert 15 <= sum(x.isalnum() for x in w) <= 40
        tool, place = sorted((w[i] for i in ex.decisive), key=lambda x: x in PLACES)
        assert tool in TOOLS and place in PLACES
        assert ex.label == f"{TOOLS[tool]} {PLACES[place]}", "the label combines both decisive words"
        assert not set(ex.label.split()) & set(w), "no label word is copied from the input"


def test_look_alike_clauses_hide_the_decisive_words():
    """Everyday nouns fill the same 'took the X' / 'walked to the X' clauses as the decisive words."""
    exs = generate(300, seed=2)
    carriers = {"packed", "carried", "brought", "took", "hiked", "off", "ended", "walked"}
    look_alike = 0
    for ex in exs:
        w = words(ex.input)
        assert sum(x in TOOLS for x in w) == 1 and sum(x in PLACES for x in w) == 1
        nouns = [i for i in range(2, len(w)) if w[i - 2] in carriers or w[i - 3] in carriers]
        look_alike += any(w[i] in OBJECTS + SPOTS for i in nouns)
    assert look_alike / len(exs) > 0.5, look_alike


def test_splits_have_the_configured_sizes_and_differ():
    splits = build_splits(DataConfig(n_teacher_train=50, n_student_train=20, n_valid=10, n_test=15))
    assert {k: len(v) for k, v in splits.items()} == {"teacher_train": 50, "student_train": 20, "valid": 10,
                                                      "test": 15}
    assert not {ex.input for ex in splits["test"]} & {ex.input for ex in splits["student_train"]}


def test_accuracy_is_whitespace_insensitive_exact_match():
    assert normalize(" climb  dark ") == "climb dark"
    assert accuracy(["climb dark", "climb  wet", "x"], ["climb dark", "climb wet", "y"]) == 2 / 3
