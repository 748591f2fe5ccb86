"""Evaluation: greedy predictions of a model on examples, and exact-match accuracy.

    preds = predict(model, tok, ["predict: " + ex.input for ex in test], batch_size=128)
    acc = accuracy(preds, [ex.label for ex in test])
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

import torch
from tqdm.auto import tqdm

from attrdistill.arith import same_value
from attrdistill.features import collate, encode, is_causal, length_batches


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


@torch.no_grad()
def predict(model: Any, tokenizer: Any, sources: Sequence[str], batch_size: int = 64, max_new_tokens: int = 64,
            max_input_length: int = 512) -> list[str]:
    """Greedy decoding of every source, batched by length; returns texts in input order.

    A decoder-only model gets the prompt layout of `features.encode`, left-padded so that every row
    continues from its own last token, and only the tokens it generates are decoded.
    """
    model.eval()
    causal = is_causal(model)
    feats = encode(tokenizer, sources, None, max_input_length, 0, causal=causal)
    device = next(model.parameters()).device
    # A causal model's own generation config may name other stop tokens than the eos its targets end with.
    stop = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id} if causal else {}
    out = [""] * len(sources)
    for idx in tqdm(list(length_batches([len(f["input_ids"]) for f in feats], batch_size)), desc="predict",
                    unit="batch"):
        batch = collate([feats[i] for i in idx], tokenizer.pad_token_id, padding_side="left" if causal else "right")
        gen = model.generate(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                             max_new_tokens=max_new_tokens, num_beams=1, do_sample=False, **stop)
        if causal:
            gen = gen[:, batch["input_ids"].shape[1]:]
        for i, text in zip(idx, tokenizer.batch_decode(gen, skip_special_tokens=True)):
            out[i] = text.strip()
    return out
