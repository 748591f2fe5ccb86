"""Occlusion: a word's score is how much the target's log-probability drops when the word is deleted.

    scores = occlusion(model, feats, n_words, pad_id, batch_size=64)   # one tensor of word scores per example
    scores, steps = occlusion_steps(model, feats, n_words, pad_id, quantity="margin")   # and per target token

A reference that needs no gradients and measures faithfulness directly, at the price of one
forward pass per word. The deleted inputs of all examples are batched together by length. The
same forwards give the drop per target token (`occlusion_steps`), which `order: aligned` uses, and
`quantity` may measure the margin (gold logit minus the best other) instead of the log-probability.
"""

from __future__ import annotations

from typing import Any

import torch

from attrdistill.attribution.gradients import target_scores
from attrdistill.modeling.features import collate, length_batches, without_tokens


def deletions(feat: dict[str, Any], n_words: int) -> list[dict[str, list[int]]]:
    """{input_ids, labels} of `feat` with all tokens of word w removed, for each word w (whole input first).

    Either layout of `features.encode`: in a causal sequence the target's tokens map to no word and stay.
    """
    token_word = feat["token_word"]
    return [without_tokens(feat, [w == word for w in token_word]) for word in [None, *range(n_words)]]


def token_scores(model: Any, variants: list[dict[str, list[int]]], pad_id: int, batch_size: int,
                 quantity: str = "log_prob") -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(mean over target tokens, per-token values) of `quantity` for each {input_ids, labels} variant."""
    device = next(model.parameters()).device
    means, per_token = torch.zeros(len(variants)), [torch.zeros(0)] * len(variants)
    for idx in length_batches([len(v["input_ids"]) for v in variants], batch_size):
        batch = {k: v.to(device) for k, v in collate([variants[i] for i in idx], pad_id).items()}
        scores = target_scores(model, batch, quantity)
        # The mean exactly as gradients.mean_target_logit takes it, so log_probs keeps its values.
        n_target = (batch["labels"] != -100).sum(-1).clamp(min=1)
        means[idx] = (scores.sum(-1) / n_target).float().cpu()
        scores = scores.float().cpu()
        for r, i in enumerate(idx):
            per_token[i] = scores[r, :int(n_target[r])]
    return means, per_token


def log_probs(model: Any, variants: list[dict[str, list[int]]], pad_id: int, batch_size: int) -> torch.Tensor:
    """Mean target log-probability of each {input_ids, labels} variant, batched by length."""
    return token_scores(model, variants, pad_id, batch_size)[0]


def occlusion_steps(model: Any, feats: list[dict[str, Any]], n_words: list[int], pad_id: int, batch_size: int = 64,
                    quantity: str = "log_prob") -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per example: word scores q(input) - q(input without the word) of the mean target `quantity`, and
    the same drop per target token, a (target_len, n_words) tensor."""
    variants = [variant for feat, n in zip(feats, n_words) for variant in deletions(feat, n)]
    means, per_token = token_scores(model, variants, pad_id, batch_size, quantity)
    scores, steps, start = [], [], 0
    for n in n_words:
        scores.append(means[start] - means[start + 1:start + 1 + n])
        full = per_token[start]
        deleted = torch.stack(per_token[start + 1:start + 1 + n], 1) if n else torch.zeros(len(full), 0)
        steps.append(full.unsqueeze(1) - deleted)
        start += n + 1
    return scores, steps


def occlusion(model: Any, feats: list[dict[str, Any]], n_words: list[int], pad_id: int,
              batch_size: int = 64, quantity: str = "log_prob") -> list[torch.Tensor]:
    """Word scores log p(target | input) - log p(target | input without the word), per example
    (or the drop in the mean margin, with quantity="margin")."""
    return occlusion_steps(model, feats, n_words, pad_id, batch_size, quantity)[0]
