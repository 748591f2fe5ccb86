"""Gradient attribution of a seq2seq model's gold target to its input tokens.

The paper's saliency (DESIGN.md section 1): teacher-force the gold target, take o_j = logit of
the gold token at target position j, G_i = d[(1/m) sum_j o_j] / d e_i, score_i = |G_i|_1.
Because the mean comes before the norm, G is the gradient of one scalar per example, and since
examples in a batch do not interact, one backward of the batch sum gives every score at once.

    scores = saliency(model, batch)     # (batch, input_len), 0 on padding
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from transformers import PreTrainedModel


@contextmanager
def frozen(model: PreTrainedModel) -> Iterator[PreTrainedModel]:
    """Eval mode and no parameter gradients for the duration; restores both after."""
    flags = [p.requires_grad for p in model.parameters()]
    was_training = model.training
    model.eval().requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
        model.train(was_training)


def gold_logits(model: PreTrainedModel, embeds: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(batch, target_len) logits of the gold target tokens, teacher-forced; 0 where labels are -100."""
    labels = batch["labels"]
    decoder_input_ids = model.prepare_decoder_input_ids_from_labels(labels=labels)
    logits = model(inputs_embeds=embeds, attention_mask=batch["attention_mask"],
                   decoder_input_ids=decoder_input_ids).logits
    gold = logits.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1).float()
    return gold * (labels != -100)


def saliency(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The paper's saliency: L1 norm over embedding dims of the gradient of the mean gold logit."""
    with frozen(model):
        embeds = model.get_input_embeddings()(batch["input_ids"]).detach().requires_grad_(True)
        gold = gold_logits(model, embeds, batch)
        n_target = (batch["labels"] != -100).sum(-1).clamp(min=1)
        (gold.sum(-1) / n_target).sum().backward()
        return embeds.grad.float().abs().sum(-1) * batch["attention_mask"]
