"""Logit distillation: the teacher's sparse target-token distributions, and the divergences that use them.

    rows = teacher_logits(model, tok, sources, targets, top_k=16, temperature=2.0, cache=run / "kd_cache")
    loss = kd_loss(target_logits, ce, batch, alpha=0.5, temperature=2.0, divergence="forward_kl")
    loss = KDLoss(alpha=0.5, temperature=2.0)(target_logits, ce, batch)   # the same, as the kd objective's loss

The teacher scores each target token once per train set, teacher-forced, and keeps only its top-K
logits and the log-normaliser log sum_v exp(z_v / T) at the distillation temperature. That is all a
student needs, so no teacher sits in memory while students train, and K numbers per token replace
a vocabulary of them. Rows are cached in shards like attributions: an interrupted run resumes at the
next shard, a rerun reads them all.

The divergence is taken over K + 1 buckets: the teacher's top-K tokens and "the rest" (one minus
their mass, for each model). That is an exact divergence between two coarser distributions, never
more than the full one, and equal to it when K is the vocabulary size (the tests check this).

    L = (1 - alpha) * CE(label) + alpha * T^2 * D(p_teacher^T || p_student^T)     (Hinton et al. 2015)

D: forward KL (DistillKit's default), reverse KL, or the generalised JSD of GKD (Agarwal et al.
2024): beta * KL(P || M) + (1 - beta) * KL(Q || M), M = beta * P + (1 - beta) * Q; beta = 0.5 is JSD.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import torch

from attrdistill.errors import ConfigError
from attrdistill.modeling.features import collate, encode, is_causal, length_batches
from attrdistill.pipeline.shards import sharded
from attrdistill.pipeline.store import fingerprint

Divergence = Literal["forward_kl", "reverse_kl", "jsd"]
DIVERGENCES: tuple[str, ...] = ("forward_kl", "reverse_kl", "jsd")


# ---- the teacher's side: sparse logits, once per train set ------------------------------------------

@torch.no_grad()
def _sparse_batch(model: Any, batch: dict[str, torch.Tensor], top_k: int, temperature: float) -> list[dict[str, list]]:
    """Per row: {ids, logits, log_norm}, one entry per target token in order (K ids and logits per token)."""
    from attrdistill.attribution.gradients import causal_target_outputs

    if is_causal(model):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
        logits, _, keep = causal_target_outputs(logits, batch["labels"])
    else:
        logits = model(**batch).logits
        keep = batch["labels"] != -100
    logits = logits.float()
    values, ids = logits.topk(min(top_k, logits.shape[-1]), dim=-1)
    log_norm = (logits / temperature).logsumexp(-1)
    rows = []
    for r in range(logits.shape[0]):
        n = int(keep[r].sum())
        rows.append({"ids": ids[r, :n].tolist(), "logits": [[round(v, 5) for v in t] for t in values[r, :n].tolist()],
                     "log_norm": [round(v, 6) for v in log_norm[r, :n].tolist()]})
    return rows


def teacher_logits(model: Any, tokenizer: Any, ids: Sequence[str], sources: Sequence[str], targets: Sequence[str],
                   top_k: int, temperature: float, max_input_length: int, max_target_length: int,
                   batch_size: int = 64, shard_size: int = 1024, cache: Path | None = None,
                   model_key: str = "") -> list[dict[str, Any]]:
    """One row {id, ids, logits, log_norm} per (source, target), in order; cached in shards under `cache`.

    `model` may be None when every shard is cached (a rerun needs no teacher).
    """
    key = fingerprint("kd", model_key, top_k, temperature, max_input_length, max_target_length, shard_size,
                      list(zip(ids, sources, targets)))
    folder = cache / f"logits-{key}" if cache is not None else None

    def shard_rows(items: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
        if model is None:
            raise RuntimeError(f"teacher logits: a shard is not cached in {folder} and no teacher was given")
        feats = encode(tokenizer, [s for _, s, _ in items], [t for _, _, t in items], max_input_length,
                       max_target_length, causal=is_causal(model))
        rows: list[dict[str, Any]] = [{}] * len(feats)
        device = next(model.parameters()).device
        for idx in length_batches([len(f["input_ids"]) for f in feats], batch_size):
            batch = {k: v.to(device) for k, v in collate([feats[i] for i in idx], tokenizer.pad_token_id).items()}
            for i, row in zip(idx, _sparse_batch(model, batch, top_k, temperature)):
                rows[i] = {"id": items[i][0], **row}
        return rows

    return sharded(list(zip(ids, sources, targets)), ids, shard_size, folder, shard_rows, "teacher logits", "kd-shard")


def check_vocabularies(teacher_size: int, student_size: int, teacher: str = "", student: str = "") -> None:
    """Logit distillation compares distributions token by token: both models must share one vocabulary.
    `teacher` / `student` name the models in the message."""
    if teacher_size != student_size:
        who = (f" ({teacher})" if teacher else "", f" ({student})" if student else "")
        raise ConfigError(f"distill.variants: kd needs the teacher and the student to share a vocabulary, but the "
                          f"teacher's{who[0]} has {teacher_size:,} entries and the student's{who[1]} {student_size:,}; "
                          "word-level variants (match:<method>, rationales) work across vocabularies")


# ---- the student's side: the loss ------------------------------------------------------------------

def pad_sparse(features: list[dict[str, Any]], width: int) -> dict[str, torch.Tensor]:
    """Batch tensors kd_ids, kd_logits (batch, width, K) and kd_log_norm, kd_mask (batch, width) from features'
    per-token lists (right-padded; `width` is the batch's target length)."""
    k = len(features[0]["kd_ids"][0])
    ids = torch.zeros(len(features), width, k, dtype=torch.long)
    logits = torch.zeros(len(features), width, k)
    log_norm = torch.zeros(len(features), width)
    mask = torch.zeros(len(features), width)
    for r, f in enumerate(features):
        n = min(width, len(f["kd_ids"]))
        ids[r, :n] = torch.tensor(f["kd_ids"][:n])
        logits[r, :n] = torch.tensor(f["kd_logits"][:n])
        log_norm[r, :n] = torch.tensor(f["kd_log_norm"][:n])
        mask[r, :n] = 1
    return {"kd_ids": ids, "kd_logits": logits, "kd_log_norm": log_norm, "kd_mask": mask}


def _with_rest(logp: torch.Tensor) -> torch.Tensor:
    """(..., K) log-probabilities -> (..., K + 1) with the log of the remaining mass appended.

    A rest of (rounding-)zero mass is floored at 1e-30, so that a divergence stays finite; its weight
    in every term is then ~1e-30.
    """
    rest = 1 - logp.exp().sum(-1, keepdim=True)
    return torch.cat([logp, torch.log(rest.clamp(min=1e-30))], -1)


def _kl(p_log: torch.Tensor, q_log: torch.Tensor) -> torch.Tensor:
    """sum_i p_i (log p_i - log q_i) over the last dim; a bucket with p_i = 0 adds 0."""
    p = p_log.exp()
    return torch.where(p > 0, p * (p_log - q_log), torch.zeros_like(p)).sum(-1)


def sparse_divergence(student_logits: torch.Tensor, kd_ids: torch.Tensor, kd_logits: torch.Tensor,
                      kd_log_norm: torch.Tensor, temperature: float, divergence: Divergence = "forward_kl",
                      beta: float = 0.5) -> torch.Tensor:
    """(...,) D(p_teacher^T || p_student^T) per token over the teacher's top-K tokens plus the rest bucket.

    student_logits (..., V); kd_ids / kd_logits (..., K); kd_log_norm (...) = log sum_v exp(z_teacher_v / T).
    """
    s_all = (student_logits.float() / temperature).log_softmax(-1)
    p = _with_rest(kd_logits / temperature - kd_log_norm.unsqueeze(-1))
    q = _with_rest(s_all.gather(-1, kd_ids))
    if divergence == "forward_kl":
        return _kl(p, q)
    if divergence == "reverse_kl":
        return _kl(q, p)
    if divergence == "jsd":
        m = torch.logsumexp(torch.stack([p + torch.log(torch.tensor(beta)),
                                         q + torch.log(torch.tensor(1 - beta))]), 0)
        return beta * _kl(p, m) + (1 - beta) * _kl(q, m)
    raise ConfigError(f"distill.kd_divergence: expected one of {', '.join(DIVERGENCES)}, got {divergence!r}")


def kd_loss(target_logits: torch.Tensor, ce: torch.Tensor, batch: dict[str, torch.Tensor], alpha: float,
            temperature: float, divergence: Divergence = "forward_kl", beta: float = 0.5) -> torch.Tensor:
    """(1 - alpha) * ce + alpha * T^2 * (mean over the batch's target tokens of the sparse divergence).

    target_logits (batch, >= width, V): the student's logits at its target tokens, in target order (a seq2seq
    model's logits as they come, a causal model's from `trainer.label_loss`).
    """
    mask = batch["kd_mask"]
    d = sparse_divergence(target_logits[:, :mask.shape[1]], batch["kd_ids"], batch["kd_logits"], batch["kd_log_norm"],
                          temperature, divergence, beta)
    return (1 - alpha) * ce + alpha * temperature ** 2 * (d * mask).sum() / mask.sum().clamp(min=1)


@dataclass(frozen=True)
class KDLoss:
    """The kd objective's loss (registry.variants.OBJECTIVES["kd"]): `kd_loss` with its settings, called as the trainer
    calls an objective's loss, (target logits, the label's cross-entropy, the batch's kd_* tensors) -> loss."""

    alpha: float = 0.5
    temperature: float = 2.0
    divergence: Divergence = "forward_kl"
    beta: float = 0.5

    def __call__(self, target_logits: torch.Tensor, ce: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return kd_loss(target_logits, ce, batch, self.alpha, self.temperature, self.divergence, self.beta)
