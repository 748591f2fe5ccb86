"""Models and tokenizers: pretrained (hub id, directory or GGUF file), or built from config.

    tok = load_tokenizer(cfg.teacher, fallback_dir=run / "tokenizer")
    model = load_model(cfg.teacher, tok)                  # pretrained or from scratch
    model = load_trained(run / "teacher" / "model")       # a model a stage saved

A pretrained model is an encoder-decoder (AutoModelForSeq2SeqLM) or a decoder-only model
(AutoModelForCausalLM), whichever its config says (`is_encoder_decoder`). `gguf_file` names a GGUF
file (llama.cpp's format; SmolLM2 ships as one): transformers dequantizes it to a plain float model
and reads the tokenizer from the same file. `keep_every: n` keeps transformer blocks 0, n, 2n, ...
of a pretrained model (`keep_blocks` names them; `keep_by: influence` keeps the blocks that change their
input most instead), the usual way to start a smaller student from bigger weights; `init: teacher`
starts the student from the run's fine-tuned teacher itself.
From scratch, `architecture` picks a T5 or a Llama of the configured size.

Nothing here downloads unless a config names a hub id: from-scratch models use the word-level
tokenizer that `build_word_tokenizer` makes from the task's own text.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

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

from attrdistill.config import INFLUENCE_EXAMPLES, ModelConfig, gguf_path
from attrdistill.distributed import launched, state
from attrdistill.errors import ConfigError
from attrdistill.features import collate, encode, is_causal
from attrdistill.words import WORD_RE

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
    # Trainable weights stay float32; cfg.dtype is the compute dtype (mixed precision on a GPU).
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


def _stacks(model: PreTrainedModel, field: str = "keep_every") -> list[tuple[Any, str]]:
    """(module, attribute) of each list of transformer blocks: T5's encoder and decoder, or a decoder's layers."""
    if model.config.is_encoder_decoder:
        if not all(hasattr(getattr(model, part, None), "block") for part in ("encoder", "decoder")):
            raise ConfigError(f"{field}: {type(model).__name__} is not a T5-style model (encoder.block, decoder.block)")
        return [(model.encoder, "block"), (model.decoder, "block")]
    base = model.base_model
    if not isinstance(getattr(base, "layers", None), torch.nn.ModuleList):
        raise ConfigError(f"{field}: {type(model).__name__} has no `layers` list of decoder blocks")
    return [(base, "layers")]


def keep_every_nth(model: PreTrainedModel, n: int) -> PreTrainedModel:
    """Keep blocks 0, n, 2n, ... of every block stack, in place (see `keep_blocks`)."""
    if n < 1:
        raise ConfigError(f"keep_every: expected n >= 1, got {n}")
    return _keep(model, lambda count, stack: list(range(0, count, n)), "keep_every")


def keep_influential(model: PreTrainedModel, n: int, batches: Sequence[dict[str, torch.Tensor]]) -> PreTrainedModel:
    """Keep as many blocks of every stack as `keep_every_nth(model, n)` would, but those with the highest
    `block_influence` on `batches`, in place; a T5 keeps block 0 (its position bias) whatever its influence."""
    influence = block_influence(model, batches)

    def chosen(count: int, stack: int) -> list[int]:
        fixed = [0] if model.config.is_encoder_decoder else []
        ranked = sorted((i for i in range(count) if i not in fixed), key=lambda i: -influence[stack][i])
        return sorted(fixed + ranked[:len(range(0, count, n)) - len(fixed)])
    return _keep(model, chosen, "keep_by")


def block_influence(model: PreTrainedModel, batches: Sequence[dict[str, torch.Tensor]]) -> list[list[float]]:
    """Per block stack, per block: 1 - the mean cosine similarity of the block's input and output hidden states
    over the real tokens of `batches` (ShortGPT's Block Influence, Men et al. 2024).

    A block whose output is nearly its input does least; the residual stream makes such blocks common in a
    deep model, and dropping them hurts far less than dropping blocks by position (measured on SmolLM2: see
    configs/esnli-smollm2.yaml). A batch holds input_ids, attention_mask and labels (-100 where no target).
    """
    stacks = [getattr(module, attr) for module, attr in _stacks(model, "keep_by")]
    sums = [[0.0] * len(blocks) for blocks in stacks]
    tokens = [0] * len(stacks)
    masks: list[torch.Tensor] = []   # the current batch's real tokens, per stack (a T5 decoder sees the targets)

    def recorder(stack: int, index: int) -> Any:
        def record(module: Any, args: tuple, kwargs: dict, output: Any) -> None:
            before = args[0] if args else kwargs["hidden_states"]
            after = output[0] if isinstance(output, tuple) else output
            keep = masks[stack]
            cosine = torch.nn.functional.cosine_similarity(before[keep].float(), after[keep].float(), dim=-1)
            sums[stack][index] += (1 - cosine).sum().item()
        return record
    hooks = [block.register_forward_hook(recorder(s, i), with_kwargs=True)
             for s, blocks in enumerate(stacks) for i, block in enumerate(blocks)]
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                masks[:] = [m.to(model.device) for m in (batch["attention_mask"].bool(), batch["labels"] != -100)]
                for s in range(len(stacks)):
                    tokens[s] += int(masks[s].sum())
                # A T5's decoder runs on the targets; a decoder-only model needs no logits here.
                wanted = ("input_ids", "attention_mask", "labels")[:2 + (len(stacks) > 1)]
                model(**{k: batch[k].to(model.device) for k in wanted})
    finally:
        for hook in hooks:
            hook.remove()
        model.train(training)
    return [[total / max(tokens[s], 1) for total in row] for s, row in enumerate(sums)]


def calibration_batches(model: PreTrainedModel, tokenizer: Any, pairs: Sequence[tuple[str, str]],
                         cfg: ModelConfig) -> list[dict[str, torch.Tensor]]:
    """The first INFLUENCE_EXAMPLES (source, target) pairs as padded batches in the model's layout."""
    pairs = list(pairs)[:INFLUENCE_EXAMPLES]
    if not pairs:
        raise ConfigError("keep_by: influence measures the blocks on training examples, but none were given")
    feats = encode(tokenizer, [s for s, _ in pairs], [t for _, t in pairs], cfg.max_input_length,
                   cfg.max_target_length, causal=is_causal(model))
    return [collate(feats[i:i + 16], tokenizer.pad_token_id) for i in range(0, len(feats), 16)]


def keep_blocks(model: PreTrainedModel, kept: list[int]) -> PreTrainedModel:
    """Keep the blocks with these indices of every block stack, in place; configs and cache indices follow.

    Each kept block's attention is renumbered (`layer_idx`), or the KV cache used in generation
    would address slots of blocks that no longer exist. A T5 must keep block 0: it holds the
    relative position bias that every block uses.
    """
    def chosen(count: int) -> list[int]:
        if not kept or kept != sorted(set(kept)) or kept[0] < 0 or kept[-1] >= count:
            raise ConfigError(f"keep_blocks: expected increasing block indices in 0..{count - 1}, got {kept}")
        if model.config.is_encoder_decoder and kept[0] != 0:
            raise ConfigError(f"keep_blocks: a T5 must keep block 0 (its relative position bias), got {kept}")
        return list(kept)
    return _keep(model, lambda count, stack: chosen(count), "keep_blocks")


def _keep(model: PreTrainedModel, chosen: Callable[[int, int], list[int]], field: str) -> PreTrainedModel:
    """Keep the blocks `chosen(count, stack index)` names of every stack."""
    for stack, (module, attr) in enumerate(_stacks(model, field)):
        blocks = list(getattr(module, attr))
        kept = chosen(len(blocks), stack)
        log.info("%s: keeping blocks %s of %d", field, kept, len(blocks))
        setattr(module, attr, torch.nn.ModuleList(blocks[i] for i in kept))
        for new_index, i in enumerate(kept):
            for sub in blocks[i].modules():
                if hasattr(sub, "layer_idx"):
                    sub.layer_idx = new_index
        _keep_in_config(module.config, kept)
    if model.config.is_encoder_decoder:   # the stacks hold copies of the model's config
        model.config.num_layers = len(model.encoder.block)
        model.config.num_decoder_layers = len(model.decoder.block)
    return model


def _keep_in_config(config: Any, kept: list[int]) -> None:
    """Write the kept blocks into a config: their count, and a per-layer list (`layer_types`) if it has one."""
    layer_types = getattr(config, "layer_types", None)
    if isinstance(layer_types, list) and len(layer_types) > kept[-1]:
        config.layer_types = [layer_types[i] for i in kept]
    config.num_hidden_layers = len(kept)   # T5 maps this name to num_layers


def device() -> torch.device:
    """This process's device: its own GPU under `accelerate launch`, else the GPU if there is one."""
    if launched():
        return state().device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_trained(path: Path, dtype: str = "float32") -> tuple[PreTrainedModel, Any]:
    """A model and tokenizer saved by a stage, in eval mode on the GPU if there is one, in `dtype`."""
    model = _load_pretrained(path, DTYPES[dtype])
    return model.to(device()).eval(), with_pad_token(AutoTokenizer.from_pretrained(path))
