"""Greedy predictions of a model, batched by length: what test accuracy and greedy validation judge.

    preds = predict(model, tok, ["predict: " + ex.input for ex in test], batch_size=128)
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from attrdistill.modeling.features import collate, encode, is_causal, length_batches
from attrdistill.pipeline.distributed import quiet


@torch.no_grad()
def predict(model: Any, tokenizer: Any, sources: Sequence[str], batch_size: int = 64, max_new_tokens: int = 64,
            max_input_length: int = 512) -> list[str]:
    """Greedy decoding of every source, batched by length; returns texts in input order.

    A decoder-only model gets the prompt layout of `features.encode`, left-padded so that every row
    continues from its own last token, and only the tokens it generates are decoded.
    """
    model.eval()
    causal = is_causal(model)
    feats = encode(tokenizer, sources, None, max_input_length, 0, causal=causal)
    device = next(model.parameters()).device
    # A causal model's own generation config may name other stop tokens than the eos its targets end with.
    stop = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id} if causal else {}
    out = [""] * len(sources)
    for idx in tqdm(list(length_batches([len(f["input_ids"]) for f in feats], batch_size)), desc="predict",
                    unit="batch", disable=quiet()):
        batch = collate([feats[i] for i in idx], tokenizer.pad_token_id, padding_side="left" if causal else "right")
        gen = model.generate(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                             max_new_tokens=max_new_tokens, num_beams=1, do_sample=False, **stop)
        if causal:
            gen = gen[:, batch["input_ids"].shape[1]:]
        for i, text in zip(idx, tokenizer.batch_decode(gen, skip_special_tokens=True)):
            out[i] = text.strip()
    return out
