"""Tokenised features and padded batches, shared by training, attribution and evaluation.

    feats = encode(tok, ["predict: a b"], ["x"], max_input_length=128, max_target_length=32)
    batch = collate(feats, pad_id=tok.pad_token_id)   # input_ids, attention_mask, labels (-100 on padding)

`encode` is the one place that decides how a (source, target) pair is laid out for a model:

- seq2seq (encoder-decoder, `causal=False`): input_ids = the source (as the tokenizer encodes it),
  labels = the target and its </s>.
- causal (decoder-only, `causal=True`): one sequence, input_ids = prompt + target + eos, where the
  prompt is the source followed by CAUSAL_SEPARATOR; labels = -100 on the prompt, then the target
  tokens (the model shifts them itself). `prompt_length` counts the prompt tokens. Offsets, when
  asked, cover the prompt; separator and target tokens get (0, 0), so they never map to a word.

Everything else reads the layout: `is_causal(model)` says which one a model needs, `without_tokens`
deletes input tokens in either layout, `collate` pads right (training, attribution) or left
(`padding_side="left"`: a decoder-only model generates after the last token of each row).
"""

from __future__ import annotations

import logging
from typing import Any, Iterator, Sequence

import torch

from attrdistill.errors import ConfigError

log = logging.getLogger(__name__)

# Between prompt and target of a decoder-only model: the answer starts on a new line. Word-level
# tokenizers drop it (not a word), byte-level BPE ones give it a token of its own.
CAUSAL_SEPARATOR = "\n"


def is_causal(model: Any) -> bool:
    """True for a decoder-only model: its config says it is not an encoder-decoder.

    A model without a transformers config (a test double) keeps the seq2seq layout, as before.
    """
    config = getattr(model, "config", None)
    return config is not None and not getattr(config, "is_encoder_decoder", False)


def encode(tokenizer: Any, sources: Sequence[str], targets: Sequence[str] | None, max_input_length: int,
           max_target_length: int, offsets: bool = False, causal: bool = False) -> list[dict[str, Any]]:
    """One feature dict per pair: input_ids, labels (if targets), offset_mapping (if asked); see the module doc."""
    if causal:
        return _encode_causal(tokenizer, sources, targets, max_input_length, max_target_length, offsets)
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


def _encode_causal(tokenizer: Any, sources: Sequence[str], targets: Sequence[str] | None, max_input_length: int,
                   max_target_length: int, offsets: bool) -> list[dict[str, Any]]:
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ConfigError("a decoder-only model needs a tokenizer with an eos token (it ends every target)")
    # The source alone, so its offsets are those of the text; special tokens as the tokenizer adds them (a BOS).
    enc = tokenizer(list(sources), truncation=True, max_length=max_input_length, return_offsets_mapping=offsets)
    _warn_truncated(enc, "inputs", "max_input_length", max_input_length)
    source_offsets = enc["offset_mapping"] if offsets else [[(0, 0)] * len(ids) for ids in enc["input_ids"]]
    sep = list(tokenizer(CAUSAL_SEPARATOR, add_special_tokens=False)["input_ids"])
    target_ids: list[list[int]] = [[] for _ in sources]
    if targets is not None:
        # One token is kept for the eos that ends every target: generation must learn to stop.
        enc_t = tokenizer(list(targets), add_special_tokens=False, truncation=True,
                          max_length=max(1, max_target_length - 1))
        _warn_truncated(enc_t, "targets", "max_target_length", max_target_length)
        target_ids = [list(ids) + [eos] for ids in enc_t["input_ids"]]
    out = []
    for ids, off, target in zip(enc["input_ids"], source_offsets, target_ids):
        ids, off = list(ids), [tuple(o) for o in off]
        # A post-processor's final </s>: in one sequence eos ends the target, not the prompt.
        if ids and ids[-1] == eos:
            ids, off = ids[:-1], off[:-1]
        prompt = ids + sep
        row: dict[str, Any] = {"input_ids": prompt + target, "prompt_length": len(prompt)}
        if targets is not None:
            row["labels"] = [-100] * len(prompt) + target
        if offsets:
            row["offset_mapping"] = off + [(0, 0)] * (len(sep) + len(target))
        out.append(row)
    return out


def without_tokens(feat: dict[str, Any], drop: Sequence[bool]) -> dict[str, list[int]]:
    """{input_ids, labels} of `feat` with the input tokens flagged in `drop` deleted, in either layout.

    In the causal layout labels run beside input_ids, so they lose the same positions; only prompt
    tokens may be dropped (the target is what is being scored).
    """
    ids = [t for t, d in zip(feat["input_ids"], drop) if not d]
    if "prompt_length" not in feat:
        return {"input_ids": ids, "labels": feat["labels"]}
    if any(drop[feat["prompt_length"]:]):
        raise ValueError("without_tokens: only prompt tokens can be deleted from a causal sequence")
    return {"input_ids": ids, "labels": [lab for lab, d in zip(feat["labels"], drop) if not d],
            "prompt_length": feat["prompt_length"] - sum(drop)}


def _warn_truncated(enc: Any, what: str, field: str, limit: int) -> None:
    """One summary warning per call: how many texts lost tokens to truncation (fast tokenizers record it)."""
    encodings = getattr(enc, "encodings", None) or []
    n = sum(bool(e.overflowing) for e in encodings)
    if n:
        log.warning("%d of %d %s are longer than %s=%d tokens and were truncated", n, len(encodings), what, field,
                    limit)


def _pad(seqs: list[list[int]], value: int, side: str = "right") -> torch.Tensor:
    width = max(len(s) for s in seqs)
    if side == "left":
        return torch.tensor([[value] * (width - len(s)) + s for s in seqs], dtype=torch.long)
    return torch.tensor([s + [value] * (width - len(s)) for s in seqs], dtype=torch.long)


def collate(features: list[dict[str, Any]], pad_id: int = 0, padding_side: str = "right") -> dict[str, torch.Tensor]:
    """Pad `input_ids`/`labels` and any `<prefix>_input_ids`/`<prefix>_labels` pair (two-task batches).

    Right padding suits training and teacher-forced scoring (positions start at 0 in every row);
    a decoder-only model generates with left padding, so that every row ends at its last real token.
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side: expected left or right, got {padding_side!r}")
    batch: dict[str, torch.Tensor] = {}
    for key in features[0]:
        if key.endswith("input_ids"):
            ids = _pad([f[key] for f in features], pad_id, padding_side)
            batch[key] = ids
            batch[key.replace("input_ids", "attention_mask")] = _pad([[1] * len(f[key]) for f in features], 0,
                                                                     padding_side)
        elif key.endswith("labels"):
            batch[key] = _pad([f[key] for f in features], -100, padding_side)
    return batch


def length_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Indices grouped into batches of similar length (less padding), in a fixed order."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]
