"""Attribution matching: the student's own saliency over its input is pulled toward the teacher's word scores.

    targets = token_targets(tok, sources, inputs, word_scores, "predict: ", 128)   # teacher, per input token
    outputs, saliency = student_saliency(student, batch)                           # one forward, one backward
    loss = outputs.loss + mu * match_divergence(saliency, batch_targets)           # CE + mu KL(teacher || student)
    saliency_agreement(student, batches)   # {"kl": ..., "mass_at_top": ...}: how close it is, on rows it never saw

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
from typing import Any, Iterable, Sequence

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


def student_saliency(model: Any, batch: dict[str, torch.Tensor], create_graph: bool = True) -> tuple[Any, torch.Tensor]:
    """(the model's outputs: `loss` the label's cross-entropy, `logits` (batch, T, V) at the target tokens; and
    (batch, input_len) the student's L1 saliency of its input tokens, differentiable w.r.t. the weights).

    The teacher's definition in either layout (`attribution.gradients.saliency`): the gradient of the mean gold
    logit over the target tokens w.r.t. the input token embeddings, L1 over dimensions. A seq2seq student's
    input is its encoder's; a decoder-only student's is its prompt (target tokens and padding get 0). One
    forward gives the loss and the gold logits; the gradient is taken with create_graph, so the saliency has a
    gradient itself (a double backward); `create_graph=False` where it is only measured (`saliency_agreement`).
    Decoder-only students compute logits at the target tokens only.
    """
    embeds = model.get_input_embeddings()(batch["input_ids"])
    # SDPA's fused CPU kernels have no double backward; its math kernel is made of ops that do.
    with sdpa_kernel([SDPBackend.MATH]):
        loss, logits = label_loss(model, batch, embeds)
    targets, keep = target_mask(model, batch["labels"])
    gold = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) * keep
    mean_gold = gold.sum(-1) / keep.sum(-1).clamp(min=1)
    (grad,) = torch.autograd.grad(mean_gold.sum(), embeds, create_graph=create_graph)
    return SimpleNamespace(loss=loss, logits=logits), grad.abs().sum(-1) * input_tokens(model, batch)


def input_tokens(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(batch, L) 1 on the tokens whose saliency is scored: the encoder's input, or a decoder-only model's prompt."""
    mask = batch["attention_mask"]
    return mask * (batch["labels"] == -100) if is_causal(model) else mask


def row_divergence(saliency: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch,) KL(p_teacher || q_student) per row, q = the student's saliency normalised over its input tokens;
    and (batch,) whether the row has teacher mass (a row without has no divergence: its KL is 0).

    saliency: (batch, L) the student's token saliency (`student_saliency`); targets: (batch, >= L) the teacher's
    distribution over the same tokens (`pad_targets`), cut to L."""
    targets = targets[:, :saliency.shape[1]].to(saliency.dtype)
    q = saliency / saliency.sum(-1, keepdim=True).clamp(min=EPS)
    kl = torch.where(targets > 0, targets * (targets.clamp(min=EPS).log() - q.clamp(min=EPS).log()),
                     torch.zeros_like(q)).sum(-1)
    return kl, targets.sum(-1) > 0


def match_divergence(saliency: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over rows with teacher mass of KL(p_teacher || q_student), q = the student's saliency normalised."""
    kl, has_mass = row_divergence(saliency, targets)
    return (kl * has_mass).sum() / has_mass.sum().clamp(min=1)


def saliency_agreement(model: Any, batches: Iterable[dict[str, torch.Tensor]], top: int = 5) -> dict[str, float]:
    """How close a model's own saliency is to the teacher's word scores, over the rows with teacher mass:
    {"kl": mean KL(p_teacher || q_model) in nats, "kl_uniform": the same for a q spread evenly over each row's
    input tokens (what knowing nothing scores), "mass_at_top": mean teacher mass on the model's `top` most salient
    tokens, "mass_uniform": the same for `top` tokens drawn at random (top / the row's input tokens), "n": rows}.

    batches: `collate_train` batches of match rows (`match_targets` beside the model's inputs). What a match term
    is trained to lower on its training rows; measured on rows it never saw, it says whether the student learned
    to look where the teacher looks, or only fitted those rows."""
    sums = {"kl": 0.0, "kl_uniform": 0.0, "mass_at_top": 0.0, "mass_uniform": 0.0}
    n = 0
    for batch in batches:
        inputs = {k: v for k, v in batch.items() if k != "match_targets"}
        with torch.enable_grad():
            _, saliency = student_saliency(model, inputs, create_graph=False)
        saliency = saliency.detach().float()
        targets = batch["match_targets"][:, :saliency.shape[1]].float()
        kl, has_mass = row_divergence(saliency, targets)
        scored = input_tokens(model, inputs).float()
        uniform, _ = row_divergence(scored, targets)
        picked = saliency.topk(min(top, saliency.shape[1]), -1).indices
        mass = targets.gather(1, picked).sum(-1)
        tokens = scored.sum(-1).clamp(min=1)
        for name, value in (("kl", kl), ("kl_uniform", uniform), ("mass_at_top", mass),
                            ("mass_uniform", (top / tokens).clamp(max=1))):
            sums[name] += float((value * has_mass).sum())
        n += int(has_mass.sum())
    return {k: v / max(n, 1) for k, v in sums.items()} | {"n": n}


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
