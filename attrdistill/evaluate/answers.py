"""How answers are judged: exact match after normalising, CQA's choice letters, SVAMP's equation values.

    acc = accuracy(preds, [ex.label for ex in test], matcher("cqa"), [ex.choices for ex in test])
    answer_of("w1, w2, so the answer is X")     # "X": the answer part of a one-sequence output

Torch-free: the plan, the train rows and the report read these without loading a model.
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

from attrdistill.evaluate.arith import same_value


def normalize(text: str) -> str:
    """Whitespace-insensitive form for exact match (word-level tokenizers decode 'a , b')."""
    return " ".join(text.replace(" ,", ",").replace(" .", ".").split())


# One-sequence students (distill.format): rationale first, 'w1, w2, so the answer is X' (single), or label
# first, 'X, because w1, w2' (label_first; Wadhwa et al. 2024 found it the better placement).
ANSWER_MARK = "so the answer is"
RATIONALE_MARK = "because"
_RATIONALE_MARK = re.compile(r"\s*,?\s*\bbecause\b\s*")   # word-level tokenizers decode 'X , because'


def single_target(label: str, rationale: str, fmt: str) -> str:
    """The one target sequence of a `single` or `label_first` student."""
    return f"{rationale}, {ANSWER_MARK} {label}" if fmt == "single" else f"{label}, {RATIONALE_MARK} {rationale}"


def answer_of(prediction: str) -> str:
    """The answer part of a one-sequence output ('w1, w2, so the answer is X' or 'X, because w1, w2' -> 'X')."""
    if ANSWER_MARK in prediction:
        return prediction.rsplit(ANSWER_MARK, 1)[-1].strip()
    mark = _RATIONALE_MARK.search(prediction)
    return prediction[:mark.start()].strip() if mark else prediction


def rationale_of(prediction: str) -> str:
    """The rationale part of a one-sequence output ('' when it has none)."""
    if ANSWER_MARK in prediction:
        return prediction.rsplit(ANSWER_MARK, 1)[0]
    mark = _RATIONALE_MARK.search(prediction)
    return prediction[mark.end():] if mark else ""


Choices = Sequence[str] | None
Matcher = Callable[[str, str, Choices], bool]
_LETTER = re.compile(r"\(?([a-z])\)?\.?")


def exact_match(prediction: str, label: str, choices: Choices = None) -> bool:
    return normalize(answer_of(prediction)) == normalize(label)


def cqa_match(prediction: str, label: str, choices: Choices = None) -> bool:
    """Exact match, or the letter of the gold choice as the input lists it: 'b', '(b)' or '(b).'."""
    if exact_match(prediction, label):
        return True
    letter = _LETTER.fullmatch(normalize(answer_of(prediction)).lower())
    index = ord(letter.group(1)) - ord("a") if letter else -1
    return bool(choices) and 0 <= index < len(choices) and normalize(choices[index]) == normalize(label)


def svamp_match(prediction: str, label: str, choices: Choices = None) -> bool:
    return same_value(answer_of(prediction), label)


def matcher(source: str) -> Matcher:
    """How a prediction is judged: SVAMP equations by value (safe evaluator), CQA also by choice letter, others
    exactly."""
    return {"svamp": svamp_match, "cqa": cqa_match}.get(source, exact_match)


def accuracy(predictions: Sequence[str], labels: Sequence[str], correct: Matcher = exact_match,
             choices: Sequence[Choices] | None = None) -> float:
    if len(predictions) != len(labels) or not labels:
        raise ValueError(f"accuracy: {len(predictions)} predictions for {len(labels)} labels")
    choices = choices or [None] * len(labels)
    return sum(correct(p, g, c) for p, g, c in zip(predictions, labels, choices)) / len(labels)
