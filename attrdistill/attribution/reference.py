"""The definitions, slowly: per-target-token loops that the batched attribution methods are tested and
benchmarked against (tests/test_attribution.py, bench/attribution.py).

    scores = stepwise_saliency(model, f["input_ids"], f["labels"])   # (input length,), one seq2seq example
"""

from __future__ import annotations

from typing import Any

import torch


def stepwise_saliency(model: Any, input_ids: list[int], labels: list[int]) -> torch.Tensor:
    """The paper's saliency of one seq2seq example by its definition: per gold target token j, one forward (the
    decoder fed the gold prefix up to j) and one gradient of that token's logit w.r.t. the input embeddings; the
    signed gradients averaged over the target tokens, then the L1 norm over embedding dimensions (on the CPU)."""
    device = next(model.parameters()).device
    ids = torch.tensor([input_ids], device=device)
    start = model.config.decoder_start_token_id
    total = None
    for j, gold in enumerate(labels):
        embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
        prefix = torch.tensor([[start] + labels[:j]], device=device)
        logits = model(inputs_embeds=embeds, attention_mask=torch.ones_like(ids), decoder_input_ids=prefix).logits
        logit = logits[0, -1, gold]
        (grad,) = torch.autograd.grad(logit, embeds)   # the embeddings' gradient only: parameters keep theirs
        total = grad[0].float() if total is None else total + grad[0].float()
    return (total / len(labels)).abs().sum(-1).cpu()
