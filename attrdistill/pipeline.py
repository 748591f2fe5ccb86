"""The plan of a run: every unit of work, what it reads, what changes it, and the work itself.

    units = plan(run, cfg)                        # the whole run, in order (runner.Unit)
    run_stages(run, cfg)                          # every unit; complete ones are skipped
    run_stages(run, cfg, ["attribute"])           # the units of one verb, on an existing run

The units and their folders under the run directory (stage in brackets):

    data                              [data]       the four splits (and a word-level tokenizer)
    teacher                           [finetune]   the fine-tuned teacher
    attributions/<method>             [attribute]  the teacher's word scores and top-k rationales on student_train
    attributions/test/<method>        [attribute]  the same on test, for the methods a student is taught
    teacher_logits, teacher_outputs   [distill]    what kd (sparse top-K logits) and seqkd students read
    students/<variant>/seed<n>        [distill]    one student per variant and seed
    predictions/<model>               [evaluate]   greedy test predictions of the teacher and each student
    analyses                          [analyze]    rationale quality per method, prediction overlap
    report                            [report]     metrics.json, report.md, report.html (always rewritten)

`runner.py` turns the plan into work: fingerprints, skip, resume and recompute, barriers, and the
"run `attrdistill finetune` first" errors. A new student objective, loss term or rationale source is an
entry in students.py, a new attribution method one in methods.py: the plan reads these registries.
"""

from __future__ import annotations

import logging
import statistics
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable

from attrdistill import __version__
from attrdistill.config import METHODS, RunConfig, check_environment, dump_config, pretrained, to_dict
from attrdistill.data import SPLITS, Example, build_splits, write_jsonl
from attrdistill.data.example import read_examples, read_jsonl
from attrdistill.distributed import is_main
from attrdistill.records import Prediction, TrainRow, WordScores, attribution_file, attribution_rows, predictions
from attrdistill.runner import Unit, execute, fingerprints
from attrdistill.store import atomic_open, write_json
from attrdistill.students import OBJECTIVES, TERMS, check_available, given_rationales, parse_variant

log = logging.getLogger("attrdistill")


def load_split(run: Path, split: str) -> list[Example]:
    return read_examples(run / "data" / f"{split}.jsonl")


def attribution_methods(cfg: RunConfig) -> list[str]:
    """Every method the attribute stage scores: the configured one, random, variants' and analysis.methods."""
    sources = [m for v in cfg.distill.variants for m in (parse_variant(v).rationale, parse_variant(v).guide)]
    return list(dict.fromkeys([cfg.attribution.method, "random"] + [m for m in sources if m in METHODS]
                              + cfg.analysis.methods))


def student_variants(cfg: RunConfig) -> list[str]:
    """distill.variants plus the k sweep's students, named '<method>@k<k>'."""
    sweep = [f"{cfg.attribution.method}@k{k}" for k in cfg.analysis.k_sweep if k != cfg.attribution.k]
    return list(dict.fromkeys(cfg.distill.variants + sweep))


def student_methods(cfg: RunConfig) -> list[str]:
    """The attribution methods whose rationales some student learns: the test split is attributed with them too,
    so that evaluation can say how well each student reproduces the rationale it was taught."""
    return list(dict.fromkeys(m for v in student_variants(cfg) if (m := parse_variant(v).rationale) in METHODS))


def student_key(variant: str, seed: int) -> str:
    return f"students/{variant}/seed{seed}"


def models(cfg: RunConfig) -> dict[str, tuple[str, str | None]]:
    """name -> (unit key, student variant or None) of every trained model: the teacher, then '<variant>-seed<n>'."""
    out: dict[str, tuple[str, str | None]] = {"teacher": ("teacher", None)}
    for variant in student_variants(cfg):
        for seed in cfg.distill.seeds:
            out[f"{variant}-seed{seed}"] = (student_key(variant, seed), variant)
    return out


# ---- the plan ---------------------------------------------------------------------------------------

def plan(run: Path, cfg: RunConfig) -> list[Unit]:
    """The whole run as units in the order they run; each names what it reads and the config that changes it."""
    roles = [(m.model, m.tokenizer) + ((m.gguf_file,) if m.gguf_file else ()) for m in (cfg.teacher, cfg.student)]
    units = [
        Unit("data", "data", partial(make_data, run, cfg), config=(__version__, to_dict(cfg.data), roles),
             what="the data stage"),
        Unit("teacher", "finetune", partial(finetune, run, cfg), ("data",), to_dict(cfg.teacher),
             "the fine-tuned teacher", everyone=True, check=partial(check_variants, run, cfg)),
    ]
    # What selects words (k, order, filters), not which method attribution.method names.
    selection = {**to_dict(cfg.attribution), "method": None}
    for split, methods in (("student_train", attribution_methods(cfg)), ("test", student_methods(cfg))):
        for m in methods:
            seed = cfg.data.seed if m == "random" else None
            units.append(Unit(_attribution_key(m, split), "attribute", partial(attribute_split, run, cfg, m, split),
                              ("data", "teacher"), (selection, seed), f"the teacher's {m} rationales of {split}",
                              everyone=True))
    variants = {name: parse_variant(name) for name in student_variants(cfg)}
    d = cfg.distill
    for signal in dict.fromkeys(v.reads for v in variants.values() if v.reads):
        work, config, check = TEACHER_SIGNALS[signal]
        units.append(Unit(signal, "distill", partial(work, run, cfg), ("data", "teacher"), config(d),
                          f"the teacher's {signal.replace('_', ' ').removeprefix('teacher ')}",
                          check=partial(check, run, cfg) if check else None))
    for name, v in variants.items():
        deps = ["data"] + [_attribution_key(m) for m in (v.rationale, v.guide) if m in METHODS]
        deps += [v.reads] * bool(v.reads) + ["teacher"] * (cfg.student.init == "teacher")   # weights: the teacher's
        how = {"rationale": (d.rationale_weight, d.format) if v.rationale else None, "k": v.k,
               "objective": [getattr(d, f) for f in OBJECTIVES[v.objective].settings],
               "match": v.term_settings(d)}
        for seed in d.seeds:
            units.append(Unit(student_key(name, seed), "distill", partial(train_student, run, cfg, name, seed),
                              tuple(dict.fromkeys(deps)), (to_dict(cfg.student), name, seed, how),
                              f"student {name} (seed {seed})", everyone=True))
    for name, (key, variant) in models(cfg).items():
        rationale = parse_variant(variant).rationale if variant else None
        taught = [_attribution_key(rationale, "test")] if rationale in METHODS else []
        units.append(Unit(f"predictions/{name}", "evaluate", partial(evaluate, run, cfg, name),
                          ("data", key, *taught), (to_dict(cfg.eval), "f1" if rationale else None),
                          f"the test predictions of {name}"))
    read = [_attribution_key(m) for m in attribution_methods(cfg)]
    firsts = [f"predictions/{v}-seed{cfg.distill.seeds[0]}" for v in cfg.distill.variants]
    units.append(Unit("analyses", "analyze", partial(analyze, run, cfg), ("data", "teacher", *read, *firsts),
                      (to_dict(cfg.analysis), cfg.data.predict_prefix), "the analyses"))
    units.append(Unit("report", "report", partial(report, run, cfg), tuple(u.key for u in units), cached=False))
    return units


def _attribution_key(method: str, split: str = "student_train") -> str:
    return str(attribution_file(Path(), method, split).parent)


def teacher_fingerprint(run: Path, cfg: RunConfig) -> str:
    """The teacher unit's fingerprint: the key of the caches (attribution shards, kd logits) of its weights."""
    return fingerprints(plan(run, cfg))["teacher"]


def run_stages(run: Path, cfg: RunConfig, stages: list[str] | None = None) -> dict:
    """Run the units of `stages` (None: all) in order, after checking that what they read from outside exists."""
    check_environment(cfg, stages)
    save_run_config(run, cfg)
    return execute(run, plan(run, cfg), stages)


# ---- the work of each unit ------------------------------------------------------------------------------

def make_data(run: Path, cfg: RunConfig) -> dict:
    """Build the four splits (and, for from-scratch models, the task's word-level tokenizer)."""
    from attrdistill.models import build_word_tokenizer
    splits = build_splits(cfg.data)
    for name in SPLITS:
        write_jsonl(run / "data" / f"{name}.jsonl", splits[name])
    if any(not (pretrained(m) or m.tokenizer) for m in (cfg.teacher, cfg.student)):
        texts = [t for name in ("teacher_train", "student_train") for ex in splits[name] for t in (ex.input, ex.label)]
        tok = build_word_tokenizer(texts + [cfg.data.predict_prefix, cfg.data.explain_prefix, ","])
        tok.save_pretrained(run / "data" / "tokenizer")
    return {name: len(rows) for name, rows in splits.items()}


def check_variants(run: Path, cfg: RunConfig) -> None:
    """Before the teacher trains: the data must have what every variant's rationale source reads."""
    student_train = load_split(run, "student_train")
    for variant in cfg.distill.variants:
        check_available(variant, student_train)


def train_rows(examples: list[Example], cfg: RunConfig, rationales: dict[str, str] | None = None,
               objective: str = "label", teacher: dict[str, dict] | None = None,
               term: tuple[str, dict[str, list[float]]] | None = None) -> list[TrainRow]:
    """Train rows (records.TrainRow); `objective`'s entry attaches `teacher` (id -> the row it reads: kd's sparse
    logits, seqkd's output); `term` (a loss term's name, id -> the teacher's word scores) adds what guides it."""
    from attrdistill.evaluation import single_target
    attach = OBJECTIVES[objective].attach
    one_sequence = rationales is not None and cfg.distill.format != "two_task"
    rows = []
    for ex in examples:
        row = TrainRow(source=cfg.data.predict_prefix + ex.input, target=ex.label)
        if attach is not None and teacher is not None:
            attach(row, teacher[ex.id], one_sequence and cfg.distill.format == "label_first")
        if term is not None:
            row.terms[term[0]] = WordScores(ex.input, cfg.data.predict_prefix, term[1][ex.id])
        if one_sequence:
            row.target = single_target(row.target, rationales[ex.id], cfg.distill.format)
        elif rationales is not None:
            row.explain_source, row.rationale = cfg.data.explain_prefix + ex.input, rationales[ex.id]
        rows.append(row)
    return rows


def forced_validation(cfg: RunConfig, rationale: bool) -> bool:
    """Validate by one forward pass (`training.train`): exact where answers are judged by exact match and the
    model's target is the label itself (not one sequence of label and rationale)."""
    from attrdistill.evaluation import exact_match, matcher
    return matcher(cfg.data.source) is exact_match and not (rationale and cfg.distill.format != "two_task")


def finetune(run: Path, cfg: RunConfig) -> dict:
    """Fine-tune the teacher on teacher_train, keeping the best checkpoint by validation accuracy."""
    from attrdistill.evaluation import matcher
    from attrdistill.models import load_model, load_tokenizer
    from attrdistill.training import train
    out = run / "teacher"
    tok = load_tokenizer(cfg.teacher, run / "data" / "tokenizer")
    rows = train_rows(load_split(run, "teacher_train"), cfg)
    model = load_model(cfg.teacher, tok, seed=cfg.teacher.train.seed, calibration=_pairs(rows))
    if cfg.teacher.train.max_steps == 0:
        log.info("teacher.train.max_steps is 0: using %s as the teacher without fine-tuning",
                 cfg.teacher.gguf_file or cfg.teacher.model)
        if is_main():
            model.save_pretrained(out / "model")
            tok.save_pretrained(out / "model")
        return {"best_valid_accuracy": None, "steps": 0}
    return train(model, tok, rows, train_rows(load_split(run, "valid"), cfg), cfg.teacher, out,
                 correct=matcher(cfg.data.source), label="teacher",
                 teacher_forced=forced_validation(cfg, rationale=False), report_to=cfg.report_to)


def attribute_split(run: Path, cfg: RunConfig, method: str, split: str) -> dict:
    """One method's word scores and top-k rationales of a split (student_train, or test).

    Scores are cached per shard in RUN/attribution_cache (kept when only k or the filters change); under
    `accelerate launch` every process scores its share of shards and the main one writes the rows.
    """
    from attrdistill.attribution import attribute, recall_at_k
    from attrdistill.models import load_trained
    from attrdistill.words import words
    examples = load_split(run, split)
    longest = max((len(words(ex.input)) for ex in examples), default=0)
    if split == "student_train" and method == cfg.attribution.method and cfg.attribution.k >= longest:
        log.warning("attribution.k=%d is not below the word count of any student-train input (the longest has %d "
                    "words): every rationale holds all of its input's candidate words", cfg.attribution.k, longest)
    model = tok = None
    if method != "random":
        model, tok = load_trained(run / "teacher" / "model", cfg.teacher.dtype)
    rows = attribute(examples, method, model, tok, cfg.attribution, prefix=cfg.data.predict_prefix,
                     max_input_length=cfg.teacher.max_input_length, max_target_length=cfg.teacher.max_target_length,
                     seed=cfg.data.seed, cache=run / "attribution_cache",
                     model_key=teacher_fingerprint(run, cfg))
    if is_main():   # each process scored its shards; the main one has every row
        write_jsonl(attribution_file(run, method, split), rows)
    return {"recall_at_k": recall_at_k(rows, examples), "n": len(rows)}


def rationales_for(run: Path, cfg: RunConfig, variant: str, examples: list[Example],
                   split: str = "student_train") -> dict[str, str] | None:
    """id -> rationale text of a student variant on `split` (student_train, or test); None without rationales."""
    v = parse_variant(variant)
    if v.rationale is None:
        return None
    if v.rationale not in METHODS:
        return given_rationales(v.rationale, examples, cfg.data.seed)
    from attrdistill.attribution import rationale_at
    rows = attribution_rows(run, v.rationale, split)
    return {r.id: rationale_at(r, v.k, cfg.attribution) if v.k else r.rationale for r in rows}


def check_shared_vocabulary(run: Path, cfg: RunConfig) -> None:
    """kd compares the two models' distributions token by token: refuse a pair with two vocabularies."""
    if cfg.student.init == "teacher":   # the student is the teacher, cut down
        return
    from transformers import AutoConfig

    from attrdistill.kd import check_vocabularies
    from attrdistill.models import load_tokenizer
    student_tok = load_tokenizer(cfg.student, run / "data" / "tokenizer")
    student = (AutoConfig.from_pretrained(cfg.student.model).vocab_size if pretrained(cfg.student) and cfg.student.model
               and not cfg.student.gguf_file else len(student_tok))
    check_vocabularies(AutoConfig.from_pretrained(run / "teacher" / "model").vocab_size, student)


def _sources(run: Path, cfg: RunConfig, split: str) -> tuple[list[Example], list[str]]:
    examples = load_split(run, split)
    return examples, [cfg.data.predict_prefix + ex.input for ex in examples]


def teacher_logits(run: Path, cfg: RunConfig) -> dict:
    """The teacher's sparse top-K logits of the gold label's tokens on student_train (what kd students read)."""
    from attrdistill.kd import teacher_logits as sparse_logits
    from attrdistill.models import load_trained
    examples, sources = _sources(run, cfg, "student_train")
    model, tok = load_trained(run / "teacher" / "model", cfg.teacher.dtype)
    rows = sparse_logits(model, tok, [ex.id for ex in examples], sources, [ex.label for ex in examples],
                         cfg.distill.kd_top_k, cfg.distill.kd_temperature, cfg.teacher.max_input_length,
                         cfg.teacher.max_target_length, cfg.attribution.batch_size, cfg.attribution.shard_size,
                         cache=run / "kd_cache", model_key=teacher_fingerprint(run, cfg))
    write_jsonl(run / "teacher_logits" / "student_train.jsonl", rows)
    return {"n": len(rows), "top_k": cfg.distill.kd_top_k}


def teacher_outputs(run: Path, cfg: RunConfig) -> dict:
    """The teacher's greedy outputs on student_train (the targets of seqkd students)."""
    from attrdistill.evaluation import accuracy, matcher, predict
    from attrdistill.models import load_trained
    examples, sources = _sources(run, cfg, "student_train")
    model, tok = load_trained(run / "teacher" / "model", cfg.teacher.dtype)
    preds = predict(model, tok, sources, cfg.eval.batch_size, cfg.teacher.max_target_length,
                    cfg.teacher.max_input_length)
    write_jsonl(run / "teacher_outputs" / "student_train.jsonl",
                [{"id": ex.id, "prediction": p} for ex, p in zip(examples, preds)])
    return {"n": len(preds), "teacher_accuracy": accuracy(preds, [ex.label for ex in examples],
                                                          matcher(cfg.data.source), [ex.choices for ex in examples])}


# What objectives read from the teacher (students.Objective.reads): the work, the distill.* settings that change
# it, and a check before it.
TEACHER_SIGNALS: dict[str, tuple[Callable[[Path, RunConfig], dict], Callable[[Any], Any], Callable | None]] = {
    "teacher_logits": (teacher_logits, lambda d: (d.kd_top_k, d.kd_temperature), check_shared_vocabulary),
    "teacher_outputs": (teacher_outputs, lambda d: None, None),
}


def _pairs(rows: list[TrainRow]) -> list[tuple[str, str]]:
    """(source, target) of training rows: what `keep_by: influence` measures the blocks on."""
    return [(r.source, r.target) for r in rows]


def student_start(run: Path, cfg: RunConfig, seed: int, examples: list[Example]) -> tuple[Any, Any]:
    """A new student and its tokenizer: as configured, or with `student.init: teacher` the run's fine-tuned
    teacher (and its tokenizer) with the blocks student.keep_every / keep_by / keep_blocks select. Influence is
    measured on the label task of `examples`, so every variant and seed starts from the same blocks."""
    from attrdistill.models import load_model, load_tokenizer
    from_teacher = cfg.student.init == "teacher"
    tok = load_tokenizer(cfg.student, run / ("teacher/model" if from_teacher else "data/tokenizer"))
    model = load_model(cfg.student, tok, seed=cfg.student.train.seed + seed,
                       teacher=run / "teacher" / "model" if from_teacher else None,
                       calibration=_pairs(train_rows(examples, cfg)))
    return model, tok


def train_student(run: Path, cfg: RunConfig, variant: str, seed: int) -> dict:
    """Train one student of `variant` on student_train."""
    from attrdistill.evaluation import matcher
    from attrdistill.training import train
    v, d = parse_variant(variant), cfg.distill
    examples = load_split(run, "student_train")
    teacher = {r["id"]: r for r in read_jsonl(run / v.reads / "student_train.jsonl")} if v.reads else None
    term = (v.term, {r.id: r.scores for r in attribution_rows(run, v.guide)}) if v.term else None
    rows = train_rows(examples, cfg, rationales_for(run, cfg, variant, examples), v.objective, teacher, term)
    valid = train_rows(load_split(run, "valid"), cfg)
    model, tok = student_start(run, cfg, seed, examples)
    return train(model, tok, rows, valid, cfg.student, run / student_key(variant, seed),
                 rationale_weight=d.rationale_weight, seed=seed, correct=matcher(cfg.data.source),
                 label=f"{variant}-seed{seed}", objective_loss=OBJECTIVES[v.objective].loss_function(d),
                 term=TERMS[v.term].build(d) if v.term else None,
                 teacher_forced=forced_validation(cfg, rationale=v.rationale is not None),
                 report_to=cfg.report_to)


def taught_on_test(run: Path, cfg: RunConfig, variant: str, test: list[Example]) -> dict[str, str] | None:
    """The rationales a student would have been taught for the test inputs; None (logged) where they cannot be had."""
    try:
        return rationales_for(run, cfg, variant, test, split="test")
    except ValueError as e:   # e.g. the test split has no LLM rationales
        log.info("%s: no rationale F1 on test (%s)", variant, e)
        return None


def evaluate(run: Path, cfg: RunConfig, name: str) -> dict:
    """Greedy predictions of one model (the teacher or a student) on the test split; exact-match accuracy."""
    from attrdistill.evaluation import accuracy, matcher, predict
    from attrdistill.models import load_trained
    key, variant = models(cfg)[name]
    test, sources = _sources(run, cfg, "test")
    taught = taught_on_test(run, cfg, variant, test) if variant else None
    role = cfg.student if variant else cfg.teacher
    model, tok = load_trained(run / key / "model", role.dtype)
    preds = predict(model, tok, sources, cfg.eval.batch_size, cfg.eval.max_new_tokens, role.max_input_length)
    correct = matcher(cfg.data.source)
    write_jsonl(run / "predictions" / name / "test.jsonl",
                [Prediction(ex.id, p, ex.label, correct(p, ex.label, ex.choices)) for ex, p in zip(test, preds)])
    result = {"accuracy": accuracy(preds, [ex.label for ex in test], correct, [ex.choices for ex in test]),
              "n": len(test)}
    if taught is not None:   # how well the student reproduces the rationale it was taught
        result["rationale_f1"] = _rationale_f1(model, tok, cfg, test, preds, taught)
    return result


def _rationale_f1(model: Any, tok: Any, cfg: RunConfig, test: list[Example], preds: list[str],
                  taught: dict[str, str]) -> float:
    """Mean word F1 of the student's generated rationales on test against those it would have been taught."""
    from attrdistill import analysis
    from attrdistill.evaluation import predict, rationale_of
    if cfg.distill.format != "two_task":
        generated = [rationale_of(p) for p in preds]
    else:
        generated = predict(model, tok, [cfg.data.explain_prefix + ex.input for ex in test], cfg.eval.batch_size,
                            cfg.eval.max_new_tokens, cfg.student.max_input_length)
    return statistics.fmean(analysis.word_f1(g, taught[ex.id]) for g, ex in zip(generated, test))


def analyze(run: Path, cfg: RunConfig) -> dict:
    """Rationale quality per attribution method (answer overlap, human agreement, faithfulness on the teacher)
    and prediction overlap between the students (their first seed)."""
    from attrdistill import analysis
    examples = load_split(run, "student_train")
    rows = {m: attribution_rows(run, m) for m in attribution_methods(cfg)}
    result: dict[str, Any] = {
        "answer_overlap": {m: analysis.answer_overlap(r, examples) for m, r in rows.items()},
        "human_agreement": {m: h for m, r in rows.items() if (h := analysis.human_agreement(r, examples))},
    }
    n = min(cfg.analysis.faithfulness_examples, len(examples))
    if n:
        from attrdistill.models import load_trained
        model, tok = load_trained(run / "teacher" / "model", cfg.teacher.dtype)
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


def report(run: Path, cfg: RunConfig) -> dict:
    """metrics.json, report.md and report.html (always rewritten: cheap, and reflects the latest units)."""
    from attrdistill.metrics import collect_metrics
    from attrdistill.report import write_report
    t0 = time.perf_counter()
    metrics = collect_metrics(run, cfg, plan(run, cfg))
    write_report(run, cfg, metrics)   # before report_s exists: a report cannot time its own writing
    metrics["timing"]["report_s"] = round(time.perf_counter() - t0, 2)
    write_json(run / "metrics.json", metrics)
    log.info("report: %s, %s, %s", run / "report.html", run / "report.md", run / "metrics.json")
    return metrics


# ---- the run's own record ---------------------------------------------------------------------------------

def environment() -> dict[str, Any]:
    """Versions of everything that can change a result, for the run directory's record."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import torch

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
    run.mkdir(parents=True, exist_ok=True)
    with atomic_open(run / "config.yaml") as fh:
        fh.write(dump_config(cfg))
    write_json(run / "environment.json", environment())
