"""Benchmark: how much of a run's rationales is its input's format, with the format's words as candidates and without.

    python bench/scaffold.py RUN [--method saliency] [--split student_train] [--top 15] [--json FILE]

Reads a run's attribution rows (the teacher's word scores, which no selection setting changes) and its
config, and selects each example's top-k twice from the same scores: as attrdistill did before
`modeling/template.py` (every word a candidate) and as it does now (the template's own words skipped). For
each selection it prints the share of rationales holding a format word, per format word the share of
rationales holding it, the --top most frequent rationale words, and the answer overlap
(`evaluate.analysis.answer_overlap`, the paper's CQA analysis); and, once, the mean share of an example's
positive score mass on the format's words. Prints one JSON object (and writes it to --json).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from attrdistill.attribution.select import stop_words, top_k
from attrdistill.config import load_config
from attrdistill.data.sources import input_template, scaffolds
from attrdistill.evaluate.analysis import answer_overlap
from attrdistill.pipeline.layout import TRAIN, Layout, load_split
from attrdistill.pipeline.records import AttributionRow, attribution_rows


def selection(rows: list[AttributionRow], marks: list[set[int]], cfg: Any, skip: bool) -> list[AttributionRow]:
    """The rows with their top-k chosen again from their scores, skipping the format's words or not."""
    a = cfg.attribution
    out = []
    for row, marked in zip(rows, marks):
        steps = torch.tensor(row.step_scores) if row.step_scores is not None else None
        top = [] if row.teacher_correct is False else top_k(
            row.words, torch.tensor(row.scores), a.k, a.skip_punctuation, a.order, stop_words(a), a.mass, steps,
            marked if skip else set())
        out.append(dataclasses.replace(row, top=top, rationale=", ".join(row.words[i] for i in top)))
    return out


def describe(rows: list[AttributionRow], marks: list[set[int]], examples: list[Any], top: int) -> dict[str, Any]:
    with_format = sum(bool(set(r.top) & m) for r, m in zip(rows, marks))
    per_word: collections.Counter = collections.Counter()
    for r, m in zip(rows, marks):
        per_word.update({r.words[i] for i in r.top if i in m})
    chosen = collections.Counter(r.words[i] for r in rows for i in r.top)
    n = len(rows)
    return {"rationales_with_a_format_word": with_format / n,
            "rationales_with_each_format_word": {w: c / n for w, c in per_word.most_common()},
            "most_frequent_rationale_words": chosen.most_common(top),
            "answer_overlap": answer_overlap(rows, examples)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--method", default=None, help="attribution method (default: the run's attribution.method)")
    ap.add_argument("--split", default=TRAIN, choices=[TRAIN, "test"])
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    cfg = load_config(Layout(args.run).config)
    method = args.method or cfg.attribution.method
    examples = load_split(args.run, args.split)
    rows = attribution_rows(args.run, method, args.split)
    if [r.id for r in rows] != [ex.id for ex in examples]:
        raise SystemExit(f"{args.run}: the {method} rows of {args.split} do not follow its examples")
    template = input_template(cfg.data)
    marks = [set(m) for m in scaffolds(cfg.data, examples)]
    mass = []
    for r, m in zip(rows, marks):
        positive = [max(s, 0.0) for s in r.scores]
        total = sum(positive)
        mass.append(sum(positive[i] for i in m) / total if total > 0 else 0.0)
    result = {"run": str(args.run), "method": method, "split": args.split, "n": len(rows), "k": cfg.attribution.k,
              "template": template.pattern if template else None,
              "format_share_of_positive_score_mass": sum(mass) / len(mass),
              "format_words_as_candidates": describe(selection(rows, marks, cfg, False), marks, examples, args.top),
              "format_words_skipped": describe(selection(rows, marks, cfg, True), marks, examples, args.top)}
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
