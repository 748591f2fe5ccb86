"""Attribution: score every input word of every example, then pick the top-k as its rationale.

    rows = attribute(examples, "saliency", model, tok, cfg.attribution, prefix="predict: ", cache=run / "cache")
    rows[0]["rationale"]        # "compass, valley, took, ..."  (top-k words)
    recall_at_k(rows, examples) # share of the decisive words found in the top-k

Two steps: `score` computes per-token scores (per-word for word-level methods) shard by shard and
caches each shard under a key made of everything the scores depend on; `select` turns scores into
word scores (aggregation) and rationales (k, order, filters). A different k, order, aggregation or
stop-word list therefore needs no recomputation, a rerun reuses every shard, an interrupted run
resumes at the next one, and under `accelerate launch` each process computes its share of shards.

Methods (METHODS): saliency (the paper's), saliency_stepwise, input_x_gradient,
integrated_gradients, occlusion, and random (seeded uniform word scores, the paper's control).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from attrdistill.attribution import gradients
from attrdistill.attribution.occlusion import occlusion
from attrdistill.config import AttributionConfig
from attrdistill.data.example import Example, read_jsonl, write_jsonl
from attrdistill.distributed import barrier, process
from attrdistill.evaluation import predict
from attrdistill.features import collate, encode, is_causal, length_batches
from attrdistill.store import crash_point, fingerprint
from attrdistill.words import ENGLISH_STOP_WORDS, aggregate, is_punctuation, token_to_word, word_spans

log = logging.getLogger(__name__)
TokenMethod = Callable[[Any, dict[str, torch.Tensor], AttributionConfig], torch.Tensor]
TOKEN_METHODS: dict[str, TokenMethod] = {
    "saliency": gradients.saliency,
    "saliency_stepwise": gradients.saliency_stepwise,
    "input_x_gradient": gradients.input_x_gradient,
    "integrated_gradients": gradients.integrated_gradients,
}
WORD_METHODS = ("occlusion", "random")   # score words directly
METHODS = tuple(TOKEN_METHODS) + WORD_METHODS
# The fields that change scores; the others (k, order, filters, aggregation, batch sizes) only select.
SCORING_FIELDS = {"saliency_stepwise": ("norm",), "integrated_gradients": ("ig_steps", "ig_baseline")}


def attribute(examples: list[Example], method: str, model: Any, tokenizer: Any, cfg: AttributionConfig,
              prefix: str = "", max_input_length: int = 512, max_target_length: int = 128, seed: int = 0,
              cache: Path | None = None, model_key: str = "") -> list[dict[str, Any]]:
    """One row per example: id, target, words, word scores, top-k word indices and the rationale text."""
    records = score(examples, method, model, tokenizer, cfg, prefix, max_input_length, max_target_length, seed,
                    cache, model_key)
    return select(records, examples, cfg)


def score(examples: list[Example], method: str, model: Any, tokenizer: Any, cfg: AttributionConfig,
          prefix: str = "", max_input_length: int = 512, max_target_length: int = 128, seed: int = 0,
          cache: Path | None = None, model_key: str = "") -> list[dict[str, Any]]:
    """Score records {id, target, token_word, token_scores, word_scores}, one per example, in order.

    With `cache`, shards live in cache/<method>-<key>/shard-NNNNN.jsonl, where the key covers the
    model (`model_key`: the caller's fingerprint of the weights), the examples, the method and its
    scoring parameters. Under several processes each computes the shards of its rank, then all read all.
    """
    if method not in METHODS:
        raise ValueError(f"attribution.method: unknown method {method!r}; expected one of {', '.join(METHODS)}")
    rank, world = process()
    if world > 1 and cache is None:
        raise ValueError("attribution across processes needs a cache folder to share the shards")
    params = {f: getattr(cfg, f) for f in SCORING_FIELDS.get(method, ())}
    key = fingerprint(method, params, cfg.target if method != "random" else None, prefix, max_input_length,
                      max_target_length, seed if method == "random" else None, model_key, cfg.shard_size,
                      [(ex.id, ex.input, ex.label) for ex in examples])
    folder = cache / f"{method}-{key}" if cache is not None else None
    shards = [examples[i:i + cfg.shard_size] for i in range(0, len(examples), cfg.shard_size)]
    computed: dict[int, list[dict]] = {}
    mine = [s for s in range(len(shards)) if s % world == rank]
    if world > 1:
        log.info("process %d of %d: %s shards %s", rank, world, method, mine)
    for s in tqdm(mine, desc=f"attribution {method} (shards)", unit="shard", disable=len(mine) < 2):
        path = folder / f"shard-{s:05d}.jsonl" if folder is not None else None
        if path is not None and path.is_file():
            continue
        rows = _score_shard(shards[s], method, model, tokenizer, cfg, prefix, max_input_length,
                            max_target_length, seed)
        if path is not None:
            write_jsonl(path, rows)   # atomic: a shard file on disk is a whole shard
        computed[s] = rows
        crash_point(f"shard@{s}")
    barrier()
    out: list[dict] = []
    for s, shard in enumerate(shards):
        rows = computed.get(s) or _cached(folder / f"shard-{s:05d}.jsonl", shard)
        if rows is None:   # damaged on disk: recompute it here rather than trust it
            rows = _score_shard(shard, method, model, tokenizer, cfg, prefix, max_input_length, max_target_length, seed)
            write_jsonl(folder / f"shard-{s:05d}.jsonl", rows)
        out += rows
    return out


def _cached(path: Path, shard: list[Example]) -> list[dict] | None:
    """A cached shard's rows, or None (with a log line) when the file is unreadable or holds other examples."""
    try:
        rows = read_jsonl(path)
    except (ValueError, OSError) as e:
        log.warning("%s is damaged (%s): recomputing it", path, e)
        return None
    if [r.get("id") for r in rows] != [ex.id for ex in shard]:
        log.warning("%s holds other examples than expected: recomputing it", path)
        return None
    return rows


def _score_shard(examples: list[Example], method: str, model: Any, tokenizer: Any, cfg: AttributionConfig,
                 prefix: str, max_input_length: int, max_target_length: int, seed: int) -> list[dict]:
    spans = [word_spans(ex.input) for ex in examples]
    if method == "random":
        # Seeded per example, so results do not depend on batching, sharding or process count.
        rngs = [random.Random(f"{seed}:{ex.id}") for ex in examples]
        scores = [[rng.random() for _ in sp] for rng, sp in zip(rngs, spans)]
        return [{"id": ex.id, "target": ex.label, "token_word": None, "token_scores": None, "word_scores": sc}
                for ex, sc in zip(examples, scores)]
    sources = [prefix + ex.input for ex in examples]
    targets = [ex.label for ex in examples]
    if cfg.target == "prediction":
        targets = predict(model, tokenizer, sources, cfg.batch_size, max_target_length, max_input_length)
    feats = encode(tokenizer, sources, targets, max_input_length, max_target_length, offsets=True,
                   causal=is_causal(model))
    for f, sp in zip(feats, spans):
        f["token_word"] = token_to_word(f.pop("offset_mapping"), sp, shift=len(prefix))
    rows = [{"id": ex.id, "target": t, "token_word": f["token_word"], "token_scores": None, "word_scores": None}
            for ex, t, f in zip(examples, targets, feats)]
    if method == "occlusion":
        for row, sc in zip(rows, occlusion(model, feats, [len(s) for s in spans], tokenizer.pad_token_id,
                                           cfg.batch_size)):
            row["word_scores"] = sc.tolist()
        return rows
    device = next(model.parameters()).device
    for idx in length_batches([len(f["input_ids"]) for f in feats], cfg.batch_size):
        batch = {k: v.to(device) for k, v in collate([{k: feats[i][k] for k in ("input_ids", "labels")}
                                                      for i in idx], tokenizer.pad_token_id).items()}
        token_scores = TOKEN_METHODS[method](model, batch, cfg).detach().float().cpu()
        for r, i in enumerate(idx):
            rows[i]["token_scores"] = token_scores[r, :len(feats[i]["input_ids"])].tolist()
    return rows


def word_scores(record: dict[str, Any], n_words: int, aggregation: str = "sum") -> torch.Tensor:
    """The word scores of a score record (aggregating its token scores when it has them)."""
    if record["token_scores"] is None:
        return torch.tensor(record["word_scores"], dtype=torch.float32)
    return aggregate(torch.tensor(record["token_scores"]), torch.tensor(record["token_word"], dtype=torch.long),
                     n_words, aggregation)


def stop_words(cfg: AttributionConfig) -> set[str]:
    words = {w.lower() for w in cfg.stop_words if w != "english"}
    return words | ENGLISH_STOP_WORDS if "english" in cfg.stop_words else words


def select(records: list[dict[str, Any]], examples: list[Example], cfg: AttributionConfig) -> list[dict[str, Any]]:
    """Rows {id, target, words, scores, top, rationale}: word scores and the top-k words of each example."""
    excluded = stop_words(cfg)
    rows = []
    for rec, ex in zip(records, examples):
        spans = word_spans(ex.input)
        words = [ex.input[a:b] for a, b in spans]
        sc = word_scores(rec, len(words), cfg.aggregation)
        top = top_k(words, sc, cfg.k, cfg.skip_punctuation, cfg.order, excluded)
        rows.append({"id": ex.id, "target": rec["target"], "words": words, "scores": [round(float(s), 6) for s in sc],
                     "top": top, "rationale": ", ".join(words[i] for i in top)})
    return rows


def rationale_at(row: dict[str, Any], k: int, cfg: AttributionConfig) -> str:
    """The rationale text of an attribution row for another k (from its stored word scores)."""
    top = top_k(row["words"], torch.tensor(row["scores"]), k, cfg.skip_punctuation, cfg.order, stop_words(cfg))
    return ", ".join(row["words"][i] for i in top)


def top_k(words: list[str], scores: torch.Tensor, k: int, skip_punctuation: bool = True,
          order: str = "score", exclude: set[str] = frozenset()) -> list[int]:
    """Indices of the k best-scored candidate words, by score (ties: earlier word) or by position."""
    candidates = [i for i, w in enumerate(words)
                  if not (skip_punctuation and is_punctuation(w)) and w.lower() not in exclude]
    best = sorted(candidates, key=lambda i: (-float(scores[i]), i))[:k]
    return sorted(best) if order == "position" else best


def recall_at_k(rows: list[dict[str, Any]], examples: list[Example]) -> float | None:
    """Mean share of each example's decisive words that its top-k contains; None without ground truth."""
    found = [len(set(r["top"]) & set(ex.decisive)) / len(ex.decisive)
             for r, ex in zip(rows, examples) if ex.decisive]
    return sum(found) / len(found) if found else None
