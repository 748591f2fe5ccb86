"""Pruning: a smaller model from bigger weights by keeping some of its transformer blocks.

    keep_every_nth(model, 3)                       # blocks 0, 3, 6, ...
    keep_blocks(model, [0, 10, 20, 29])            # these blocks
    keep_influential(model, 3, calibration_batches(model, tok, pairs, cfg))   # the third that change most

Block Influence (ShortGPT, Men et al. 2024) ranks a block by 1 - cosine of its input and output hidden
states over real tokens; `student.keep_by: influence` keeps the most influential share. Configs and KV-cache
indices follow the kept blocks, so a pruned model saves, loads and generates as any other.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

import torch
from transformers import PreTrainedModel

from attrdistill.config import INFLUENCE_EXAMPLES, ModelConfig
from attrdistill.errors import ConfigError
from attrdistill.modeling.blocks import Blocks
from attrdistill.modeling.features import collate, encode, is_causal

log = logging.getLogger(__name__)


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
    def chosen(count: int) -> list[int]:   # the config checks refuse the same before any work (blocks.py)
        problem = Blocks(count, bool(model.config.is_encoder_decoder)).kept_problem(kept)
        if problem:
            raise ConfigError(f"keep_blocks: {problem}")
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
