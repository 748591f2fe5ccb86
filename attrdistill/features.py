"""Tokenised features and padded batches, shared by training, attribution and evaluation.

    feats = encode(tok, ["predict: a b"], ["x"], max_input_length=128, max_target_length=32)
    batch = collate(feats, pad_id=tok.pad_token_id)   # input_ids, attention_mask, labels (-100 on padding)
"""

from __future__ import annotations

import logging
from typing import Any, Iterator, Sequence

import torch

log = logging.getLogger(__name__)


def encode(tokenizer: Any, sources: Sequence[str], targets: Sequence[str] | None, max_input_length: int,
           max_target_length: int, offsets: bool = False) -> list[dict[str, list]]:
    """One feature dict per pair: input_ids, labels (if targets), offset_mapping (if asked)."""
    enc = tokenizer(list(sources), truncation=True, max_length=max_input_length, return_offsets_mapping=offsets)
    _warn_truncated(enc, "inputs", "max_input_length", max_input_length)
    out = [{"input_ids": ids} for ids in enc["input_ids"]]
    if offsets:
        for row, off in zip(out, enc["offset_mapping"]):
            row["offset_mapping"] = [tuple(o) for o in off]
    if targets is not None:
        enc_t = tokenizer(text_target=list(targets), truncation=True, max_length=max_target_length)
        _warn_truncated(enc_t, "targets", "max_target_length", max_target_length)
        for row, lab in zip(out, enc_t["input_ids"]):
            row["labels"] = lab
    return out


def _warn_truncated(enc: Any, what: str, field: str, limit: int) -> None:
    """One summary warning per call: how many texts lost tokens to truncation (fast tokenizers record it)."""
    encodings = getattr(enc, "encodings", None) or []
    n = sum(bool(e.overflowing) for e in encodings)
    if n:
        log.warning("%d of %d %s are longer than %s=%d tokens and were truncated", n, len(encodings), what, field, limit)


def _pad(seqs: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    return torch.tensor([s + [value] * (width - len(s)) for s in seqs], dtype=torch.long)


def collate(features: list[dict[str, Any]], pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Pad `input_ids`/`labels` and any `<prefix>_input_ids`/`<prefix>_labels` pair (two-task batches)."""
    batch: dict[str, torch.Tensor] = {}
    for key in features[0]:
        if key.endswith("input_ids"):
            ids = _pad([f[key] for f in features], pad_id)
            batch[key] = ids
            batch[key.replace("input_ids", "attention_mask")] = _pad([[1] * len(f[key]) for f in features], 0)
        elif key.endswith("labels"):
            batch[key] = _pad([f[key] for f in features], -100)
    return batch


def length_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Indices grouped into batches of similar length (less padding), in a fixed order."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]
