"""Attribution: score every input word of every example, then pick the top-k as its rationale.

    rows = attribute(examples, "saliency", model, tok, cfg.attribution, prefix="predict: ")
    rows[0]["rationale"]        # "compass, valley, took, ..."  (top-k words)
    recall_at_k(rows, examples) # share of the decisive words found in the top-k

Methods (METHODS): `saliency`, the paper's gradient saliency on the gold target, and `random`,
seeded uniform word scores (the paper's random-words control). Scores are kept per word, so a
different k needs no recomputation.
"""

from __future__ import annotations

import random
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from attrdistill.attribution.gradients import saliency
from attrdistill.config import AttributionConfig
from attrdistill.data.example import Example
from attrdistill.features import collate, encode, length_batches
from attrdistill.words import aggregate, is_punctuation, token_to_word, word_spans

TokenMethod = Callable[[Any, dict[str, torch.Tensor]], torch.Tensor]
METHODS: dict[str, TokenMethod | None] = {"saliency": saliency, "random": None}


def attribute(examples: list[Example], method: str, model: Any, tokenizer: Any, cfg: AttributionConfig,
              prefix: str = "", max_input_length: int = 512, max_target_length: int = 128,
              seed: int = 0) -> list[dict[str, Any]]:
    """One row per example: id, words, word scores, top-k word indices and the rationale text."""
    if method not in METHODS:
        raise ValueError(f"attribution.method: unknown method {method!r}; expected one of {', '.join(METHODS)}")
    spans = [word_spans(ex.input) for ex in examples]
    if METHODS[method] is None:
        rng = random.Random(seed)
        scores = [torch.tensor([rng.random() for _ in s]) for s in spans]
    else:
        scores = word_scores(METHODS[method], model, tokenizer, examples, spans, cfg, prefix,
                             max_input_length, max_target_length)
    rows = []
    for ex, sp, sc in zip(examples, spans, scores):
        words = [ex.input[a:b] for a, b in sp]
        top = top_k(words, sc, cfg.k, cfg.skip_punctuation, cfg.order)
        rows.append({"id": ex.id, "words": words, "scores": [round(float(s), 6) for s in sc], "top": top,
                     "rationale": ", ".join(words[i] for i in top)})
    return rows


def word_scores(method: TokenMethod, model: Any, tokenizer: Any, examples: list[Example],
                spans: list[list[tuple[int, int]]], cfg: AttributionConfig, prefix: str,
                max_input_length: int, max_target_length: int) -> list[torch.Tensor]:
    """Token scores from `method`, batched by length, aggregated to the words of each input."""
    feats = encode(tokenizer, [prefix + ex.input for ex in examples], [ex.label for ex in examples],
                   max_input_length, max_target_length, offsets=True)
    device = next(model.parameters()).device
    out: list[torch.Tensor] = [torch.empty(0)] * len(examples)
    batches = list(length_batches([len(f["input_ids"]) for f in feats], cfg.batch_size))
    for idx in tqdm(batches, desc="attribution", unit="batch"):
        batch = {k: v.to(device) for k, v in collate([feats[i] for i in idx], tokenizer.pad_token_id).items()}
        token_scores = method(model, batch).detach().cpu()
        for row, i in enumerate(idx):
            n = len(feats[i]["input_ids"])
            tw = torch.tensor(token_to_word(feats[i]["offset_mapping"], spans[i], shift=len(prefix)))
            out[i] = aggregate(token_scores[row, :n], tw, len(spans[i]), cfg.aggregation)
    return out


def top_k(words: list[str], scores: torch.Tensor, k: int, skip_punctuation: bool = True,
          order: str = "score") -> list[int]:
    """Indices of the k best-scored candidate words, by score (ties: earlier word) or by position."""
    candidates = [i for i, w in enumerate(words) if not (skip_punctuation and is_punctuation(w))]
    best = sorted(candidates, key=lambda i: (-float(scores[i]), i))[:k]
    return sorted(best) if order == "position" else best


def recall_at_k(rows: list[dict[str, Any]], examples: list[Example]) -> float | None:
    """Mean share of each example's decisive words that its top-k contains; None without ground truth."""
    found = [len(set(r["top"]) & set(ex.decisive)) / len(ex.decisive)
             for r, ex in zip(rows, examples) if ex.decisive]
    return sum(found) / len(found) if found else None
