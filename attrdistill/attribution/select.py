"""Selection: word scores from score records, and the top-k words that become a rationale.

    rows = select(records, examples, cfg)          # [AttributionRow]: word scores, top-k, rationale text
    rationale_at(row, k=3, cfg=cfg)               # another k from the stored scores, no recomputation
    recall_at_k(rows, examples)                   # share of the decisive words found in the top-k

Everything here only selects (k, order, mass, filters, aggregation), so changing it never recomputes scores.
"""

from __future__ import annotations

from typing import Any

import torch

from attrdistill.config import AttributionConfig
from attrdistill.data.example import Example
from attrdistill.errors import ConfigError
from attrdistill.modeling.words import ENGLISH_STOP_WORDS, aggregate, is_punctuation, word_spans
from attrdistill.pipeline.records import AttributionRow


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


def select(records: list[dict[str, Any]], examples: list[Example], cfg: AttributionConfig,
           scaffolds: list[list[int]] | None = None) -> list[AttributionRow]:
    """Rows (records.AttributionRow): word scores and the top-k words of each example.

    With order aligned rows also carry step_scores (per content target token, word scores), which
    `rationale_at` needs; with teacher_wrong drop they carry teacher_correct, and a wrong example
    has no rationale words. scaffolds: per example, the word indices of its input's format
    (`data.sources.scaffolds`), never chosen and kept on the row.
    """
    excluded = stop_words(cfg)
    rows = []
    for n, (rec, ex) in enumerate(zip(records, examples)):
        scaffold = scaffolds[n] if scaffolds else []
        spans = word_spans(ex.input)
        words = [ex.input[a:b] for a, b in spans]
        sc = word_scores(rec, len(words), cfg.aggregation)
        steps = step_word_scores(rec, len(words), cfg.aggregation) if cfg.order == "aligned" else None
        dropped = rec.get("teacher_correct") is False
        top = [] if dropped else top_k(words, sc, cfg.k, cfg.skip_punctuation, cfg.order, excluded, cfg.mass, steps,
                                       set(scaffold))
        rows.append(AttributionRow(ex.id, rec["target"], words, _rounded(sc), top, ", ".join(words[i] for i in top),
                                   [_rounded(st) for st in steps] if steps is not None else None,
                                   rec.get("teacher_correct"), scaffold or None))
    return rows


def rationale_at(row: AttributionRow, k: int, cfg: AttributionConfig) -> str:
    """The rationale text of an attribution row for another k (from its stored word and step scores)."""
    if row.teacher_correct is False:
        return ""
    steps = _matrix(row.step_scores, len(row.words)) if row.step_scores is not None else None
    top = top_k(row.words, torch.tensor(row.scores), k, cfg.skip_punctuation, cfg.order, stop_words(cfg),
                cfg.mass, steps, set(row.scaffold or ()))
    return ", ".join(row.words[i] for i in top)


def top_k(words: list[str], scores: torch.Tensor, k: int, skip_punctuation: bool = True,
          order: str = "score", exclude: set[str] = frozenset(), mass: float = 0.0,
          steps: torch.Tensor | None = None, skip: set[int] = frozenset()) -> list[int]:
    """Indices of the k best-scored candidate words, by score (ties: earlier word), by position, or aligned.

    Candidates: every word but punctuation (with skip_punctuation), the `exclude` words (lower-case) and the word
    indices in `skip` (the input format's).

    aligned: for each row of `steps` (one per target token: word scores explaining that token) the
    not-yet-chosen candidate it scores highest, then the rest by `scores`. mass in (0, 1]: only the
    fewest leading words of that selection whose non-negative scores reach share `mass` of all the
    candidates' (at least 1); for position order the leading words by score, then sorted by position.
    """
    candidates = [i for i, w in enumerate(words)
                  if not (skip_punctuation and is_punctuation(w)) and w.lower() not in exclude and i not in skip]
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
