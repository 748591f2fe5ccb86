"""Attribution matching: the student's own saliency over its input is pulled toward the teacher's word scores.

    targets = token_targets(tok, sources, inputs, word_scores, "predict: ", 128)   # teacher, per input token
    outputs, saliency = student_saliency(student, batch)                           # one forward, one backward
    loss = outputs.loss + mu * match_divergence(saliency, batch_targets)           # CE + mu KL(teacher || student)

`AttributionMatching` is the loss term `match:<method>` of `registry.variants.TERMS`: the trainer calls its features,
collate and loss, and knows nothing else of it.

As in attribution-driven distillation (AD-KD, Wu et al. 2023), the student explains its own label
the way the paper's saliency does -- g_i = d[(1/m) sum_j o_j] / d e_i, s_i = |g_i|_1 over the input
tokens -- and s, normalised to a distribution over the input tokens, is compared with the teacher's
word scores spread over the same tokens: KL(p_teacher || q_student). The gradient of a gradient
needs a second backward through the model (create_graph=True): about three times a plain step
(`python bench/kd_step.py`). Rows with no teacher mass (no scored word) add nothing.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Sequence

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from attrdistill.distill.label import label_loss, target_mask
from attrdistill.modeling.features import is_causal
from attrdistill.modeling.words import token_to_word, word_spans
from attrdistill.pipeline.records import WordScores

EPS = 1e-8


def token_targets(tokenizer: Any, sources: Sequence[str], inputs: Sequence[str], word_scores: Sequence[Sequence[float]],
                  prefix: str, max_input_length: int) -> list[list[float]]:
    """Per row, the teacher's distribution over the input tokens of the student's encoding of `sources`.

    A word's non-negative score is shared equally by its tokens; prefix and special tokens get 0.
    """
    enc = tokenizer(list(sources), truncation=True, max_length=max_input_length, return_offsets_mapping=True)
    out = []
    for offsets, text, scores in zip(enc["offset_mapping"], inputs, word_scores):
        owner = token_to_word([tuple(o) for o in offsets], word_spans(text), shift=len(prefix))
        counts: dict[int, int] = {}
        for w in owner:
            counts[w] = counts.get(w, 0) + 1
        mass = [max(0.0, float(scores[w])) / counts[w] if w >= 0 else 0.0 for w in owner]
        total = sum(mass)
        out.append([m / total for m in mass] if total > 0 else mass)
    return out


def student_saliency(model: Any, batch: dict[str, torch.Tensor]) -> tuple[Any, torch.Tensor]:
    """(the model's outputs: `loss` the label's cross-entropy, `logits` (batch, T, V) at the target tokens; and
    (batch, input_len) the student's L1 saliency of its input tokens, differentiable w.r.t. the weights).

    The teacher's definition in either layout (`attribution.gradients.saliency`): the gradient of the mean gold
    logit over the target tokens w.r.t. the input token embeddings, L1 over dimensions. A seq2seq student's
    input is its encoder's; a decoder-only student's is its prompt (target tokens and padding get 0). One
    forward gives the loss and the gold logits; the gradient is taken with create_graph, so the saliency has a
    gradient itself (a double backward). Decoder-only students compute logits at the target tokens only.
    """
    embeds = model.get_input_embeddings()(batch["input_ids"])
    # SDPA's fused CPU kernels have no double backward; its math kernel is made of ops that do.
    with sdpa_kernel([SDPBackend.MATH]):
        loss, logits = label_loss(model, batch, embeds)
    targets, keep = target_mask(model, batch["labels"])
    gold = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) * keep
    mean_gold = gold.sum(-1) / keep.sum(-1).clamp(min=1)
    (grad,) = torch.autograd.grad(mean_gold.sum(), embeds, create_graph=True)
    scored = batch["attention_mask"] * (batch["labels"] == -100) if is_causal(model) else batch["attention_mask"]
    return SimpleNamespace(loss=loss, logits=logits), grad.abs().sum(-1) * scored


def match_divergence(saliency: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over rows with teacher mass of KL(p_teacher || q_student), q = the student's saliency normalised."""
    targets = targets[:, :saliency.shape[1]].to(saliency.dtype)
    q = saliency / saliency.sum(-1, keepdim=True).clamp(min=EPS)
    has_mass = targets.sum(-1) > 0
    kl = torch.where(targets > 0, targets * (targets.clamp(min=EPS).log() - q.clamp(min=EPS).log()),
                     torch.zeros_like(q)).sum(-1)
    return (kl * has_mass).sum() / has_mass.sum().clamp(min=1)


def pad_targets(features: list[dict[str, Any]], width: int, padding_side: str = "right") -> torch.Tensor:
    """(batch, width) `match_targets` of the features, padded on the side their batch's input_ids are: a row's
    targets cover its first tokens (its source's), and stay with them."""
    out = torch.zeros(len(features), width)
    for r, f in enumerate(features):
        t = torch.tensor(f["match_targets"][:width])
        if padding_side == "left":
            start = width - len(f["input_ids"])
            out[r, start:start + len(t)] = t[:width - start]
        else:
            out[r, :len(t)] = t
    return out


class AttributionMatching:
    """The loss term mu * KL(teacher's word scores || the student's own saliency), `match:<method>`."""

    def __init__(self, weight: float) -> None:
        self.weight = weight

    @staticmethod
    def features(tokenizer: Any, sources: Sequence[str], guides: Sequence[WordScores],
                 max_input_length: int) -> list[dict[str, Any]]:
        """Per row, the teacher's distribution over the tokens of its source (the rows share one prefix)."""
        targets = token_targets(tokenizer, sources, [g.input for g in guides], [g.scores for g in guides],
                                guides[0].prefix if guides else "", max_input_length)
        return [{"match_targets": t} for t in targets]

    @staticmethod
    def collate(features: list[dict[str, Any]], width: int) -> dict[str, torch.Tensor]:
        return {"match_targets": pad_targets(features, width)}

    def __call__(self, model: Any, inputs: dict[str, torch.Tensor],
                 tensors: dict[str, torch.Tensor]) -> tuple[Any, torch.Tensor]:
        """(the outputs with the label loss, mu * the divergence): one forward gives both the loss and the saliency."""
        outputs, saliency = student_saliency(model, inputs)
        return outputs, self.weight * match_divergence(saliency, tensors["match_targets"])
