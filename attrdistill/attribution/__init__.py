"""Attribution: score every input word of every example, then pick the top-k as its rationale.

    rows = attribute(examples, "saliency", model, tok, cfg.attribution, prefix="predict: ", cache=run / "cache")
    rows[0].rationale           # "compass, valley, took, ..."  (top-k words)
    recall_at_k(rows, examples) # share of the decisive words found in the top-k

Two steps: `score` computes per-token scores (per-word for word-level methods) shard by shard and
caches each shard under a key made of everything the scores depend on; `select` turns scores into
word scores (aggregation) and rationales (k, order, filters). A different k, order, aggregation or
stop-word list therefore needs no recomputation, a rerun reuses every shard, an interrupted run
resumes at the next one, and under `accelerate launch` each process computes its share of shards.

Methods: the registry `attrdistill.methods` (one entry each: its kind, score function and the fields
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

import torch
from tqdm.auto import tqdm

from attrdistill import methods
from attrdistill.config import AttributionConfig
from attrdistill.data.example import Example, read_jsonl, write_jsonl
from attrdistill.distributed import barrier, process
from attrdistill.errors import ConfigError
from attrdistill.evaluation import predict
from attrdistill.features import collate, encode, is_causal, length_batches
from attrdistill.records import AttributionRow
from attrdistill.store import crash_point, fingerprint
from attrdistill.words import ENGLISH_STOP_WORDS, aggregate, is_punctuation, token_to_word, word_spans

log = logging.getLogger(__name__)
# The registry's names, and its fields that change scores (the others -- k, order, filters, aggregation, batch
# sizes -- only select), as registered at import; the functions below read the registry itself.
METHODS: tuple[str, ...] = methods.method_names()
SCORING_FIELDS: dict[str, tuple[str, ...]] = {name: m.fields for name, m in methods.REGISTRY.items() if m.fields}


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
              cache: Path | None = None, model_key: str = "") -> list[dict[str, Any]]:
    """One row per example: id, target, words, word scores, top-k word indices and the rationale text."""
    records = score(examples, method, model, tokenizer, cfg, prefix, max_input_length, max_target_length, seed,
                    cache, model_key)
    return select(records, examples, cfg)


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
    rank, world = process()
    if world > 1 and cache is None:
        raise ValueError("attribution across processes needs a cache folder to share the shards")
    key = cache_key(examples, method, cfg, prefix, max_input_length, max_target_length, seed, model_key)
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


def random_word_scores(examples: list[Example], n_words: list[int], seed: int) -> list[list[float]]:
    """The random control's word scores, uniform in [0, 1) (the "seeded" kind of `attrdistill.methods`).

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
            token_scores, steps = entry.function(steps=True)(model, batch, method, cfg)
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


def word_scores(record: dict[str, Any], n_words: int, aggregation: str = "sum") -> torch.Tensor:
    """The word scores of a score record (aggregating its token scores when it has them)."""
    if record["token_scores"] is None:
        return torch.tensor(record["word_scores"], dtype=torch.float32)
    return aggregate(torch.tensor(record["token_scores"]), torch.tensor(record["token_word"], dtype=torch.long),
                     n_words, aggregation)


def step_word_scores(record: dict[str, Any], n_words: int, aggregation: str = "sum") -> torch.Tensor | None:
    """(content target tokens, n_words): the word scores explaining each target token; None if not stored.

    Random words (token_word None) explain no target token: no steps, so aligned order is score order
    and the control stays k random words.
    """
    if record["token_word"] is None:
        return torch.zeros(0, n_words)
    if record.get("step_token_scores") is not None:
        token_word = torch.tensor(record["token_word"], dtype=torch.long)
        rows = [aggregate(torch.tensor(step), token_word, n_words, aggregation) for step in record["step_token_scores"]]
        return torch.stack(rows) if rows else torch.zeros(0, n_words)
    if record.get("step_word_scores") is not None:
        return _matrix(record["step_word_scores"], n_words)
    return None


def _matrix(rows: list[list[float]], n_words: int) -> torch.Tensor:
    """(len(rows), n_words) float32, also for no rows or no words."""
    return torch.tensor(rows, dtype=torch.float32).reshape(len(rows), n_words)


def stop_words(cfg: AttributionConfig) -> set[str]:
    words = {w.lower() for w in cfg.stop_words if w != "english"}
    return words | ENGLISH_STOP_WORDS if "english" in cfg.stop_words else words


def _rounded(scores: torch.Tensor) -> list[float]:
    return [round(float(s), 6) for s in scores]


def select(records: list[dict[str, Any]], examples: list[Example], cfg: AttributionConfig) -> list[AttributionRow]:
    """Rows (records.AttributionRow): word scores and the top-k words of each example.

    With order aligned rows also carry step_scores (per content target token, word scores), which
    `rationale_at` needs; with teacher_wrong drop they carry teacher_correct, and a wrong example
    has no rationale words.
    """
    excluded = stop_words(cfg)
    rows = []
    for rec, ex in zip(records, examples):
        spans = word_spans(ex.input)
        words = [ex.input[a:b] for a, b in spans]
        sc = word_scores(rec, len(words), cfg.aggregation)
        steps = step_word_scores(rec, len(words), cfg.aggregation) if cfg.order == "aligned" else None
        dropped = rec.get("teacher_correct") is False
        top = [] if dropped else top_k(words, sc, cfg.k, cfg.skip_punctuation, cfg.order, excluded, cfg.mass, steps)
        rows.append(AttributionRow(ex.id, rec["target"], words, _rounded(sc), top, ", ".join(words[i] for i in top),
                                   [_rounded(st) for st in steps] if steps is not None else None,
                                   rec.get("teacher_correct")))
    return rows


def rationale_at(row: AttributionRow, k: int, cfg: AttributionConfig) -> str:
    """The rationale text of an attribution row for another k (from its stored word and step scores)."""
    if row.teacher_correct is False:
        return ""
    steps = _matrix(row.step_scores, len(row.words)) if row.step_scores is not None else None
    top = top_k(row.words, torch.tensor(row.scores), k, cfg.skip_punctuation, cfg.order, stop_words(cfg),
                cfg.mass, steps)
    return ", ".join(row.words[i] for i in top)


def top_k(words: list[str], scores: torch.Tensor, k: int, skip_punctuation: bool = True,
          order: str = "score", exclude: set[str] = frozenset(), mass: float = 0.0,
          steps: torch.Tensor | None = None) -> list[int]:
    """Indices of the k best-scored candidate words, by score (ties: earlier word), by position, or aligned.

    aligned: for each row of `steps` (one per target token: word scores explaining that token) the
    not-yet-chosen candidate it scores highest, then the rest by `scores`. mass in (0, 1]: only the
    fewest leading words of that selection whose non-negative scores reach share `mass` of all the
    candidates' (at least 1); for position order the leading words by score, then sorted by position.
    """
    candidates = [i for i, w in enumerate(words)
                  if not (skip_punctuation and is_punctuation(w)) and w.lower() not in exclude]
    ranked = sorted(candidates, key=lambda i: (-float(scores[i]), i))
    if order == "aligned":
        if steps is None:
            raise ConfigError("attribution.order: aligned needs per-target-token step scores, which these scores "
                              "lack (computed with another order, or a method that gives none)")
        chosen: list[int] = []
        for step in steps:
            rest = [i for i in candidates if i not in chosen]
            if len(chosen) >= k or not rest:
                break
            chosen.append(min(rest, key=lambda i: (-float(step[i]), i)))
        ranked = chosen + [i for i in ranked if i not in chosen]
    best = ranked[:k]
    if mass > 0:
        best = best[:_mass_length(best, scores, candidates, mass)]
    return sorted(best) if order == "position" else best


def _mass_length(best: list[int], scores: torch.Tensor, candidates: list[int], mass: float) -> int:
    """How many leading words of `best` reach share `mass` of the candidates' non-negative score (>= 1)."""
    total = sum(max(float(scores[i]), 0.0) for i in candidates)
    running = 0.0
    for n, i in enumerate(best, 1):
        running += max(float(scores[i]), 0.0)
        if running >= mass * total * (1 - 1e-9):   # summed in another order than the total
            return n
    return max(len(best), 1)


def recall_at_k(rows: list[AttributionRow], examples: list[Example]) -> float | None:
    """Mean share of each example's decisive words that its top-k contains; None without ground truth."""
    found = [len(set(r.top) & set(ex.decisive)) / len(ex.decisive)
             for r, ex in zip(rows, examples) if ex.decisive]
    return sum(found) / len(found) if found else None
