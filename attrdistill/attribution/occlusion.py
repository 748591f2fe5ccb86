"""Occlusion: a word's score is how much the target's log-probability drops when the word is deleted.

    scores = occlusion(model, feats, n_words, pad_id, batch_size=64)   # one tensor of word scores per example

A reference that needs no gradients and measures faithfulness directly, at the price of one
forward pass per word. The deleted inputs of all examples are batched together by length.
"""

from __future__ import annotations

from typing import Any

import torch

from attrdistill.attribution.gradients import target_log_prob
from attrdistill.features import collate, length_batches, without_tokens


def deletions(feat: dict[str, Any], n_words: int) -> list[dict[str, list[int]]]:
    """{input_ids, labels} of `feat` with all tokens of word w removed, for each word w (whole input first).

    Either layout of `features.encode`: in a causal sequence the target's tokens map to no word and stay.
    """
    token_word = feat["token_word"]
    return [without_tokens(feat, [w == word for w in token_word]) for word in [None, *range(n_words)]]


def log_probs(model: Any, variants: list[dict[str, list[int]]], pad_id: int, batch_size: int) -> torch.Tensor:
    """Mean target log-probability of each {input_ids, labels} variant, batched by length."""
    device = next(model.parameters()).device
    out = torch.zeros(len(variants))
    for idx in length_batches([len(v["input_ids"]) for v in variants], batch_size):
        batch = {k: v.to(device) for k, v in collate([variants[i] for i in idx], pad_id).items()}
        out[idx] = target_log_prob(model, batch).float().cpu()
    return out


def occlusion(model: Any, feats: list[dict[str, Any]], n_words: list[int], pad_id: int,
              batch_size: int = 64) -> list[torch.Tensor]:
    """Word scores log p(target | input) - log p(target | input without the word), per example."""
    variants = [variant for feat, n in zip(feats, n_words) for variant in deletions(feat, n)]
    lp = log_probs(model, variants, pad_id, batch_size)
    out, start = [], 0
    for n in n_words:
        out.append(lp[start] - lp[start + 1:start + 1 + n])
        start += n + 1
    return out
