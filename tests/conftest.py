"""Shared fixtures: tiny models built from config, the built-in task's tokenizer, the shared/ folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, T5Config, T5ForConditionalGeneration

from attrdistill.data.synthetic import generate
from attrdistill.modeling.models import build_word_tokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SHARED = Path(os.environ.get("ATTRDISTILL_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))


@pytest.fixture(scope="session")
def shared() -> Path:
    assert (SHARED / "tokenizers" / "t5" / "spiece.model").is_file(), f"shared/ not found at {SHARED}"
    return SHARED


@pytest.fixture(scope="session")
def examples():
    return generate(12, seed=3)


@pytest.fixture(scope="session")
def word_tok(examples):
    return build_word_tokenizer([t for ex in generate(200, seed=0) for t in (ex.input, ex.label)] + ["predict: x"])


def tiny_t5(vocab_size: int, seed: int = 0, feed_forward_proj: str = "gated-gelu") -> T5ForConditionalGeneration:
    """A 2+2-layer T5 with Flan-T5's (T5 v1.1) gated-GELU block; feed_forward_proj="relu" gives the original T5's.

    Smooth by default because tests compare gradients computed with different batch shapes, and the
    kernels' float32 rounding then differs by ~1e-7. Under ReLU that is enough to flip a pre-activation
    lying within 1e-7 of 0 and so switch its unit's gradient on or off: integrated gradients, which
    evaluates the model at interpolated points, hit one such unit (seed 1, path point 0.898: 2e-8 in a
    batch, -1.4e-7 alone) and a score moved by 7e-5. That is the gradient's true discontinuity, not
    noise a tolerance should absorb.
    """
    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=vocab_size, d_model=32, d_ff=64, d_kv=8, num_layers=2, num_heads=4,
                   decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, dropout_rate=0.0,
                   feed_forward_proj=feed_forward_proj)
    return T5ForConditionalGeneration(cfg).eval()


def tiny_llama(vocab_size: int, seed: int = 0, layers: int = 2, pad: int = 0, eos: int = 1) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, pad_token_id=pad, eos_token_id=eos,
                      bos_token_id=None, tie_word_embeddings=False)
    return LlamaForCausalLM(cfg).eval()
