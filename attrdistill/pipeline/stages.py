"""The work of each unit of a run: what `plan.plan` schedules and `runner.execute` runs.

    finetune(run, cfg)                                  # RUN/teacher: the fine-tuned teacher
    attribute_split(run, cfg, "saliency", "test", fp)   # RUN/attributions/test/saliency
    train_student(run, cfg, "kd+saliency", 0)           # RUN/students/kd+saliency/seed0

Each function writes its unit's folder (see `layout.py`) and returns the result its DONE.json keeps.
This module loads the models, so the plan imports it only when a unit runs: planning, `--dry-run`,
`attrdistill plan` and the CLI's help stay torch-free. A teacher signal's work is its own class
(`distill/signals.py`, entries of `registry.signals`).
"""

from __future__ import annotations

import logging
import platform
import shutil
import statistics
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from attrdistill import __version__
from attrdistill.attribution.engine import attribute
from attrdistill.attribution.select import recall_at_k
from attrdistill.config import RunConfig, dump_config, pretrained
from attrdistill.data import Example, build_splits, scaffolds, write_jsonl
from attrdistill.data.example import TRANSFER
from attrdistill.distill.rows import (
    forced_validation,
    guide_scores,
    prompted,
    rationales_for,
    student_examples,
    student_pool,
    teacher_rows,
    train_rows,
)
from attrdistill.distill.trainer import train
from attrdistill.evaluate import analysis
from attrdistill.evaluate.answers import accuracy, matcher, rationale_of
from attrdistill.evaluate.predict import predict
from attrdistill.modeling.lora import with_adapters
from attrdistill.modeling.models import build_word_tokenizer, load_model, load_tokenizer, load_trained
from attrdistill.modeling.precision import described
from attrdistill.modeling.words import words
from attrdistill.pipeline.distributed import is_main
from attrdistill.pipeline.layout import TRAIN, Layout, attribution_methods, load_split, models, student_key
from attrdistill.pipeline.records import Prediction, TrainRow, attribution_rows, predictions
from attrdistill.pipeline.runner import Unit
from attrdistill.pipeline.store import atomic_open, write_json
from attrdistill.registry.methods import entry
from attrdistill.registry.variants import OBJECTIVES, TERMS, parse_variant
from attrdistill.report.document import write_report
from attrdistill.report.metrics import collect_metrics

log = logging.getLogger("attrdistill")


def make_data(run: Path, cfg: RunConfig) -> dict:
    """Build the four splits (and, for from-scratch models, the task's word-level tokenizer)."""
    lay = Layout(run)
    splits = build_splits(cfg.data)
    for name in splits:   # SPLITS, and the transfer inputs when there are
        write_jsonl(lay.split(name), splits[name])
    if any(not (pretrained(m) or m.tokenizer) for m in (cfg.teacher, cfg.student)):
        texts = [t for name in ("teacher_train", TRAIN, TRANSFER) for ex in splits.get(name, ())
                 for t in (ex.input, ex.label)]
        tok = build_word_tokenizer(texts + [cfg.data.predict_prefix, cfg.data.explain_prefix, ","])
        tok.save_pretrained(lay.tokenizer)
    return {name: len(rows) for name, rows in splits.items()}


def finetune(run: Path, cfg: RunConfig) -> dict:
    """Fine-tune the teacher on teacher_train, keeping the best checkpoint by validation accuracy."""
    lay = Layout(run)
    out = lay.unit("teacher")
    tok = load_tokenizer(cfg.teacher, lay.tokenizer)
    rows = train_rows(load_split(run, "teacher_train"), cfg)
    model = load_model(cfg.teacher, tok, seed=cfg.teacher.train.seed, calibration=_pairs(rows))
    if not cfg.teacher.finetune or cfg.teacher.train.max_steps == 0:
        log.info("%s: using %s as the teacher without fine-tuning",
                 "teacher.finetune is false" if not cfg.teacher.finetune else "teacher.train.max_steps is 0",
                 cfg.teacher.gguf_file or cfg.teacher.model)
        if is_main():
            model.save_pretrained(lay.model())
            tok.save_pretrained(lay.model())
        return {"best_valid_accuracy": None, "steps": 0, "given": True}
    lora = cfg.teacher.lora.rank > 0
    if lora:
        model = with_adapters(model, cfg.teacher.lora)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    result = train(model, tok, rows, train_rows(load_split(run, "valid"), cfg), cfg.teacher, out,
                   correct=matcher(cfg.data.source), label="teacher",
                   teacher_forced=forced_validation(cfg, rationale=False), report_to=cfg.report_to)
    if lora:   # the best adapters (the Trainer reloaded them), folded into the weights: a plain model from here on
        if is_main():
            shutil.rmtree(lay.model(), ignore_errors=True)
            model.merge_and_unload().save_pretrained(lay.model())
            tok.save_pretrained(lay.model())
        result["lora_trainable_parameters"] = trainable
    return result


def label_transfer(run: Path, cfg: RunConfig) -> dict:
    """The teacher's greedy outputs on the transfer inputs, as their labels (data.transfer_file); an input the
    teacher answers with nothing is left out."""
    lay = Layout(run)
    inputs = load_split(run, TRANSFER)
    model, tok = load_trained(lay.model(), cfg.teacher.dtype)
    preds = predict(model, tok, [cfg.data.predict_prefix + ex.input for ex in inputs], cfg.eval.batch_size,
                    cfg.teacher.max_target_length, cfg.teacher.max_input_length)
    labelled = [Example(ex.id, ex.input, p) for ex, p in zip(inputs, preds) if p.strip()]
    if is_main():
        write_jsonl(lay.transfer_labels, labelled)
    return {"n": len(labelled), "left_out_empty": len(inputs) - len(labelled)}


def attribute_split(run: Path, cfg: RunConfig, method: str, split: str, teacher_fp: str) -> dict:
    """One method's word scores and top-k rationales of a split (student_train, or test).

    Scores are cached per shard in RUN/attribution_cache under the teacher's fingerprint `teacher_fp` (kept
    when only k or the filters change); under `accelerate launch` every process scores its share of shards
    and the main one writes the rows.
    """
    lay = Layout(run)
    examples = student_pool(run, cfg) if split == TRAIN else rationale_scored(load_split(run, split), cfg)
    longest = max((len(words(ex.input)) for ex in examples), default=0)
    if split == TRAIN and method == cfg.attribution.method and cfg.attribution.k >= longest:
        log.warning("attribution.k=%d is not below the word count of any student-train input (the longest has %d "
                    "words): every rationale holds all of its input's candidate words", cfg.attribution.k, longest)
    model = tok = None
    if not entry(method).seeded:   # a seeded control needs no model
        model, tok = load_trained(lay.model(), cfg.teacher.dtype, scoring=True)
    rows = attribute(examples, method, model, tok, cfg.attribution, prefix=cfg.data.predict_prefix,
                     max_input_length=cfg.teacher.max_input_length, max_target_length=cfg.teacher.max_target_length,
                     seed=cfg.data.seed, cache=lay.attribution_cache, model_key=teacher_fp,
                     scaffolds=scaffolds(cfg.data, examples))
    if is_main():   # each process scored its shards; the main one has every row
        write_jsonl(lay.attributions(method, split), rows)
    return {"recall_at_k": recall_at_k(rows, examples), "n": len(rows)}


def rationale_scored(test: list[Example], cfg: RunConfig) -> list[Example]:
    """The test examples a taught rationale's F1 is measured on, so the ones the teacher attributes for it: the
    first eval.rationale_limit (0: all)."""
    return test[:cfg.eval.rationale_limit or None]


def _pairs(rows: list[TrainRow]) -> list[tuple[str, str]]:
    """(source, target) of training rows: what `keep_by: influence` measures the blocks on."""
    return [(r.source, r.target) for r in rows]


def student_start(run: Path, cfg: RunConfig, seed: int, examples: list[Example]) -> tuple[Any, Any]:
    """A new student and its tokenizer: as configured, or with `student.init: teacher` the run's fine-tuned
    teacher (and its tokenizer) with the blocks student.keep_every / keep_by / keep_blocks select. Influence is
    measured on the label task of `examples`, so every variant and seed starts from the same blocks."""
    lay = Layout(run)
    from_teacher = cfg.student.init == "teacher"
    tok = load_tokenizer(cfg.student, lay.model() if from_teacher else lay.tokenizer)
    model = load_model(cfg.student, tok, seed=cfg.student.train.seed + seed,
                       teacher=lay.model() if from_teacher else None,
                       calibration=_pairs(train_rows(examples, cfg)))
    return model, tok


def train_student(run: Path, cfg: RunConfig, variant: str, seed: int) -> dict:
    """Train one student of `variant` on student_train."""
    lay = Layout(run)
    v, d = parse_variant(variant), cfg.distill
    split = student_pool(run, cfg, limited=False)
    examples = student_examples(split, cfg)
    teacher = teacher_rows(lay.signal(v.reads)) if v.reads else None
    term = (v.term, guide_scores(run, cfg, v.guide, examples)) if v.term else None
    rows = train_rows(examples, cfg, rationales_for(run, cfg, variant, examples), v.objective, teacher, term)
    valid = train_rows(load_split(run, "valid"), cfg)
    model, tok = student_start(run, cfg, seed, split)   # the blocks a pruned start keeps: chosen on the whole split
    result = train(model, tok, rows, valid, cfg.student, lay.unit(student_key(variant, seed)),
                   rationale_weight=d.rationale_weight, seed=seed, correct=matcher(cfg.data.source),
                   label=f"{variant}-seed{seed}", objective_loss=OBJECTIVES[v.objective].loss_function(d),
                   term=TERMS[v.term].build(d) if v.term else None, term_every=d.term_every,
                   teacher_forced=forced_validation(cfg, rationale=v.rationale is not None),
                   report_to=cfg.report_to)
    return {"examples": len(rows), "of": len(split)} | result


def taught_on_test(run: Path, cfg: RunConfig, variant: str, test: list[Example]) -> dict[str, str] | None:
    """The rationales a student would have been taught for the test inputs; None (logged) where they cannot be had."""
    try:
        return rationales_for(run, cfg, variant, test, split="test")
    except ValueError as e:   # e.g. the test split has no LLM rationales
        log.info("%s: no rationale F1 on test (%s)", variant, e)
        return None


def evaluate(run: Path, cfg: RunConfig, name: str) -> dict:
    """Greedy predictions of one model (the teacher or a student) on the test split; exact-match accuracy."""
    lay = Layout(run)
    key, variant = models(cfg)[name]
    test, sources = prompted(run, cfg, "test")
    scored = rationale_scored(test, cfg)
    taught = taught_on_test(run, cfg, variant, scored) if variant else None
    role = cfg.student if variant else cfg.teacher
    model, tok = load_trained(lay.model(key), role.dtype)
    preds = predict(model, tok, sources, cfg.eval.batch_size, cfg.eval.max_new_tokens, role.max_input_length)
    correct = matcher(cfg.data.source)
    write_jsonl(lay.predictions(name),
                [Prediction(ex.id, p, ex.label, correct(p, ex.label, ex.choices)) for ex, p in zip(test, preds)])
    result = {"accuracy": accuracy(preds, [ex.label for ex in test], correct, [ex.choices for ex in test]),
              "n": len(test)}
    if taught is not None:   # how well the student reproduces the rationale it was taught
        result["rationale_f1"] = _rationale_f1(model, tok, cfg, scored, preds, taught)
        result["rationale_n"] = len(scored)
    return result


def _rationale_f1(model: Any, tok: Any, cfg: RunConfig, test: list[Example], preds: list[str],
                  taught: dict[str, str]) -> float:
    """Mean word F1 of the student's generated rationales on `test` (the first examples of `preds`) against those
    it would have been taught."""
    if cfg.distill.format != "two_task":
        generated = [rationale_of(p) for p in preds[:len(test)]]
    else:
        generated = predict(model, tok, [cfg.data.explain_prefix + ex.input for ex in test], cfg.eval.batch_size,
                            cfg.eval.max_new_tokens, cfg.student.max_input_length)
    return statistics.fmean(analysis.word_f1(g, taught[ex.id]) for g, ex in zip(generated, test))


def analyze(run: Path, cfg: RunConfig) -> dict:
    """Rationale quality per attribution method (answer overlap, human agreement, faithfulness on the teacher)
    and prediction overlap between the students (their first seed)."""
    examples = student_pool(run, cfg)
    rows = {m: attribution_rows(run, m) for m in attribution_methods(cfg)}
    result: dict[str, Any] = {
        "answer_overlap": {m: analysis.answer_overlap(r, examples) for m, r in rows.items()},
        "human_agreement": {m: h for m, r in rows.items() if (h := analysis.human_agreement(r, examples))},
    }
    n = min(cfg.analysis.faithfulness_examples, len(examples))
    if n:
        model, tok = load_trained(Layout(run).model(), cfg.teacher.dtype, scoring=True)
        result["faithfulness"] = {
            m: analysis.faithfulness(model, tok, examples[:n], r[:n], cfg.data.predict_prefix,
                                     tuple(cfg.analysis.fractions), cfg.attribution.batch_size,
                                     cfg.teacher.max_input_length, cfg.teacher.max_target_length)
            for m, r in rows.items()}
    seed = cfg.distill.seeds[0]
    preds = {v: predictions(run, f"{v}-seed{seed}") for v in cfg.distill.variants}
    result["prediction_overlap"] = [{"a": a, "b": b, **analysis.prediction_overlap(preds[a], preds[b])}
                                    for a in preds for b in preds if a != b]
    return result


def report(run: Path, cfg: RunConfig, units: list[Unit]) -> dict:
    """metrics.json, report.md and report.html (always rewritten: cheap, and reflects the latest units)."""
    lay = Layout(run)
    t0 = time.perf_counter()
    metrics = collect_metrics(run, cfg, units)
    write_report(run, cfg, metrics)   # before report_s exists: a report cannot time its own writing
    metrics["timing"]["report_s"] = round(time.perf_counter() - t0, 2)
    write_json(lay.metrics, metrics)
    log.info("report: %s, %s, %s", lay.report_html, lay.report_md, lay.metrics)
    return metrics


# ---- the run's own record ---------------------------------------------------------------------------------

def environment() -> dict[str, Any]:
    """Versions of everything that can change a result, for the run directory's record."""
    def v(package: str) -> str | None:
        try:
            return version(package)
        except PackageNotFoundError:
            return None
    return {"attrdistill": __version__, "python": platform.python_version(), "platform": platform.platform(),
            **{p: v(p) for p in ("torch", "transformers", "accelerate", "datasets", "tokenizers", "numpy")},
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}


def save_run_config(run: Path, cfg: RunConfig) -> None:
    """config.yaml and environment.json: what a run was made with (rewritten by every command)."""
    if not is_main():
        return
    lay = Layout(run)
    run.mkdir(parents=True, exist_ok=True)
    with atomic_open(lay.config) as fh:
        fh.write(dump_config(cfg))
    dtypes = {role: described(getattr(cfg, role).dtype) for role in ("teacher", "student")}   # `auto` resolved here
    write_json(lay.environment, {**environment(), "dtype": dtypes})
