"""What a student learns from: its train rows, built from the data, its rationales and the teacher's signals.

    rows = train_rows(examples, cfg)                                   # the label task alone (the teacher's too)
    rows = train_rows(examples, cfg, rationales_for(run, cfg, "saliency", examples))   # and a rationale
    rows = train_rows(examples, cfg, None, "kd", teacher_rows)         # and what the kd objective reads

A variant's objective names the teacher signal it reads (`registry.variants.OBJECTIVES`), whose entry
(`registry.signals`) says how a row takes the teacher's row; a loss term's rows carry the teacher's word
scores that guide it. Nothing here branches on a variant's name.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from attrdistill.attribution.select import rationale_at
from attrdistill.config import RunConfig
from attrdistill.data.example import Example, read_examples, read_jsonl
from attrdistill.evaluate.answers import exact_match, matcher, single_target
from attrdistill.modeling.words import words
from attrdistill.pipeline.layout import TRAIN, Layout, load_split
from attrdistill.pipeline.records import TrainRow, WordScores, attribution_rows
from attrdistill.registry.methods import REGISTRY
from attrdistill.registry.signals import SIGNALS
from attrdistill.registry.variants import OBJECTIVES, RATIONALES, given_rationales, parse_variant


def train_rows(examples: list[Example], cfg: RunConfig, rationales: dict[str, str] | None = None,
               objective: str = "label", teacher: dict[str, dict] | None = None,
               term: tuple[str, dict[str, list[float]]] | None = None) -> list[TrainRow]:
    """Train rows (records.TrainRow); the signal `objective` reads attaches `teacher` (id -> the row it reads: kd's
    sparse logits, seqkd's output); `term` (a loss term's name, id -> the teacher's word scores) adds what guides
    it."""
    reads = OBJECTIVES[objective].reads
    attach = SIGNALS[reads].implementation().attach if reads and teacher is not None else None
    one_sequence = rationales is not None and cfg.distill.format != "two_task"
    rows = []
    for ex in examples:
        row = TrainRow(source=cfg.data.predict_prefix + ex.input, target=ex.label)
        if attach is not None:
            attach(row, teacher[ex.id], one_sequence and cfg.distill.format == "label_first")
        if term is not None:
            row.terms[term[0]] = WordScores(ex.input, cfg.data.predict_prefix, term[1][ex.id])
        if one_sequence:
            row.target = single_target(row.target, rationales[ex.id], cfg.distill.format)
        elif rationales is not None:
            row.explain_source, row.rationale = cfg.data.explain_prefix + ex.input, rationales[ex.id]
        rows.append(row)
    return rows


def rationales_for(run: Path, cfg: RunConfig, variant: str, examples: list[Example],
                   split: str = "student_train") -> dict[str, str] | None:
    """id -> rationale text of a student variant on `split` (student_train, or test); None without rationales."""
    v = parse_variant(variant)
    if v.rationale is None:
        return None
    if v.rationale not in REGISTRY:
        return given_rationales(v.rationale, examples, cfg.data.seed)
    rows = attribution_rows(run, v.rationale, split)
    return {r.id: rationale_at(r, v.k, cfg.attribution) if v.k else r.rationale for r in rows}


def guide_scores(run: Path, cfg: RunConfig, guide: str, examples: list[Example],
                 split: str = TRAIN) -> dict[str, list[float]]:
    """id -> the word scores that guide a loss term: an attribution method's on `split` (the teacher's, or the
    seeded control's) with 0 on the input format's words (`AttributionRow.scaffold`), or 1 on each word a data
    guide marks (`registry.variants.data_guides`: human, oracle) and 0 elsewhere."""
    if guide in REGISTRY:
        return {r.id: _content_scores(r.scores, set(r.scaffold or ())) for r in attribution_rows(run, guide, split)}
    marked = {ex.id: set(RATIONALES[guide].words(ex)) for ex in examples}
    return {ex.id: [float(i in marked[ex.id]) for i in range(len(words(ex.input)))] for ex in examples}


def _content_scores(scores: list[float], scaffold: set[int]) -> list[float]:
    return [0.0 if i in scaffold else s for i, s in enumerate(scores)]


def student_pool(run: Path, cfg: RunConfig, limited: bool = True) -> list[Example]:
    """The student-train examples: the labelled split, and with data.transfer_file the transfer inputs the teacher
    labelled (its `transfer` unit); `limited`, only those distill.student_limit keeps. Attributions, teacher
    signals, students and analyses all read the limited pool: the teacher's work per example (occlusion costs
    seconds of a real model per example) is done for the examples students learn from, not the whole split."""
    labelled = load_split(run, TRAIN)
    pool = labelled + read_examples(Layout(run).transfer_labels) if cfg.data.transfer_file else labelled
    return student_examples(pool, cfg) if limited else pool


def student_examples(examples: list[Example], cfg: RunConfig) -> list[Example]:
    """The student-train examples students learn from: all, or with distill.student_limit N the first N after a
    shuffle seeded by data.seed (kept in split order), so every variant and seed sees the same ones."""
    n = cfg.distill.student_limit
    if not n or n >= len(examples):
        return examples
    chosen = set(random.Random(cfg.data.seed).sample(range(len(examples)), n))
    return [ex for i, ex in enumerate(examples) if i in chosen]


def forced_validation(cfg: RunConfig, rationale: bool) -> bool:
    """Validate by one forward pass (`trainer.train`): exact where answers are judged by exact match and the
    model's target is the label itself (not one sequence of label and rationale)."""
    return matcher(cfg.data.source) is exact_match and not (rationale and cfg.distill.format != "two_task")


def prompted(run: Path, cfg: RunConfig, split: str) -> tuple[list[Example], list[str]]:
    """A split's examples and their label-task prompts (data.predict_prefix + input), what a model is run on."""
    examples = student_pool(run, cfg) if split == TRAIN else load_split(run, split)
    return examples, [cfg.data.predict_prefix + ex.input for ex in examples]


def teacher_rows(path: Path) -> dict[str, dict[str, Any]]:
    """id -> row of a teacher signal's rows."""
    return {r["id"]: r for r in read_jsonl(path)}
