"""metrics.json: the machine-readable summary of a run, read from the DONE records of its units.

    metrics = collect_metrics(run, cfg, plan.plan(run, cfg))

Accuracies and recalls are in 0..1. Besides the figures of each unit it holds what follows from them:
the teacher gap, the k sweep, the table of attribution methods, and the verdict the report opens with
(the best student, its gain over standard and kd with the 95% intervals over the paired seeds).

Each student keeps its validation accuracy beside test (students[v]["valid"]: the best validation accuracy of
the checkpoint training kept, mean and std over seeds, per seed, and that checkpoint's step). The verdict
chooses the best student on it, never on test: the largest of several test accuracies is biased upward, and an
interval computed on the same test set after choosing on it is too optimistic. Test is then reported for that
choice; the student best on test is named beside it when it differs.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any, Callable

from attrdistill import __version__
from attrdistill.config import RunConfig
from attrdistill.distill.rows import rationales_for, student_pool
from attrdistill.evaluate import analysis
from attrdistill.pipeline.layout import (
    TRANSFER,
    Layout,
    attribution_key,
    attribution_methods,
    prediction_key,
    student_key,
    student_variants,
)
from attrdistill.pipeline.runner import Unit, done_record
from attrdistill.registry.methods import control
from attrdistill.registry.variants import OBJECTIVES, RATIONALES, STANDARD, parse_variant
from attrdistill.report.paper import paper_accuracy


def _mean_std(values: list[float]) -> dict[str, float]:
    return {"accuracy": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0}


def collect_metrics(run: Path, cfg: RunConfig, units: list[Unit]) -> dict:
    """metrics.json of a run whose units are complete (the runner has checked them)."""
    records = {u.key: done_record(run / u.key) for u in units if u.cached}
    result = {key: r["result"] for key, r in records.items()}
    seconds = {key: r["seconds"] for key, r in records.items()}
    teacher_eval = result[prediction_key("teacher")]
    students = {}
    for variant in student_variants(cfg):
        evals = [result[prediction_key(f"{variant}-seed{seed}")] for seed in cfg.distill.seeds]
        per_seed = {seed: r["accuracy"] for seed, r in zip(cfg.distill.seeds, evals)}
        students[variant] = {**_mean_std(list(per_seed.values())), "per_seed": per_seed}
        f1 = [r.get("rationale_f1") for r in evals]
        if f1 and all(x is not None for x in f1):
            students[variant]["rationale_f1"] = statistics.fmean(f1)
            students[variant]["rationale_n"] = evals[0].get("rationale_n", teacher_eval["n"])
        valid = _validation(run, variant, cfg.distill.seeds, result)
        if valid is not None:
            students[variant]["valid"] = valid
    attr = {m: result[attribution_key(m)] for m in attribution_methods(cfg)}
    stage = {u.key: u.stage for u in units}
    # Every unit counts in its stage's time (a teacher signal's unit in distill's, beside the students).
    timing = {f"{verb}_s": sum(s for key, s in seconds.items() if stage[key] == verb)
              for verb in ("data", "finetune", "attribute", "distill", "evaluate", "analyze")}
    first = result[student_key(student_variants(cfg)[0], cfg.distill.seeds[0])]
    metrics = {
        "teacher": {"accuracy": teacher_eval["accuracy"],
                    "best_valid_accuracy": result["teacher"]["best_valid_accuracy"]},
        "students": students,
        "attribution": {"method": cfg.attribution.method, "k": cfg.attribution.k,
                        "recall_at_k": attr[cfg.attribution.method]["recall_at_k"],
                        "random_recall_at_k": attr[control()]["recall_at_k"],
                        "n_examples": attr[cfg.attribution.method]["n"]},
        "timing": timing,
        "n_test": teacher_eval["n"],
        "student_examples": {"seen": first.get("examples"), "of": first.get("of", attr[cfg.attribution.method]["n"]),
                             "limit": cfg.distill.student_limit,
            "file": cfg.data.student_train_file, "teacher_labelled": (result.get(TRANSFER) or {}).get("n")},
        "paper": {"setting": cfg.paper, "teacher": paper_accuracy(cfg.paper, "teacher"),
                  "students": {v: paper_accuracy(cfg.paper, v) for v in cfg.distill.variants}} if cfg.paper else None,
        "version": __version__,
    }
    metrics["analyses"] = _analyses(cfg, metrics, result["analyses"], attr)
    metrics["verdict"] = verdict(run, cfg, students)
    return metrics


# A student still improves at its end when the best validation accuracy of its last fifth of evaluations beats
# the best before them by more than this (2 points: 6 of the built-in task's 300 validation examples).
RISING = 0.02


def _still_rising(path: Path, max_steps: int) -> bool:
    """Did training (its log_history.json at `path`) run all max_steps with validation accuracy still climbing
    (see RISING)?"""
    try:
        history = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    evals = [h["eval_accuracy"] for h in history if "eval_accuracy" in h]
    last_step = max((h.get("step", 0) for h in history), default=0)
    tail = max(1, len(evals) // 5)
    return last_step >= max_steps and len(evals) > tail and max(evals[-tail:]) - max(evals[:-tail]) > RISING


def _kept(path: Path) -> tuple[float | None, int | None]:
    """(best validation accuracy, the step of the checkpoint that has it) from a log_history.json; (None, None)
    without evaluations. The Trainer keeps the first evaluation of the best accuracy (a later one must beat it)."""
    try:
        history = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None
    if not isinstance(history, list):
        return None, None
    evals = [(h["eval_accuracy"], h.get("step")) for h in history if isinstance(h, dict) and "eval_accuracy" in h]
    if not evals:
        return None, None
    best = max(acc for acc, _ in evals)
    return best, next(step for acc, step in evals if acc == best)


def _validation(run: Path, variant: str, seeds: list[int], result: dict[str, dict]) -> dict[str, Any] | None:
    """students[variant]["valid"]: the kept checkpoint's validation accuracy per seed (training's DONE record,
    or, where a record has none, its log_history.json: runs made before the record kept it), mean and std, and
    the step of that checkpoint per seed (None where no log says); None where a seed has no validation accuracy."""
    per_seed, step = {}, {}
    for seed in seeds:
        key = student_key(variant, seed)
        logged, step[seed] = _kept(Layout(run).history(key))
        recorded = (result.get(key) or {}).get("best_valid_accuracy")
        per_seed[seed] = logged if recorded is None else recorded
        if per_seed[seed] is None:
            return None
    return {**_mean_std(list(per_seed.values())), "per_seed": per_seed, "kept_step": step}


# Mean validation accuracies within this of the best tie (0.1 point); the simpler of the tied variants is chosen.
TIE = 0.001


def parts(variant: str) -> int:
    """How many parts a variant joins (objective, rationale, loss term): 0 for the label-only student."""
    v, plain = parse_variant(variant), parse_variant(STANDARD)
    return sum(getattr(v, f) != getattr(plain, f) for f in ("objective", "rationale", "term"))


def choose(valid: dict[str, float], simpler: Callable[[str], int] = parts) -> tuple[str, list[str]]:
    """(the chosen variant, the others it tied with): the highest mean validation accuracy; among those within
    TIE of it the one with the fewest parts (`simpler`), then the higher accuracy, then the first listed."""
    top = max(valid.values())
    tied = [v for v, acc in valid.items() if top - acc <= TIE + 1e-9]
    best = min(tied, key=lambda v: (simpler(v), -valid[v]))
    return best, [v for v in tied if v != best]


def baselines(students: dict[str, Any]) -> list[str]:
    """The students a gain is reported over: standard and the baseline objectives (kd) this run trained."""
    return [b for b in (STANDARD, *(o for o, e in OBJECTIVES.items() if e.baseline)) if b in students]


def _gain(students: dict[str, dict], variant: str, base: str, seeds: list) -> dict[str, float | None]:
    gain, low, high = analysis.paired_gain([students[variant]["per_seed"][s] for s in seeds],
                                           [students[base]["per_seed"][s] for s in seeds])
    one_seed = math.isnan(low)   # no interval from a single pair
    return {"gain": gain, "low": None if one_seed else low, "high": None if one_seed else high}


def verdict(run: Path, cfg: RunConfig, students: dict[str, dict]) -> dict[str, Any]:
    """What the report opens with: the best student by mean validation accuracy over the seeds (ties within
    TIE to the simpler variant; on test only where a student has no validation accuracy), its test accuracy and
    gain over standard (gain, low, high) and over every baseline (over: {baseline: ...}) with the 95% interval
    over the paired seeds, the student best on test, the students still improving when training stopped, and
    one example of every rationale."""
    seeds = cfg.distill.seeds
    test = {v: s["accuracy"] for v, s in students.items()}
    on_valid = all(s.get("valid") for s in students.values())
    best, tied = choose({v: s["valid"]["accuracy"] for v, s in students.items()} if on_valid else test)
    out: dict[str, Any] = {"best": best, "accuracy": students[best]["accuracy"], "std": students[best]["std"],
                           "seeds": len(seeds), "chosen_on": "validation" if on_valid else "test",
                           "valid_accuracy": students[best]["valid"]["accuracy"] if on_valid else None,
                           "valid_std": students[best]["valid"]["std"] if on_valid else None,
                           "tied": tied, "best_on_test": max(test, key=test.get),
                           "no_valid": [v for v, s in students.items() if not s.get("valid")]}
    over = {b: _gain(students, best, b, seeds) for b in baselines(students) if b != best}
    out["over"] = over
    if STANDARD in over:
        out.update(over[STANDARD])
    out["still_rising"] = [f"{v}/seed{s}" for v in students for s in seeds
                           if _still_rising(Layout(run).history(student_key(v, s)), cfg.student.train.max_steps)]
    # the first example students learn from: the teacher attributed those only (distill.student_limit)
    ex = student_pool(run, cfg)[0]
    shown: dict[str, str] = {}
    for variant in students:
        v = parse_variant(variant)
        # a student with a loss term generates no rationale: show the top-k words of the scores that guide it
        source = variant if v.rationale is not None else v.guide
        if source:
            shown[variant] = rationales_for(run, cfg, source, [ex])[ex.id]
    out["example"] = {"id": ex.id, "input": ex.input, "label": ex.label, "rationales": shown}
    return out


def _analyses(cfg: RunConfig, metrics: dict, found: dict, attr: dict) -> dict:
    """metrics["analyses"]: the analyze stage's results, the attribute stage's recalls, and what follows
    from the accuracies."""
    students = metrics["students"]
    out = {key: found[key] for key in ("answer_overlap", "prediction_overlap", "human_agreement", "faithfulness")
           if found.get(key)}
    out["teacher_gap"] = analysis.teacher_gap(metrics)
    if cfg.analysis.k_sweep:
        ks = sorted(set(cfg.analysis.k_sweep) | {cfg.attribution.k})
        name = {k: cfg.attribution.method if k == cfg.attribution.k else f"{cfg.attribution.method}@k{k}" for k in ks}
        out["k_sweep"] = {"method": cfg.attribution.method,
                          "points": [{"k": k, **{f: students[name[k]][f] for f in ("accuracy", "std")}}
                                     for k in ks if name[k] in students]}
    faith = found.get("faithfulness", {})
    table = {}
    # Beside the methods, the rationale sources that are the task's true words (the oracle): recall 1 by definition.
    references = [name for name, source in RATIONALES.items() if source.reference and name in students]
    for m in list(attr) + references:
        table[m] = {"recall_at_k": 1.0 if m in references else attr[m]["recall_at_k"],
                    "comprehensiveness": faith.get(m, {}).get("comprehensiveness"),
                    "sufficiency": faith.get(m, {}).get("sufficiency"),
                    "student_accuracy": students.get(m, {}).get("accuracy"),
                    "student_std": students.get(m, {}).get("std")}
    out["methods"] = table
    return out

