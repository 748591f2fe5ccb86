"""The label's loss: its cross-entropy and the logits at its target tokens, in either layout.

    loss, logits = label_loss(model, batch)            # logits (batch, T, V): the target tokens', in order
    loss, logits = label_loss(model, batch, embeds)    # the same from input embeddings (attribution matching)
    loss, correct = label_correct(model, batch)        # (batch,): is every target token the argmax (validation)

A seq2seq model's decoder runs on the target alone, so its logits are these already. A decoder-only
model's sequence is mostly prompt: its hidden states are gathered at the positions that predict a
target token before the output layer, so the vocabulary-sized logits (and their gradient) are computed
for those positions only; the loss is the full-logits loss (tested to 1e-5). Models whose output is
more than the output layer (logit soft-capping or scaling) take the full path. A decoder-only model's
positions count real tokens only (from the attention mask), so a left-padded row is scored as it is
alone; with right padding they are the plain 0, 1, 2, ... of every row.
"""

from __future__ import annotations

from typing import Any

import torch

from attrdistill.attribution.gradients import causal_target_outputs, target_positions
from attrdistill.modeling.features import is_causal


def _model_inputs(model: Any, inputs: dict[str, torch.Tensor], embeds: torch.Tensor | None) -> dict[str, Any]:
    """What the model's forward takes: ids or embeddings, the mask, and (decoder-only) positions of real tokens."""
    out: dict[str, Any] = {"attention_mask": inputs["attention_mask"]}
    out.update({"input_ids": inputs["input_ids"]} if embeds is None else {"inputs_embeds": embeds})
    if is_causal(model):
        out["position_ids"] = (inputs["attention_mask"].long().cumsum(-1) - 1).clamp(min=0)
    return out


def label_loss(model: Any, inputs: dict[str, torch.Tensor],
               embeds: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cross-entropy of the target tokens, the logits predicting them in target order (batch, T, V)).

    inputs: input_ids, attention_mask (batch, L), labels (batch, L causal, or (batch, T) seq2seq: -100 where not
    a target token); embeds (batch, L, d): the input embeddings to run on instead of input_ids (differentiable).
    """
    labels = inputs["labels"]
    # A peft model (a LoRA teacher) puts its adapters inside the model it wraps: run that one, whose base is the
    # transformer (the wrapper's `base_model` is peft's own).
    model = model.get_base_model() if hasattr(model, "get_base_model") else model
    kwargs = _model_inputs(model, inputs, embeds)
    if not is_causal(model) or any(getattr(model.config, a, None) for a in ("final_logit_softcapping", "logit_scale")):
        outputs = model(**kwargs, labels=labels)
        logits = outputs.logits
        if is_causal(model):
            logits = causal_target_outputs(logits, labels)[0]
        return outputs.loss, logits
    hidden = model.base_model(**kwargs).last_hidden_state
    positions, keep = target_positions(labels)
    # The output at position p predicts the token at p + 1 (a prompt is never empty).
    at = (positions - 1).clamp(min=0).unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
    logits = model.get_output_embeddings()(hidden.gather(1, at))
    targets = labels.gather(1, positions)
    loss = torch.nn.functional.cross_entropy(logits[keep].float(), targets[keep])
    return loss, logits


def target_mask(model: Any, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(the target token ids, a 0/1 mask of the real ones), both (batch, T), aligned with `label_loss`'s logits."""
    if is_causal(model):
        positions, keep = target_positions(labels)
        return labels.gather(1, positions).clamp(min=0), keep   # past a row's own target: padding, masked
    return labels.clamp(min=0), labels != -100


def label_correct(model: Any, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(the label loss, per row (batch,) bool: is every target token the argmax given the gold prefix), i.e. would
    greedy decoding emit the label token for token; from `label_loss`'s logits at the target positions only."""
    loss, logits = label_loss(model, inputs)
    targets, keep = target_mask(model, inputs["labels"])
    return loss, ((logits.argmax(-1) == targets) | (keep == 0)).all(-1)
