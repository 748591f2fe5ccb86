"""Models and tokenizers: pretrained (hub id, directory or GGUF file), or built from config.

    tok = load_tokenizer(cfg.teacher, fallback_dir=run / "tokenizer")
    model = load_model(cfg.teacher, tok)                  # pretrained or from scratch
    model = load_trained(run / "teacher" / "model")       # a model a stage saved

A pretrained model is an encoder-decoder (AutoModelForSeq2SeqLM) or a decoder-only model
(AutoModelForCausalLM), whichever its config says (`is_encoder_decoder`). `gguf_file` names a GGUF
file (llama.cpp's format; SmolLM2 ships as one): transformers dequantizes it to a plain float model
and reads the tokenizer from the same file. `keep_every: n` keeps transformer blocks 0, n, 2n, ...
of a pretrained model (`keep_blocks` names them; `keep_by: influence` keeps the blocks that change their
input most instead; see `pruning.py`), the usual way to start a smaller student from bigger weights;
`init: teacher` starts the student from the run's fine-tuned teacher itself.
From scratch, `architecture` picks a T5 or a Llama of the configured size.

Nothing here downloads unless a config names a hub id: from-scratch models use the word-level
tokenizer that `build_word_tokenizer` makes from the task's own text.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
    set_seed,
)

from attrdistill.config import ModelConfig, gguf_path
from attrdistill.errors import ConfigError
from attrdistill.modeling.precision import compute_dtype, scoring_dtype
from attrdistill.modeling.pruning import calibration_batches, keep_blocks, keep_every_nth, keep_influential
from attrdistill.modeling.words import WORD_RE
from attrdistill.pipeline.distributed import launched, state

log = logging.getLogger(__name__)
SPECIALS = ["<pad>", "</s>", "<unk>"]   # ids 0, 1, 2: T5's convention
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# From-scratch Llama: RoPE needs no table of positions; this is only the declared context length.
LLAMA_MAX_POSITIONS = 4096


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


def gguf_location(cfg: ModelConfig) -> tuple[str, str]:
    """(folder or hub id, file name) of `cfg.gguf_file`: a path alone, or a file name inside `cfg.model`."""
    if cfg.gguf_file is None:
        raise ConfigError("gguf_location: the config names no gguf_file")
    path = gguf_path(cfg)
    if path is None:
        return str(cfg.model), cfg.gguf_file   # a GGUF file in a hub repository
    if not path.is_file():
        raise FileNotFoundError(f"gguf_file: {path} is not a file")
    return str(path.parent), path.name


def with_pad_token(tokenizer: Any) -> Any:
    """The tokenizer, with eos as its pad token when it has none (decoder-only tokenizers often lack one).

    Padding is always masked (attention_mask 0, labels -100), so reusing eos as pad changes no result.
    """
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ConfigError("the tokenizer has neither a pad nor an eos token; set `tokenizer` to one that has")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_tokenizer(cfg: ModelConfig, fallback_dir: Path | None = None) -> Any:
    """The configured tokenizer, else the pretrained model's (or GGUF file's), else the run's own (`fallback_dir`)."""
    if cfg.gguf_file and not cfg.tokenizer:
        folder, name = gguf_location(cfg)
        return with_pad_token(AutoTokenizer.from_pretrained(folder, gguf_file=name))
    source = cfg.tokenizer or cfg.model or (str(fallback_dir) if fallback_dir else None)
    if source is None:
        raise ConfigError("no tokenizer: set model or tokenizer, or build the task's tokenizer first")
    return with_pad_token(AutoTokenizer.from_pretrained(source))


def load_model(cfg: ModelConfig, tokenizer: Any, seed: int = 0, teacher: Path | None = None,
               calibration: Sequence[tuple[str, str]] = ()) -> PreTrainedModel:
    """Pretrained weights when `cfg.model` or `cfg.gguf_file` is set, the fine-tuned teacher saved at `teacher`
    with `init: teacher`, else a model of the configured size, seeded; then the blocks keep_* selects
    (`keep_by: influence` measures them on the first INFLUENCE_EXAMPLES (source, target) pairs of `calibration`)."""
    set_seed(seed)
    # Trainable weights stay float32; cfg.dtype is the compute dtype (mixed precision: precision.py).
    if cfg.init == "teacher":
        if teacher is None:
            raise ConfigError("init: teacher needs the fine-tuned teacher's folder")
        model = _load_pretrained(teacher, torch.float32)
    elif cfg.gguf_file:
        model = _load_gguf(cfg)
    elif cfg.model:
        model = _load_pretrained(cfg.model, torch.float32)
    elif cfg.architecture == "llama":
        model = _llama(cfg, tokenizer)
    else:
        model = _t5(cfg, tokenizer)
    if cfg.keep_blocks:
        keep_blocks(model, cfg.keep_blocks)
    elif cfg.keep_every > 1 and cfg.keep_by == "influence":
        keep_influential(model, cfg.keep_every, calibration_batches(model, tokenizer, calibration, cfg))
    elif cfg.keep_every > 1:
        keep_every_nth(model, cfg.keep_every)
    if model.config.pad_token_id is None:   # generation and the IG baseline read it
        model.config.pad_token_id = tokenizer.pad_token_id
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    return model


def _model_class(config: Any) -> type:
    return AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM


def _load_pretrained(source: str | Path, dtype: torch.dtype) -> PreTrainedModel:
    """An encoder-decoder or a decoder-only model, whichever the saved config says."""
    return _model_class(AutoConfig.from_pretrained(source)).from_pretrained(source, dtype=dtype)


def _load_gguf(cfg: ModelConfig) -> PreTrainedModel:
    """A causal LM from a GGUF file, dequantized to float32 so it trains like any other model."""
    folder, name = gguf_location(cfg)
    kwargs: dict[str, Any] = {}
    try:   # newer transformers can keep GGUF blocks packed (inference only); ask for plain weights
        from transformers import GgufConfig
        kwargs["quantization_config"] = GgufConfig(dequantize=True)
    except ImportError:   # older ones always dequantize
        pass
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32, **kwargs)
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        # The weights are dense floats; what is left is a marker that makes Trainer refuse to train.
        if any(not p.is_floating_point() for p in model.parameters()):
            raise ConfigError(f"{name}: transformers kept the GGUF weights quantized; they cannot be fine-tuned")
        quantizer.remove_quantization_config(model)
    return model


def _t5(cfg: ModelConfig, tokenizer: Any) -> PreTrainedModel:
    config = T5Config(vocab_size=len(tokenizer), d_model=cfg.d_model, d_ff=cfg.d_ff, d_kv=cfg.d_model // cfg.num_heads,
                      num_layers=cfg.num_layers, num_heads=cfg.num_heads, dropout_rate=cfg.dropout,
                      decoder_start_token_id=tokenizer.pad_token_id, pad_token_id=tokenizer.pad_token_id,
                      eos_token_id=tokenizer.eos_token_id)
    return T5ForConditionalGeneration(config)


def _llama(cfg: ModelConfig, tokenizer: Any) -> PreTrainedModel:
    """A decoder-only Llama: hidden d_model, feed-forward d_ff, num_layers blocks of num_heads heads."""
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=cfg.d_model, intermediate_size=cfg.d_ff,
                         num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
                         num_key_value_heads=cfg.num_heads, attention_dropout=cfg.dropout,
                         max_position_embeddings=LLAMA_MAX_POSITIONS, tie_word_embeddings=False,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=tokenizer.bos_token_id)
    return LlamaForCausalLM(config)


def device() -> torch.device:
    """This process's device: its own GPU under `accelerate launch`, else the GPU if there is one."""
    if launched():
        return state().device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_trained(path: Path, dtype: str = "float32", scoring: bool = False) -> tuple[PreTrainedModel, Any]:
    """A model and tokenizer saved by a stage, in eval mode on the GPU if there is one, in `dtype` (resolved by
    `precision.compute_dtype`, or with `scoring` -- attribution, faithfulness, kd logits -- `scoring_dtype`)."""
    model = _load_pretrained(path, DTYPES[(scoring_dtype if scoring else compute_dtype)(dtype)])
    return model.to(device()).eval(), with_pad_token(AutoTokenizer.from_pretrained(path))
