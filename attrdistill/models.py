"""Models and tokenizers: a pretrained seq2seq model by hub id or directory, or a T5 built from config.

    tok = load_tokenizer(cfg.teacher, fallback_dir=run / "tokenizer")
    model = load_model(cfg.teacher, tok)                  # pretrained or from scratch
    model = load_trained(run / "teacher" / "model")       # a model a stage saved

Nothing here downloads unless a config names a hub id: from-scratch models use the word-level
tokenizer that `build_word_tokenizer` makes from the task's own text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch
from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
from transformers import (AutoModelForSeq2SeqLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerFast,
                          T5Config, T5ForConditionalGeneration, set_seed)

from attrdistill.config import ModelConfig
from attrdistill.distributed import launched, state
from attrdistill.words import WORD_RE

SPECIALS = ["<pad>", "</s>", "<unk>"]   # ids 0, 1, 2: T5's convention
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def build_word_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over every word in `texts`, with T5's special ids and a final </s>."""
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for text in texts:
        for word in WORD_RE.findall(text):
            vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    # Keep the matches, drop the whitespace between them: tokens are exactly attrdistill.words' words.
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(WORD_RE.pattern), behavior="removed", invert=True)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def load_tokenizer(cfg: ModelConfig, fallback_dir: Path | None = None) -> PreTrainedTokenizerFast:
    """The configured tokenizer, else the pretrained model's, else the run's own (from `fallback_dir`)."""
    source = cfg.tokenizer or cfg.model or (str(fallback_dir) if fallback_dir else None)
    if source is None:
        raise ValueError("no tokenizer: set model or tokenizer, or build the task's tokenizer first")
    return AutoTokenizer.from_pretrained(source)


def load_model(cfg: ModelConfig, tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> PreTrainedModel:
    """Pretrained weights when `cfg.model` is set, else a T5 of the configured size, seeded."""
    set_seed(seed)
    # Trainable weights stay float32; cfg.dtype is the compute dtype (mixed precision on a GPU).
    if cfg.model:
        model = AutoModelForSeq2SeqLM.from_pretrained(cfg.model, dtype=torch.float32)
    else:
        config = T5Config(vocab_size=len(tokenizer), d_model=cfg.d_model, d_ff=cfg.d_ff, d_kv=cfg.d_model // cfg.num_heads,
                          num_layers=cfg.num_layers, num_heads=cfg.num_heads, dropout_rate=cfg.dropout,
                          decoder_start_token_id=tokenizer.pad_token_id, pad_token_id=tokenizer.pad_token_id,
                          eos_token_id=tokenizer.eos_token_id)
        model = T5ForConditionalGeneration(config)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    return model


def device() -> torch.device:
    """This process's device: its own GPU under `accelerate launch`, else the GPU if there is one."""
    if launched():
        return state().device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_trained(path: Path, dtype: str = "float32") -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """A model and tokenizer saved by a stage, in eval mode on the GPU if there is one, in `dtype`."""
    model = AutoModelForSeq2SeqLM.from_pretrained(path, dtype=DTYPES[dtype])
    return model.to(device()).eval(), AutoTokenizer.from_pretrained(path)
