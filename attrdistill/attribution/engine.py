"""The attribution engine: score every input word of every example, then pick the top-k as its rationale.

    rows = attribute(examples, "saliency", model, tok, cfg.attribution, prefix="predict: ", cache=run / "cache")
    rows[0].rationale           # "compass, valley, took, ..."  (top-k words)

Two steps: `score` computes per-token scores (per-word for word-level methods) shard by shard and
caches each shard under a key made of everything the scores depend on; `select` turns scores into
word scores (aggregation) and rationales (k, order, filters; `select.py`). A different k, order, aggregation or
stop-word list therefore needs no recomputation, a rerun reuses every shard, an interrupted run
resumes at the next one, and under `accelerate launch` each process computes its share of shards.

Methods: the registry `attrdistill.registry.methods` (one entry each: its kind, score function and the fields
its scores depend on); saliency (the paper's), saliency_stepwise, input_x_gradient, integrated_gradients,
occlusion, and random (seeded uniform word scores, the paper's control). Dispatch goes by an entry's kind.

Options that change scoring enter the shard key only when they differ from their defaults, so
older caches stay valid: `quantity` (what is explained per target token), `order: aligned` (which
also stores per-target-token "step" scores: records get step_token_scores or, for occlusion,
step_word_scores; rows get step_scores) and `teacher_wrong: drop` (records and rows get
teacher_correct; a wrong example's rationale is empty). `mass` only selects.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

from attrdistill.attribution.select import select
from attrdistill.config import AttributionConfig
from attrdistill.data.example import Example
from attrdistill.errors import ConfigError
from attrdistill.evaluate.predict import predict
from attrdistill.modeling.features import collate, encode, is_causal, length_batches
from attrdistill.modeling.words import token_to_word, word_spans
from attrdistill.pipeline.shards import sharded
from attrdistill.pipeline.store import fingerprint
from attrdistill.registry import methods

log = logging.getLogger(__name__)


def scoring_params(method: str, cfg: AttributionConfig) -> dict[str, Any]:
    """The parameters a method's scores depend on, for the shard key.

    The newer options appear only when not at their defaults, so a default config keeps the key
    (and the cache) it always had. Seeded scores (random words) depend on none of them.
    """
    entry = methods.entry(method)
    params: dict[str, Any] = {f: getattr(cfg, f) for f in entry.fields}
    if entry.seeded:
        return params
    if entry.explained(cfg.quantity) != entry.explained("logit"):
        params["quantity"] = cfg.quantity
    if cfg.order == "aligned":
        params["steps"] = True
    if cfg.teacher_wrong == "drop":
        params["teacher_wrong"] = "drop"
    return params


def cache_key(examples: list[Example], method: str, cfg: AttributionConfig, prefix: str = "",
              max_input_length: int = 512, max_target_length: int = 128, seed: int = 0, model_key: str = "") -> str:
    """The shard folder's key: the model, the examples, the method and everything its scores depend on.

    Seeded scores depend on the seed and not on the target; model-based ones the other way round."""
    seeded = methods.entry(method).seeded
    return fingerprint(method, scoring_params(method, cfg), None if seeded else cfg.target, prefix,
                       max_input_length, max_target_length, seed if seeded else None, model_key,
                       cfg.shard_size, [(ex.id, ex.input, ex.label) for ex in examples])


def attribute(examples: list[Example], method: str, model: Any, tokenizer: Any, cfg: AttributionConfig,
              prefix: str = "", max_input_length: int = 512, max_target_length: int = 128, seed: int = 0,
              cache: Path | None = None, model_key: str = "",
              scaffolds: list[list[int]] | None = None) -> list[dict[str, Any]]:
    """One row per example: id, target, words, word scores, top-k word indices and the rationale text.
    scaffolds: per example, the word indices of its input's format, never rationale words (`select`)."""
    records = score(examples, method, model, tokenizer, cfg, prefix, max_input_length, max_target_length, seed,
                    cache, model_key)
    return select(records, examples, cfg, scaffolds)


def score(examples: list[Example], method: str, model: Any, tokenizer: Any, cfg: AttributionConfig,
          prefix: str = "", max_input_length: int = 512, max_target_length: int = 128, seed: int = 0,
          cache: Path | None = None, model_key: str = "") -> list[dict[str, Any]]:
    """Score records {id, target, token_word, token_scores, word_scores}, one per example, in order.

    Only when asked: step_token_scores / step_word_scores (order aligned: one list per content target
    token) and teacher_correct (teacher_wrong drop).

    With `cache`, shards live in cache/<method>-<key>/shard-NNNNN.jsonl, where the key covers the
    model (`model_key`: the caller's fingerprint of the weights), the examples, the method and its
    scoring parameters. Under several processes each computes the shards of its rank, then all read all.
    """
    entry = methods.entry(method)   # a ConfigError naming the choices for an unknown method
    if cfg.order == "aligned" and not entry.aligned and not entry.seeded:
        raise ConfigError(f"attribution.order: aligned needs per-target-token scores, which {method} does not give; "
                          f"it works with {', '.join(methods.aligned_names())}")
    key = cache_key(examples, method, cfg, prefix, max_input_length, max_target_length, seed, model_key)
    return sharded(examples, [ex.id for ex in examples], cfg.shard_size,
                   cache / f"{method}-{key}" if cache is not None else None,
                   lambda shard: _score_shard(shard, method, model, tokenizer, cfg, prefix, max_input_length,
                                              max_target_length, seed),
                   f"attribution {method}", "shard", split=True)


def random_word_scores(examples: list[Example], n_words: list[int], seed: int) -> list[list[float]]:
    """The random control's word scores, uniform in [0, 1) (the "seeded" kind of `attrdistill.registry.methods`).

    Seeded per example, so results do not depend on batching, sharding or process count."""
    rngs = [random.Random(f"{seed}:{ex.id}") for ex in examples]
    return [[rng.random() for _ in range(n)] for rng, n in zip(rngs, n_words)]


def _score_shard(examples: list[Example], method: str, model: Any, tokenizer: Any, cfg: AttributionConfig,
                 prefix: str, max_input_length: int, max_target_length: int, seed: int) -> list[dict]:
    entry = methods.entry(method)
    spans = [word_spans(ex.input) for ex in examples]
    if entry.seeded:
        scores = entry.function()(examples, [len(sp) for sp in spans], seed)
        return [{"id": ex.id, "target": ex.label, "token_word": None, "token_scores": None, "word_scores": sc}
                for ex, sc in zip(examples, scores)]
    sources = [prefix + ex.input for ex in examples]
    targets = [ex.label for ex in examples]
    predictions = None
    if cfg.target == "prediction" or cfg.teacher_wrong == "drop":
        predictions = predict(model, tokenizer, sources, cfg.batch_size, max_target_length, max_input_length)
    if cfg.target == "prediction":
        targets = predictions
    feats = encode(tokenizer, sources, targets, max_input_length, max_target_length, offsets=True,
                   causal=is_causal(model))
    for f, sp in zip(feats, spans):
        f["token_word"] = token_to_word(f.pop("offset_mapping"), sp, shift=len(prefix))
    rows = [{"id": ex.id, "target": t, "token_word": f["token_word"], "token_scores": None, "word_scores": None}
            for ex, t, f in zip(examples, targets, feats)]
    if cfg.teacher_wrong == "drop":
        for row, ex, p in zip(rows, examples, predictions):
            row["teacher_correct"] = p == ex.label.strip()   # predict strips its output
    aligned = cfg.order == "aligned"
    # Steps for the label's own tokens only: </s> (and any other special token) explains no word choice.
    special = set(tokenizer.all_special_ids) | {tokenizer.pad_token_id} if aligned else set()
    if entry.kind == "word":
        _score_words(rows, feats, [len(s) for s in spans], method, model, tokenizer.pad_token_id, cfg, special)
    else:
        _score_tokens(rows, feats, method, model, tokenizer.pad_token_id, cfg, special)
    return rows


def _score_words(rows: list[dict], feats: list[dict], n_words: list[int], method: str, model: Any, pad_id: int,
                 cfg: AttributionConfig, special: set[int]) -> None:
    """A "word" kind method's word scores (and, under order aligned, its step_word_scores) into `rows`."""
    entry, aligned = methods.entry(method), cfg.order == "aligned"
    args = (model, feats, n_words, pad_id, cfg.batch_size, entry.explained(cfg.quantity))
    scores, steps = entry.function(steps=True)(*args) if aligned else (entry.function()(*args), None)
    for i, (row, f, sc) in enumerate(zip(rows, feats, scores)):
        row["word_scores"] = sc.tolist()
        if aligned:
            row["step_word_scores"] = steps[i][content_steps(f["labels"], special)].tolist()


def _score_tokens(rows: list[dict], feats: list[dict], method: str, model: Any, pad_id: int, cfg: AttributionConfig,
                  special: set[int]) -> None:
    """A "token" kind method's token scores (and, under order aligned, its step_token_scores) into `rows`,
    batched by length."""
    entry, aligned = methods.entry(method), cfg.order == "aligned"
    device = next(model.parameters()).device
    for idx in length_batches([len(f["input_ids"]) for f in feats], cfg.batch_size):
        batch = {k: v.to(device) for k, v in collate([{k: feats[i][k] for k in ("input_ids", "labels")}
                                                      for i in idx], pad_id).items()}
        if aligned:
            token_scores, steps = entry.function(steps=True)(model, batch, cfg)
            steps = steps.detach().float().cpu()
        else:
            token_scores = entry.function()(model, batch, cfg)
        token_scores = token_scores.detach().float().cpu()
        for r, i in enumerate(idx):
            n = len(feats[i]["input_ids"])
            rows[i]["token_scores"] = token_scores[r, :n].tolist()
            if aligned:
                rows[i]["step_token_scores"] = steps[r, content_steps(feats[i]["labels"], special), :n].tolist()


def content_steps(labels: list[int], special: set[int]) -> list[int]:
    """Target positions (0 = the first target token) whose token is not special (</s>, pad, ...).

    Either layout: a causal row's labels are -100 on the prompt, then the target.
    """
    target = [t for t in labels if t != -100]
    return [j for j, t in enumerate(target) if t not in special]
