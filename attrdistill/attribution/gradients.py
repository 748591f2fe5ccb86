"""Gradient attribution of a seq2seq model's target to its input tokens, one batch at a time.

The paper's saliency (Ballout et al. 2024, section 3.1): teacher-force the target, take o_j = logit of the
target token at position j, G_i = d[(1/m) sum_j o_j] / d e_i, score_i = |G_i|_1. Because the mean
comes before the norm, G is the gradient of one scalar per example, and since examples in a batch
do not interact, one backward of the batch sum gives every score at once.

    scores = saliency(model, batch, cfg)     # (batch, input_len) float32, 0 on padding

Every method here takes (model, batch, cfg) -- batch holds input_ids, attention_mask and labels
(the target, -100 on padding) -- and returns float32 token scores. Parameters are frozen for the
duration; scores are accumulated in float32 whatever the model's dtype.

What is explained per target token j (`quantity`, attribution.quantity): the raw gold logit z_j[gold]
(the paper's, default), its log-probability log p(gold) = z - logsumexp(z), or the margin
z[gold] - max_{v != gold} z[v] (the decision rather than the logit's size). Only `logit` can use
`gold_logits_only`; the other two need the full vocabulary's logits.

`step_scores` gives the per-target-token scores (one row per target position j, one backward each)
that `attribution.order: aligned` needs to pair rationale words with label tokens; each method's
`*_with_steps` (its registry entry's `steps`) gives its scores and its steps together.

Decoder-only models (`features.is_causal`) take the causal layout of `features.encode`: input_ids
hold prompt + target, labels are -100 on the prompt. The definition is the same -- the logit that
predicts target token j sits at position (prompt_len + j - 1) -- and only prompt tokens are scored
(target and padding positions get 0), so offsets map scores to words exactly as for seq2seq.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Callable, Iterator

import numpy as np
import torch
from transformers import PreTrainedModel

from attrdistill.config import QUANTITIES, AttributionConfig
from attrdistill.errors import ConfigError
from attrdistill.modeling.features import is_causal


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


def target_positions(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal layout: (positions, mask), both (batch, max_target_len), of each row's target tokens.

    Targets are contiguous, so row i's j-th target token sits at (first target position + j); the
    mask is 0 past a row's own target length. Works with padding on either side.
    """
    is_target = labels != -100
    n_target = is_target.sum(-1)
    steps = torch.arange(int(n_target.max()), device=labels.device)
    positions = (is_target.int().argmax(-1, keepdim=True) + steps).clamp(max=labels.shape[1] - 1)
    return positions, steps < n_target.unsqueeze(-1)


def causal_target_outputs(logits: torch.Tensor, labels: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Causal layout: (outputs that predict each target token, those tokens, mask), all in target order."""
    positions, keep = target_positions(labels)
    # The logit predicting the token at position p is the output at p - 1 (a prompt is never empty).
    logits = logits.gather(1, (positions - 1).clamp(min=0).unsqueeze(-1).expand(-1, -1, logits.shape[-1]))
    return logits, labels.gather(1, positions), keep


def target_mask(model: PreTrainedModel, labels: torch.Tensor) -> torch.Tensor:
    """(batch, target_len) float mask of the real target tokens, aligned with `target_logits`."""
    if is_causal(model):
        return target_positions(labels)[1].float()
    return (labels != -100).float()


def scored_mask(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(batch, input_len) mask of the tokens that get a score: the input, not padding (nor a causal target)."""
    mask = batch["attention_mask"]
    return mask * (batch["labels"] == -100) if is_causal(model) else mask


@contextmanager
def gold_logits_only(model: PreTrainedModel, ids: torch.Tensor) -> Iterator[None]:
    """For the duration, the output layer computes one logit per position, that of token `ids` there.

    `ids` has the shape of the output positions (batch, len). Saliency needs nothing else, and the
    full-vocabulary projection (and its backward) is a large share of a small model's cost: 32k-49k
    logits per position where one is used. The result is the same logit, as a (batch, len, 1) tensor.
    """
    head = model.get_output_embeddings()

    def forward(hidden: torch.Tensor) -> torch.Tensor:
        out = (hidden * head.weight[ids].to(hidden.dtype)).sum(-1, keepdim=True)
        return out if getattr(head, "bias", None) is None else out + head.bias[ids].unsqueeze(-1).to(out.dtype)

    head.forward = forward   # an instance attribute shadows the class's forward; deleting it restores that
    try:
        yield
    finally:
        del head.forward


def target_logits(model: PreTrainedModel, embeds: torch.Tensor, batch: dict[str, torch.Tensor],
                  log_probs: bool = False, quantity: str = "logit") -> torch.Tensor:
    """(batch, target_len) per-token `quantity` of the target tokens, teacher-forced; 0 on padding.

    quantity: logit (the gold logit), log_prob (`log_probs=True` says the same) or margin (the gold
    logit minus the best other one).
    """
    if log_probs:
        quantity = "log_prob"
    if quantity not in QUANTITIES:
        raise ConfigError(f"attribution.quantity: expected one of {', '.join(QUANTITIES)}, got {quantity!r}")
    labels = batch["labels"]
    causal = is_causal(model)
    # The token whose logit each output position gives: the next token (causal) or the target token (seq2seq).
    next_ids = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=-100) if causal else labels
    with nullcontext() if quantity != "logit" else gold_logits_only(model, next_ids.clamp(min=0)):
        if causal:
            logits = model(inputs_embeds=embeds, attention_mask=batch["attention_mask"], use_cache=False).logits
        else:
            decoder_input_ids = model.prepare_decoder_input_ids_from_labels(labels=labels)
            logits = model(inputs_embeds=embeds, attention_mask=batch["attention_mask"],
                           decoder_input_ids=decoder_input_ids).logits
    if causal:
        logits, labels, keep = causal_target_outputs(logits, labels)
    else:
        keep = labels != -100
    logits = logits.float()
    gold_ids = labels.clamp(min=0).unsqueeze(-1)
    if quantity == "log_prob":
        gold = logits.log_softmax(-1).gather(-1, gold_ids).squeeze(-1)
    elif quantity == "margin":
        # The runner-up: every logit but the gold one; its gradient flows through whichever token that is.
        others = logits.scatter(-1, gold_ids, float("-inf")).amax(-1)
        gold = logits.gather(-1, gold_ids).squeeze(-1) - others
    else:
        gold = logits.squeeze(-1)
    return gold * keep


def mean_target_logit(model: PreTrainedModel, embeds: torch.Tensor, batch: dict[str, torch.Tensor],
                      log_probs: bool = False, quantity: str = "logit") -> torch.Tensor:
    """(batch,) the mean over target tokens of their `quantity`: the scalar every gradient method explains."""
    n_target = (batch["labels"] != -100).sum(-1).clamp(min=1)
    return target_logits(model, embeds, batch, log_probs, quantity).sum(-1) / n_target


def _quantity(cfg: AttributionConfig | None) -> str:
    return cfg.quantity if cfg is not None else "logit"


def _embeddings(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model.get_input_embeddings()(batch["input_ids"]).detach().requires_grad_(True)


def _gradient(model: PreTrainedModel, batch: dict[str, torch.Tensor],
              quantity: str = "logit") -> tuple[torch.Tensor, torch.Tensor]:
    """(embeddings, gradient of the mean target `quantity` w.r.t. them), one backward for the whole batch."""
    embeds = _embeddings(model, batch)
    mean_target_logit(model, embeds, batch, quantity=quantity).sum().backward()
    return embeds.detach(), embeds.grad


def saliency(model: PreTrainedModel, batch: dict[str, torch.Tensor],
             cfg: AttributionConfig | None = None) -> torch.Tensor:
    """The paper's saliency: L1 norm over embedding dims of the gradient of the mean target logit (`quantity`)."""
    with frozen(model):
        _, grad = _gradient(model, batch, _quantity(cfg))
        return grad.float().abs().sum(-1) * scored_mask(model, batch)


def input_x_gradient(model: PreTrainedModel, batch: dict[str, torch.Tensor],
                     cfg: AttributionConfig | None = None) -> torch.Tensor:
    """|e_i . G_i|: the first-order contribution of each token embedding to the mean target logit."""
    with frozen(model):
        embeds, grad = _gradient(model, batch, _quantity(cfg))
        return (grad.float() * embeds.float()).sum(-1).abs() * scored_mask(model, batch)


# Per target position: (gradient d q_j / d e, embeddings, cfg) -> (batch, input_len) token scores. A method's
# `*_with_steps` (its registry entry's `steps`) names its own reduction; nothing here dispatches on a name.
StepReduce = Callable[[torch.Tensor, torch.Tensor, "AttributionConfig | None"], torch.Tensor]


def saliency_step(grad: torch.Tensor, embeds: torch.Tensor, cfg: AttributionConfig | None = None) -> torch.Tensor:
    """saliency per target token: |d q_j / d e_i|_1."""
    return grad.float().abs().sum(-1)


def stepwise_step(grad: torch.Tensor, embeds: torch.Tensor, cfg: AttributionConfig | None = None) -> torch.Tensor:
    """saliency_stepwise per target token: the l1 or l2 norm (attribution.norm) of d q_j / d e_i."""
    return grad.float().norm(p=2 if cfg is not None and cfg.norm == "l2" else 1, dim=-1)


def input_x_gradient_step(grad: torch.Tensor, embeds: torch.Tensor,
                          cfg: AttributionConfig | None = None) -> torch.Tensor:
    """input_x_gradient per target token: |e_i . d q_j / d e_i|."""
    return (grad.float() * embeds.float()).sum(-1).abs()


def _steps(model: PreTrainedModel, batch: dict[str, torch.Tensor], reduce: StepReduce,
           cfg: AttributionConfig | None) -> Iterator[torch.Tensor]:
    """reduce(d q_j / d e, e, cfg) * mask_j, (batch, input_len) float32, for j = 0, 1, ...: one backward each."""
    embeds = _embeddings(model, batch)
    gold = target_logits(model, embeds, batch, quantity=_quantity(cfg))
    mask = target_mask(model, batch["labels"])
    for j in range(gold.shape[1]):
        (grad,) = torch.autograd.grad(gold[:, j].sum(), embeds, retain_graph=j + 1 < gold.shape[1])
        yield reduce(grad, embeds.detach(), cfg) * mask[:, j:j + 1]


def _stepwise_mean(model: PreTrainedModel, batch: dict[str, torch.Tensor],
                   steps: Iterator[torch.Tensor]) -> torch.Tensor:
    total = torch.zeros(batch["input_ids"].shape, dtype=torch.float32, device=batch["input_ids"].device)
    for step in steps:   # summed in order, one step at a time: the same rounding as ever
        total += step
    mask = target_mask(model, batch["labels"])
    return total / mask.sum(-1, keepdim=True).clamp(min=1) * scored_mask(model, batch)


def saliency_stepwise(model: PreTrainedModel, batch: dict[str, torch.Tensor],
                      cfg: AttributionConfig | None = None) -> torch.Tensor:
    """Per target token j, the L1 (or L2) norm of d o_j / d e_i; then the mean over j.

    What step-wise tools (inseq, Captum's LLM attribution) compute; unlike `saliency` the norm comes
    before the mean, so it needs one backward per target position (batched over examples).
    """
    with frozen(model):
        return _stepwise_mean(model, batch, _steps(model, batch, stepwise_step, cfg))


def _stacked(model: PreTrainedModel, batch: dict[str, torch.Tensor], steps: list[torch.Tensor]) -> torch.Tensor:
    """(batch, target_len, input_len) from one (batch, input_len) tensor per target position; 0 where unscored."""
    scored = scored_mask(model, batch)
    if not steps:
        return torch.zeros(scored.shape[0], 0, scored.shape[1], device=scored.device)
    return torch.stack(steps, 1) * scored.unsqueeze(1)


def step_scores(model: PreTrainedModel, batch: dict[str, torch.Tensor], reduce: StepReduce,
                cfg: AttributionConfig | None = None) -> torch.Tensor:
    """(batch, target_len, input_len) float32: row j holds the token scores that explain target token j alone,
    `reduce` of its gradient (e.g. `saliency_step`: |d q_j / d e_i|_1, the quantity saliency_stepwise averages).
    0 on padding, on target positions past a row's own target, and on causal target tokens."""
    with frozen(model):
        return _stacked(model, batch, list(_steps(model, batch, reduce, cfg)))


def saliency_with_steps(model: PreTrainedModel, batch: dict[str, torch.Tensor],
                        cfg: AttributionConfig | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(saliency's token scores, its step scores): the registry entry's `steps` for order: aligned."""
    return saliency(model, batch, cfg), step_scores(model, batch, saliency_step, cfg)


def input_x_gradient_with_steps(model: PreTrainedModel, batch: dict[str, torch.Tensor],
                                cfg: AttributionConfig | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_x_gradient's token scores, its step scores)."""
    return input_x_gradient(model, batch, cfg), step_scores(model, batch, input_x_gradient_step, cfg)


def saliency_stepwise_with_steps(model: PreTrainedModel, batch: dict[str, torch.Tensor],
                                 cfg: AttributionConfig | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(saliency_stepwise's token scores, its step scores), both from the same backwards: its scores are the
    mean of its steps."""
    with frozen(model):
        steps = list(_steps(model, batch, stepwise_step, cfg))
        return _stepwise_mean(model, batch, iter(steps)), _stacked(model, batch, steps)


def _baseline(model: PreTrainedModel, batch: dict[str, torch.Tensor], kind: str) -> torch.Tensor:
    """The path's start: zero or pad embeddings on the input; a causal target keeps its own (it is given)."""
    embeds = model.get_input_embeddings()(batch["input_ids"]).detach()
    if kind == "zero":
        base = torch.zeros_like(embeds)
    else:
        pad = torch.full_like(batch["input_ids"], model.config.pad_token_id or 0)
        base = model.get_input_embeddings()(pad).detach()
    if is_causal(model):
        base = torch.where((batch["labels"] == -100).unsqueeze(-1), base, embeds)
    return base


def ig_attributions(model: PreTrainedModel, batch: dict[str, torch.Tensor], n_steps: int = 50,
                    baseline: str = "pad", internal_batch_size: int = 256, quantity: str = "logit") -> torch.Tensor:
    """(batch, len, dim) integrated gradients of the mean target `quantity` (default the logit), float32.

    Gauss-Legendre quadrature over the straight path baseline -> input; the path points of several
    examples and steps go through the model together, `internal_batch_size` rows at a time. Their sum
    over tokens and dims approximates f(input) - f(baseline) (completeness).
    """
    nodes, weights = np.polynomial.legendre.leggauss(n_steps)
    alphas, weights = (nodes + 1) / 2, weights / 2   # from [-1, 1] to [0, 1]
    with frozen(model):
        x = model.get_input_embeddings()(batch["input_ids"]).detach()
        x0 = _baseline(model, batch, baseline)
        b = x.shape[0]
        per_pass = max(1, internal_batch_size // b)
        total = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        for start in range(0, n_steps, per_pass):
            a = torch.tensor(alphas[start:start + per_pass], dtype=x.dtype, device=x.device)
            w = torch.tensor(weights[start:start + per_pass], dtype=torch.float32, device=x.device)
            c = len(a)
            path = (x0.unsqueeze(0) + a.view(c, 1, 1, 1) * (x - x0).unsqueeze(0)).reshape(c * b, *x.shape[1:])
            path.requires_grad_(True)
            repeated = {k: batch[k].repeat(c, 1) for k in ("attention_mask", "labels")}
            mean_target_logit(model, path, repeated, quantity=quantity).sum().backward()
            total += (path.grad.float().view(c, *x.shape) * w.view(c, 1, 1, 1)).sum(0)
        return total * (x - x0).float()


def integrated_gradients(model: PreTrainedModel, batch: dict[str, torch.Tensor],
                         cfg: AttributionConfig | None = None) -> torch.Tensor:
    """|sum over dims of the IG attribution| of each token (its signed share of f(x) - f(baseline))."""
    cfg = cfg or AttributionConfig()
    attr = ig_attributions(model, batch, cfg.ig_steps, cfg.ig_baseline, cfg.ig_internal_batch_size, cfg.quantity)
    return attr.sum(-1).abs() * scored_mask(model, batch)


@torch.no_grad()
def target_log_prob(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(batch,) mean log-probability of the target tokens given the input ids, teacher-forced."""
    embeds = model.get_input_embeddings()(batch["input_ids"])
    return mean_target_logit(model, embeds, batch, log_probs=True)


@torch.no_grad()
def target_scores(model: PreTrainedModel, batch: dict[str, torch.Tensor], quantity: str = "log_prob") -> torch.Tensor:
    """(batch, target_len) per-token `quantity` of the target given the input ids, teacher-forced; 0 on padding."""
    embeds = model.get_input_embeddings()(batch["input_ids"])
    return target_logits(model, embeds, batch, quantity=quantity)
