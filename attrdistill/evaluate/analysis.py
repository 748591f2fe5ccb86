"""Analyses of a run's outputs: how rationales relate to answers, humans and the model, and how models agree.

Every function is pure: it reads attribution rows (`attributions/<method>/rows.jsonl`), prediction rows
(`predictions/<model>/test.jsonl`), examples or `metrics.json`, and returns numbers.

    from attrdistill.data.example import read_examples
    train = read_examples(run / "data" / "student_train.jsonl")
    rows = attribution_rows(run, "saliency")                         # same order as `train`
    answer_overlap(rows, train)             # 0.68: share of top-k rationales containing an answer word
    human_agreement(rows, train)            # {"precision", "recall", "f1", "macro_f1", "auprc", "n"} or None
    faithfulness(teacher, tok, train, rows) # {"comprehensiveness", "sufficiency", "per_fraction", "n"}
    prediction_overlap(predictions(run, "teacher"), predictions(run, "saliency-seed0"))   # records.Prediction
    teacher_gap(json.loads((run / "metrics.json").read_text()))        # {"saliency": 0.04, ...}

Attribution rows are `records.AttributionRow`s (`words` the words of the example's input, `scores` one
score per word, `top` the indices of its top-k rationale words), prediction rows `records.Prediction`s.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from attrdistill.attribution.gradients import frozen
from attrdistill.attribution.occlusion import log_probs
from attrdistill.data.example import Example
from attrdistill.evaluate.answers import answer_of, normalize
from attrdistill.modeling.features import encode, is_causal, without_tokens
from attrdistill.modeling.words import ENGLISH_STOP_WORDS, is_punctuation, token_to_word, word_spans, words
from attrdistill.pipeline.records import AttributionRow, Prediction


def _check_aligned(a_ids: Sequence[str], b_ids: Sequence[str], what: str) -> None:
    """Raise ValueError naming the first position where two id sequences disagree.

    Every analysis pairs rows by position; a silently shifted file would give plausible but wrong
    numbers, so a mismatch is an error rather than something to repair.
    """
    for i in range(max(len(a_ids), len(b_ids))):
        a = a_ids[i] if i < len(a_ids) else None
        b = b_ids[i] if i < len(b_ids) else None
        if a != b:
            first = a if a is not None else b
            raise ValueError(f"{what}: first mismatching id {first!r} at position {i} ({a!r} vs {b!r}; "
                             f"{len(a_ids)} vs {len(b_ids)} rows)")


def _aligned_rows(rows: Sequence[AttributionRow], examples: Sequence[Example]) -> None:
    _check_aligned([r.id for r in rows], [str(ex.id) for ex in examples], "rows vs examples")


def answer_overlap(rows: Sequence[AttributionRow], examples: Sequence[Example],
                   stop_words: frozenset[str] | set[str] = ENGLISH_STOP_WORDS) -> float:
    """Share of examples whose top-k rationale words contain a content word of the gold answer.

    Rule: the answer's words are `words(ex.label)`, lower-cased, minus punctuation and `stop_words`
    (lower-case); the rationale's words are `row.words[i]` for i in `row.top`, lower-cased. An
    example overlaps when the two sets share a word (exact word match, no stemming: "bank" does not
    match "banks"). An answer with no content word ("the", "?") counts as no overlap, so the share is
    over all examples. Raises ValueError on no examples or misaligned rows.
    """
    _aligned_rows(rows, examples)
    if not examples:
        raise ValueError("answer_overlap: no examples")
    hits = 0
    for row, ex in zip(rows, examples):
        answer = {w.lower() for w in words(ex.label) if not is_punctuation(w)} - set(stop_words)
        chosen = {row.words[i].lower() for i in row.top}
        hits += bool(answer & chosen)
    return hits / len(examples)


def prediction_overlap(a: Sequence[Prediction], b: Sequence[Prediction]) -> dict[str, Any]:
    """How model B's test predictions agree with model A's, split by whether A is right.

    right_also_right: of the examples A gets right, the share B also gets right.
    wrong_same_wrong: of the examples A gets wrong, the share where B is wrong with the identical
    answer: `normalize(answer_of(prediction))` equal (for label-only outputs that is just the
    normalised prediction; for 'w1, w2, so the answer is X' outputs the answers X are compared, so
    different rationales with the same wrong answer count as the same mistake).
    Shares over 0 examples are None. Rows pair by position; ids must match (ValueError otherwise).
    """
    _check_aligned([r.id for r in a], [r.id for r in b], "prediction_overlap")
    right = [(x, y) for x, y in zip(a, b) if x.correct]
    wrong = [(x, y) for x, y in zip(a, b) if not x.correct]
    also_right = sum(y.correct for _, y in right)
    same_wrong = sum(not y.correct and normalize(answer_of(x.prediction)) == normalize(answer_of(y.prediction))
                     for x, y in wrong)
    return {"n_a_right": len(right), "n_a_wrong": len(wrong),
            "right_also_right": also_right / len(right) if right else None,
            "wrong_same_wrong": same_wrong / len(wrong) if wrong else None}


def _n_top(fraction: float, n_candidates: int) -> int:
    """ceil(fraction * n), at least 1 and at most n (when there is any candidate).

    Rounded before ceil because float products overshoot: 0.1 * 30 == 3.0000000000000004 would
    otherwise give 4 words instead of 3.
    """
    return min(max(1, math.ceil(round(fraction * n_candidates, 9))), n_candidates)


def faithfulness(model: Any, tokenizer: Any, examples: Sequence[Example], rows: Sequence[AttributionRow],
                 prefix: str = "predict: ", fractions: Sequence[float] = (0.01, 0.05, 0.10, 0.20),
                 batch_size: int = 64, max_input_length: int = 512, max_target_length: int = 128) -> dict[str, Any]:
    """ERASER comprehensiveness and sufficiency of the rows' word scores, as AOPC over `fractions`.

    For each example and fraction q, the top ceil(q * n) candidate words by score (candidates: the
    non-punctuation words outside the input's format, `row.scaffold`; at least 1; ties: earlier word
    first, as `attribution.top_k`) are
      - deleted from the input (comprehensiveness: lp_full - lp_without_top; high = faithful), or
      - the only words kept (sufficiency: lp_full - lp_only_top; low = faithful; all other words,
        punctuation included, are deleted),
    where lp is the gold label's mean token log-probability, teacher-forced. Deleting a word deletes
    every token that overlaps it (`words.token_to_word` on the offsets, as occlusion does); tokens
    outside every word -- the task prefix, </s>, bare whitespace pieces, a decoder-only model's
    target -- and the format's words are always kept, so a variant differs from the full input only
    in the example's own words. Scores
    are taken as given (whatever the method's sign convention, higher = more important).

    Returns {"comprehensiveness", "sufficiency": means over examples and fractions,
             "per_fraction": {q: {"comprehensiveness", "sufficiency"}}, "n": number of examples}.
    """
    _aligned_rows(rows, examples)
    if not examples:
        raise ValueError("faithfulness: no examples")
    if not fractions or any(not 0 < q <= 1 for q in fractions):
        raise ValueError(f"faithfulness: fractions must be in (0, 1], got {list(fractions)}")
    spans = [word_spans(ex.input) for ex in examples]
    for row, ex, sp in zip(rows, examples, spans):
        if len(row.scores) != len(sp):
            raise ValueError(f"faithfulness: example {ex.id} has {len(sp)} words but its row has "
                             f"{len(row.scores)} scores")
    feats = encode(tokenizer, [prefix + ex.input for ex in examples], [ex.label for ex in examples],
                   max_input_length, max_target_length, offsets=True, causal=is_causal(model))
    # Identical variants (e.g. 1% and 5% both pick one word of a short input) are scored once.
    variants: list[dict[str, list[int]]] = []
    index: dict[tuple[int, tuple[int, ...]], int] = {}

    def add(i: int, drop: list[bool]) -> int:
        variant = without_tokens(feats[i], drop)   # either layout: a causal target is never dropped
        key = (i, tuple(variant["input_ids"]))
        if key not in index:
            index[key] = len(variants)
            variants.append(variant)
        return index[key]

    # plan[i] = (full variant, [(without-top variant, only-top variant) per fraction])
    plan: list[tuple[int, list[tuple[int, int]]]] = []
    for i, (feat, sp, row, ex) in enumerate(zip(feats, spans, rows, examples)):
        ids = feat["input_ids"]
        token_word = token_to_word(feat["offset_mapping"], sp, shift=len(prefix))
        text_words = [ex.input[a:b] for a, b in sp]
        scaffold = set(row.scaffold or ())
        candidates = [w for w, text in enumerate(text_words) if not is_punctuation(text) and w not in scaffold]
        ranked = sorted(candidates, key=lambda w: (-float(row.scores[w]), w))
        per_q = []
        for q in fractions:
            top = set(ranked[:_n_top(q, len(ranked))])
            without = [w in top for w in token_word]             # -1 is never in top
            only = [w >= 0 and w not in top and w not in scaffold for w in token_word]
            per_q.append((add(i, without), add(i, only)))
        plan.append((add(i, [False] * len(ids)), per_q))

    with frozen(model), torch.no_grad():
        lp = log_probs(model, variants, tokenizer.pad_token_id, batch_size).tolist()
    comp = [[lp[full] - lp[w] for w, _ in per_q] for full, per_q in plan]
    suff = [[lp[full] - lp[o] for _, o in per_q] for full, per_q in plan]
    per_fraction = {q: {"comprehensiveness": sum(c[j] for c in comp) / len(comp),
                        "sufficiency": sum(s[j] for s in suff) / len(suff)} for j, q in enumerate(fractions)}
    return {"comprehensiveness": sum(v["comprehensiveness"] for v in per_fraction.values()) / len(fractions),
            "sufficiency": sum(v["sufficiency"] for v in per_fraction.values()) / len(fractions),
            "per_fraction": per_fraction, "n": len(examples)}


def average_precision(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Average precision (area under the precision-recall curve, step-wise) of scores against labels.

    AP = sum over distinct score thresholds t (descending) of (recall(t) - recall(previous)) *
    precision(t), where predicting "positive" means score >= t. Tied scores form one threshold, so
    the result does not depend on word order (all-equal scores give the base rate); this is the
    definition sklearn's average_precision_score uses. None when there is no positive label.
    """
    n_pos = sum(bool(x) for x in labels)
    if n_pos == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    ap, tp, seen, i = 0.0, 0, 0, 0
    while i < len(order):
        j = i
        # Consume the whole group of tied scores before taking a point on the curve.
        while j < len(order) and float(scores[order[j]]) == float(scores[order[i]]):
            j += 1
        new_tp = sum(bool(labels[order[m]]) for m in range(i, j))
        tp, seen = tp + new_tp, seen + (j - i)
        ap += new_tp / n_pos * tp / seen
        i = j
    return ap


def human_agreement(rows: Sequence[AttributionRow], examples: Sequence[Example]) -> dict[str, Any] | None:
    """Agreement of the rationales with human highlights, over examples with a non-empty `human`.

    precision / recall / f1: word-level, micro-averaged (total hits / total top-k words, total hits /
    total human words; a ratio over 0 words is 0.0); macro_f1: the mean of the per-example F1s.
    auprc: per example, `average_precision` of the word scores against the human labels over the
    non-punctuation words outside the input's format (ties form one threshold), averaged over the
    examples that keep at least one human word. n: the number of examples with highlights. None when
    no example has any.
    """
    _aligned_rows(rows, examples)
    pairs = [(row, ex) for row, ex in zip(rows, examples) if ex.human]
    if not pairs:
        return None
    hits = picked = gold = 0
    f1s, aps = [], []
    for row, ex in pairs:
        top, human = set(row.top), set(ex.human)
        h = len(top & human)
        hits, picked, gold = hits + h, picked + len(top), gold + len(human)
        f1s.append(_f1(h / len(top) if top else 0.0, h / len(human)))
        scaffold = set(row.scaffold or ())
        keep = [w for w, text in enumerate(row.words) if not is_punctuation(text) and w not in scaffold]
        ap = average_precision([row.scores[w] for w in keep], [w in human for w in keep])
        if ap is not None:
            aps.append(ap)
    precision = hits / picked if picked else 0.0
    recall = hits / gold if gold else 0.0
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall),
            "macro_f1": sum(f1s) / len(f1s), "auprc": sum(aps) / len(aps) if aps else None, "n": len(pairs)}


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def word_f1(generated: str, taught: str) -> float:
    """F1 of the two texts' sets of (lower-cased, non-punctuation) words; 1.0 when both are empty."""
    a, b = ({w.lower() for w in words(t) if not is_punctuation(w)} for t in (generated, taught))
    if not a and not b:
        return 1.0
    common = len(a & b)
    return _f1(common / len(a), common / len(b)) if common else 0.0


def teacher_gap(metrics: dict[str, Any]) -> dict[str, float]:
    """{variant: teacher accuracy - the variant's mean student accuracy} from a metrics.json dict."""
    teacher = metrics["teacher"]["accuracy"]
    return {variant: teacher - m["accuracy"] for variant, m in metrics["students"].items()}


# Two-sided 97.5% quantiles of Student's t by degrees of freedom; a df between entries takes the lower one
# (a slightly wider, conservative interval).
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000, 120: 1.980}


def paired_gain(variant: Sequence[float], base: Sequence[float]) -> tuple[float, float, float]:
    """(mean gain, low, high): the 95% t-interval of the per-seed differences variant - base (seed i of both
    trained with the same initialisation and data order); low and high are NaN for a single seed."""
    if len(variant) != len(base) or not base:
        raise ValueError(f"paired_gain: {len(variant)} values against {len(base)}: seeds must pair up")
    diffs = [a - b for a, b in zip(variant, base)]
    mean = math.fsum(diffs) / len(diffs)
    if len(diffs) < 2:
        return mean, math.nan, math.nan
    sd = math.sqrt(math.fsum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))
    t = T975[max(df for df in T975 if df <= len(diffs) - 1)]
    half = t * sd / math.sqrt(len(diffs))
    return mean, mean - half, mean + half
