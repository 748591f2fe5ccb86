"""Evaluation: greedy predictions of a model on examples, and exact-match accuracy.

    preds = predict(model, tok, ["predict: " + ex.input for ex in test], batch_size=128)
    acc = accuracy(preds, [ex.label for ex in test])
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from tqdm.auto import tqdm

from attrdistill.arith import same_value
from attrdistill.features import collate, encode, length_batches


def normalize(text: str) -> str:
    """Whitespace-insensitive form for exact match (word-level tokenizers decode 'a , b')."""
    return " ".join(text.replace(" ,", ",").replace(" .", ".").split())


ANSWER_MARK = "so the answer is"


def answer_of(prediction: str) -> str:
    """The answer part of a single-sequence output ('w1, w2, so the answer is X' -> 'X')."""
    return prediction.rsplit(ANSWER_MARK, 1)[-1].strip() if ANSWER_MARK in prediction else prediction


def exact_match(prediction: str, label: str) -> bool:
    return normalize(answer_of(prediction)) == normalize(label)


def svamp_match(prediction: str, label: str) -> bool:
    return same_value(answer_of(prediction), label)


def matcher(source: str) -> Callable[[str, str], bool]:
    """How a prediction is judged for a task: SVAMP equations by value (safe evaluator), others exactly."""
    return svamp_match if source == "svamp" else exact_match


def accuracy(predictions: Sequence[str], labels: Sequence[str],
             correct: Callable[[str, str], bool] = exact_match) -> float:
    if len(predictions) != len(labels) or not labels:
        raise ValueError(f"accuracy: {len(predictions)} predictions for {len(labels)} labels")
    return sum(correct(p, g) for p, g in zip(predictions, labels)) / len(labels)


@torch.no_grad()
def predict(model: Any, tokenizer: Any, sources: Sequence[str], batch_size: int = 64, max_new_tokens: int = 64,
            max_input_length: int = 512) -> list[str]:
    """Greedy decoding of every source, batched by length; returns texts in input order."""
    model.eval()
    feats = encode(tokenizer, sources, None, max_input_length, 0)
    device = next(model.parameters()).device
    out = [""] * len(sources)
    for idx in tqdm(list(length_batches([len(f["input_ids"]) for f in feats], batch_size)), desc="predict",
                    unit="batch"):
        batch = collate([feats[i] for i in idx], tokenizer.pad_token_id)
        gen = model.generate(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                             max_new_tokens=max_new_tokens, num_beams=1, do_sample=False)
        for i, text in zip(idx, tokenizer.batch_decode(gen, skip_special_tokens=True)):
            out[i] = text.strip()
    return out
