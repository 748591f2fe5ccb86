"""The stages of a run, each reading and writing one run directory.

    data -> finetune (teacher) -> attribute -> distill (students) -> evaluate -> analyze -> report

    run_stages(Path("runs/default"), cfg)              # every stage; finished ones are skipped
    STAGES["attribute"](Path("runs/default"), cfg)     # one stage on an existing run

A stage's output directory is complete only when its DONE.json is written, last, with the
fingerprint of everything the output depends on (its config section and its inputs'
fingerprints). A matching DONE.json means skip; a different one means the config changed, so the
stage recomputes; a directory with no DONE.json is resumed where possible (Trainer checkpoints).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import statistics
import time
from pathlib import Path
from typing import Any, Callable

from attrdistill import __version__, analysis
from attrdistill.attribution import attribute, rationale_at, recall_at_k
from attrdistill.attribution import settings as attribution_settings
from attrdistill.config import METHODS, RunConfig, check_environment, dump_config, pretrained, to_dict
from attrdistill.data import SPLITS, Example, build_splits, write_jsonl
from attrdistill.data.example import read_examples, read_jsonl
from attrdistill.distributed import barrier, is_main, on_main_only
from attrdistill.errors import StageError
from attrdistill.evaluation import accuracy, exact_match, matcher, predict, rationale_of, single_target
from attrdistill.models import build_word_tokenizer, load_model, load_tokenizer, load_trained
from attrdistill.paper import paper_accuracy
from attrdistill.report import write_report
from attrdistill.store import atomic_open, fingerprint, manifest, verify, write_json
from attrdistill.students import Variant, check_available, given_rationales, parse_variant
from attrdistill.training import KDSettings, train
from attrdistill.words import words

log = logging.getLogger("attrdistill")


# ---- bookkeeping -------------------------------------------------------------------------------

def completed(out: Path, fp: str) -> dict | None:
    """The DONE record of `out` if it was made with fingerprint `fp` and its files match its manifest."""
    done = out / "DONE.json"
    if not done.is_file():
        return None
    try:
        record = json.loads(done.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        log.warning("%s is unreadable: the stage will be recomputed", done)
        return None
    if record.get("fingerprint") != fp:
        return None
    problem = verify(out, record.get("files", {}))
    if problem:
        log.warning("%s: %s; the stage will be recomputed", out, problem)
        return None
    return record


def run_unit(out: Path, fp: str, label: str, work: Callable[[], dict], everyone: bool = False) -> dict:
    """Run `work` into `out` unless already complete with `fp`; returns its DONE record.

    DONE.json is written last and lists every result file with its size and checksum, so a stage
    is complete only when all of it is on disk intact; scratch checkpoints are removed after it.
    Under `accelerate launch` the main process alone prepares `out` and writes DONE.json; `work`
    runs on every process when `everyone` (training and attribution, which the processes share),
    else on the main process while the others wait.
    """
    record = completed(out, fp)
    barrier()   # every process has decided from the same files before the main one changes them
    if record is not None:
        log.info("skip %s: complete (%s)", label, out / "DONE.json")
        return record
    started = out / "STARTED.json"
    if is_main():
        if out.exists() and (not started.is_file() or _fingerprint_of(started) != fp):
            log.info("%s: inputs or config changed since %s was written, recomputing", label, out)
            shutil.rmtree(out)
        (out / "DONE.json").unlink(missing_ok=True)   # a stale or damaged record must not survive a recompute
        out.mkdir(parents=True, exist_ok=True)
        write_json(started, {"fingerprint": fp})
        log.info("%s: start", label)
    barrier()
    t0 = time.perf_counter()
    result = work() if everyone or is_main() else {}
    barrier()
    if is_main():
        record = {"fingerprint": fp, "seconds": round(time.perf_counter() - t0, 2), "result": result,
                  "files": manifest(out)}
        write_json(out / "DONE.json", record)
        shutil.rmtree(out / "checkpoints", ignore_errors=True)   # resumable state, useless once the stage is done
        log.info("%s: done in %.1fs", label, record["seconds"])
    barrier()
    return record if record is not None else done_record(out)   # the main process has just verified and written it


def done_record(out: Path) -> dict:
    """The DONE record of a stage known to be complete (no checksums: that is `completed`'s work)."""
    return json.loads((out / "DONE.json").read_text(encoding="utf-8"))


def _fingerprint_of(path: Path) -> str | None:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("fingerprint")
    except (ValueError, OSError):
        return None


def require(out: Path, what: str, verb: str, fp: str) -> dict:
    """The DONE record of an input stage; a clear error if it is missing, made with another config, or damaged."""
    done = out / "DONE.json"
    if not done.is_file():
        raise StageError(f"{what} is missing ({done}); run `attrdistill {verb}` on this run directory first")
    record = completed(out, fp)
    if record is None:
        raise StageError(f"{what} ({out}) was made with another config or is damaged (see the log); run "
                         f"`attrdistill {verb}` again first")
    return record


def load_split(run: Path, split: str) -> list[Example]:
    return read_examples(run / "data" / f"{split}.jsonl")


# ---- fingerprints: what each output depends on ---------------------------------------------------

def fp_data(cfg: RunConfig) -> str:
    roles = [(m.model, m.tokenizer) + ((m.gguf_file,) if m.gguf_file else ()) for m in (cfg.teacher, cfg.student)]
    return fingerprint("data", __version__, to_dict(cfg.data), roles)


def fp_teacher(cfg: RunConfig) -> str:
    return fingerprint("teacher", fp_data(cfg), to_dict(cfg.teacher))


def attribution_methods(cfg: RunConfig) -> list[str]:
    """Every method the attribute stage scores: the configured one, random, variants' and analysis.methods."""
    sources = [m for v in cfg.distill.variants for m in (parse_variant(v).rationale, parse_variant(v).match)]
    return list(dict.fromkeys([cfg.attribution.method, "random"] + [m for m in sources if m in METHODS]
                              + cfg.analysis.methods))


def student_variants(cfg: RunConfig) -> list[str]:
    """distill.variants plus the k sweep's students, named '<method>@k<k>'."""
    sweep = [f"{cfg.attribution.method}@k{k}" for k in cfg.analysis.k_sweep if k != cfg.attribution.k]
    return list(dict.fromkeys(cfg.distill.variants + sweep))


def fp_method(cfg: RunConfig, method: str, k: int | None = None) -> str:
    """One method's rationales: the teacher, the method, and how words are selected (not attribution.method)."""
    selection = {**attribution_settings(cfg.attribution), "method": None, "k": k or cfg.attribution.k}
    return fingerprint("method", fp_teacher(cfg), method, selection, cfg.data.seed if method == "random" else None)


def student_methods(cfg: RunConfig) -> list[str]:
    """The attribution methods whose rationales some student learns: the test split is attributed with them too,
    so that evaluation can say how well each student reproduces the rationale it was taught."""
    return list(dict.fromkeys(m for v in student_variants(cfg) if (m := parse_variant(v).rationale) in METHODS))


def fp_attribution(cfg: RunConfig) -> str:
    return fingerprint("attribution", [fp_method(cfg, m) for m in attribution_methods(cfg)],
                       "test", [fp_method(cfg, m) for m in student_methods(cfg)])


def fp_teacher_logits(cfg: RunConfig) -> str:
    return fingerprint("teacher_logits", fp_teacher(cfg), cfg.distill.kd_top_k, cfg.distill.kd_temperature)


def fp_teacher_outputs(cfg: RunConfig) -> str:
    return fingerprint("teacher_outputs", fp_teacher(cfg))


def fp_student(cfg: RunConfig, variant: str, seed: int) -> str:
    v = parse_variant(variant)
    upstream = fp_method(cfg, v.rationale, v.k) if v.rationale in METHODS else fp_data(cfg)
    how = (cfg.distill.rationale_weight, cfg.distill.format) if v.rationale else None
    teacher = []   # only for the objectives that read the teacher: the other students keep their fingerprints
    if v.needs_teacher_logits:
        d = cfg.distill
        teacher = [fp_teacher_logits(cfg), d.kd_alpha, d.kd_temperature, d.kd_divergence, d.kd_beta]
    elif v.needs_teacher_outputs:
        teacher = [fp_teacher_outputs(cfg)]
    if v.match:
        teacher += [fp_method(cfg, v.match), cfg.distill.match_weight]
    start = [fp_teacher(cfg)] if cfg.student.init == "teacher" else []   # its weights are the teacher's
    return fingerprint("student", upstream, to_dict(cfg.student), variant, seed, how, *teacher, *start)


def fp_predictions(cfg: RunConfig, model_fp: str, variant: str | None = None) -> str:
    """The test predictions of a model (the teacher, or a student `variant`): a student with a rationale is also
    scored on the rationales it generates, so its evaluation is another unit."""
    fp = fingerprint("eval", model_fp, to_dict(cfg.eval))
    return fingerprint(fp, "f1") if variant is not None and parse_variant(variant).rationale else fp


def student_dir(run: Path, variant: str, seed: int) -> Path:
    return run / "students" / variant / f"seed{seed}"


# ---- stages ----------------------------------------------------------------------------------------

def stage_data(run: Path, cfg: RunConfig) -> dict:
    """Build the four splits (and, for from-scratch models, the task's word-level tokenizer)."""
    def work() -> dict:
        splits = build_splits(cfg.data)
        for name in SPLITS:
            write_jsonl(run / "data" / f"{name}.jsonl", splits[name])
        if any(not (pretrained(m) or m.tokenizer) for m in (cfg.teacher, cfg.student)):
            texts = [t for name in ("teacher_train", "student_train") for ex in splits[name]
                     for t in (ex.input, ex.label)]
            tok = build_word_tokenizer(texts + [cfg.data.predict_prefix, cfg.data.explain_prefix, ","])
            tok.save_pretrained(run / "data" / "tokenizer")
        return {name: len(rows) for name, rows in splits.items()}
    return run_unit(run / "data", fp_data(cfg), "data", work)


def _rows(examples: list[Example], cfg: RunConfig, rationales: dict[str, str] | None = None,
          targets: dict[str, str] | None = None, kd: dict[str, dict] | None = None,
          match: dict[str, list[float]] | None = None) -> list[dict]:
    """Train rows; `targets` replaces the gold labels (seqkd), `kd` adds the teacher's sparse logits per row,
    `match` the teacher's word scores that the student's saliency is pulled toward."""
    rows = []
    for ex in examples:
        label = targets[ex.id] if targets is not None else ex.label
        row: dict[str, Any] = {"source": cfg.data.predict_prefix + ex.input, "target": label}
        if kd is not None:
            row["kd"] = kd[ex.id]
            if rationales is not None and cfg.distill.format == "label_first":
                # 'X, because ...': the teacher's last entry predicts the label's EOS, where this target goes on
                row["kd"] = {name: kd[ex.id][name][:-1] for name in ("ids", "logits", "log_norm")}
        if match is not None:
            row["match"] = {"input": ex.input, "prefix": cfg.data.predict_prefix, "scores": match[ex.id]}
        if rationales is not None and cfg.distill.format != "two_task":
            row["target"] = single_target(label, rationales[ex.id], cfg.distill.format)
        elif rationales is not None:
            row.update(explain_source=cfg.data.explain_prefix + ex.input, rationale=rationales[ex.id])
        rows.append(row)
    return rows


def stage_finetune(run: Path, cfg: RunConfig) -> dict:
    """Fine-tune the teacher on teacher_train, keeping the best checkpoint by validation accuracy."""
    require(run / "data", "the data stage", "run", fp_data(cfg))
    student_train = load_split(run, "student_train")
    for variant in cfg.distill.variants:   # before the teacher trains: the data must have what a variant reads
        check_available(variant, student_train)
    out = run / "teacher"

    def work() -> dict:
        tok = load_tokenizer(cfg.teacher, run / "data" / "tokenizer")
        model = load_model(cfg.teacher, tok, seed=cfg.teacher.train.seed)
        if cfg.teacher.train.max_steps == 0:
            log.info("teacher.train.max_steps is 0: using %s as the teacher without fine-tuning",
                     cfg.teacher.gguf_file or cfg.teacher.model)
            if is_main():
                model.save_pretrained(out / "model")
                tok.save_pretrained(out / "model")
            return {"best_valid_accuracy": None, "steps": 0}
        return train(model, tok, _rows(load_split(run, "teacher_train"), cfg), _rows(load_split(run, "valid"), cfg),
                     cfg.teacher, out, correct=matcher(cfg.data.source), label="teacher",
                     teacher_forced=forced_validation(cfg, rationale=False), report_to=cfg.report_to)
    return run_unit(out, fp_teacher(cfg), "finetune teacher", work, everyone=True)


def stage_attribute(run: Path, cfg: RunConfig) -> dict:
    """Rationales for student_train: the teacher's top-k words by `attribution.method`, and random words.

    Scores are cached per shard in RUN/attribution_cache (kept when only k or the filters change);
    under `accelerate launch` every process scores its share of shards and the main one writes the rows.
    """
    require(run / "teacher", "the fine-tuned teacher", "finetune", fp_teacher(cfg))
    out = run / "attributions"
    examples = load_split(run, "student_train")
    longest = max((len(words(ex.input)) for ex in examples), default=0)
    if cfg.attribution.k >= longest:
        log.warning("attribution.k=%d is not below the word count of any student-train input (the longest has %d "
                    "words): every rationale holds all of its input's candidate words", cfg.attribution.k, longest)
    methods = attribution_methods(cfg)
    model = tok = None

    def rows_of(method: str, examples: list[Example]) -> list[dict]:
        nonlocal model, tok
        if model is None and method != "random":
            model, tok = load_trained(run / "teacher" / "model", cfg.teacher.dtype)
        return attribute(examples, method, model, tok, cfg.attribution, prefix=cfg.data.predict_prefix,
                         max_input_length=cfg.teacher.max_input_length,
                         max_target_length=cfg.teacher.max_target_length, seed=cfg.data.seed,
                         cache=run / "attribution_cache", model_key=fp_teacher(cfg))

    def work() -> dict:
        result: dict[str, Any] = {}
        for method in methods:
            rows = rows_of(method, examples)   # each process scores its shards; the main process gets every row
            if is_main():
                write_jsonl(out / f"{method}.jsonl", rows)
                result[method] = {"recall_at_k": recall_at_k(rows, examples), "n": len(rows)}
        test = load_split(run, "test")
        for method in student_methods(cfg):
            rows = rows_of(method, test)
            if is_main():
                write_jsonl(out / f"{method}.test.jsonl", rows)
        return result
    return run_unit(out, fp_attribution(cfg), "attribute", work, everyone=True)


def rationales_for(run: Path, cfg: RunConfig, variant: str, examples: list[Example],
                   split: str = "student_train") -> dict[str, str] | None:
    """id -> rationale text of a student variant on `split` (student_train, or test); None without rationales."""
    v = parse_variant(variant)
    if v.rationale is None:
        return None
    if v.rationale not in METHODS:
        return given_rationales(v.rationale, examples, cfg.data.seed)
    rows = read_jsonl(run / "attributions" / (f"{v.rationale}.jsonl" if split == "student_train"
                                              else f"{v.rationale}.{split}.jsonl"))
    return {r["id"]: rationale_at(r, v.k, cfg.attribution) if v.k else r["rationale"] for r in rows}


def check_shared_vocabulary(run: Path, cfg: RunConfig) -> None:
    """kd compares the two models' distributions token by token: refuse a pair with two vocabularies."""
    if cfg.student.init == "teacher":   # the student is the teacher, cut down
        return
    from transformers import AutoConfig

    from attrdistill.kd import check_vocabularies
    student_tok = load_tokenizer(cfg.student, run / "data" / "tokenizer")
    student = (AutoConfig.from_pretrained(cfg.student.model).vocab_size if pretrained(cfg.student) and cfg.student.model
               and not cfg.student.gguf_file else len(student_tok))
    check_vocabularies(AutoConfig.from_pretrained(run / "teacher" / "model").vocab_size, student)


def stage_teacher_signals(run: Path, cfg: RunConfig) -> dict[str, Any]:
    """What the kd and seqkd students read from the teacher, computed once per train set and stored:
    sparse top-K logits of the gold label's tokens (kd), the teacher's greedy outputs (seqkd)."""
    variants = [parse_variant(v) for v in student_variants(cfg)]
    examples = load_split(run, "student_train")
    sources = [cfg.data.predict_prefix + ex.input for ex in examples]
    found: dict[str, Any] = {}
    if any(v.needs_teacher_logits for v in variants):
        check_shared_vocabulary(run, cfg)
        out = run / "teacher_logits"

        def logits_work() -> dict:
            from attrdistill.kd import teacher_logits
            model, tok = load_trained(run / "teacher" / "model", cfg.teacher.dtype)
            rows = teacher_logits(model, tok, [ex.id for ex in examples], sources, [ex.label for ex in examples],
                                  cfg.distill.kd_top_k, cfg.distill.kd_temperature, cfg.teacher.max_input_length,
                                  cfg.teacher.max_target_length, cfg.attribution.batch_size,
                                  cfg.attribution.shard_size, cache=run / "kd_cache", model_key=fp_teacher(cfg))
            write_jsonl(out / "student_train.jsonl", rows)
            return {"n": len(rows), "top_k": cfg.distill.kd_top_k}
        run_unit(out, fp_teacher_logits(cfg), "teacher logits", logits_work)
        found["kd"] = {r["id"]: r for r in read_jsonl(out / "student_train.jsonl")}
    if any(v.needs_teacher_outputs for v in variants):
        out = run / "teacher_outputs"

        def outputs_work() -> dict:
            model, tok = load_trained(run / "teacher" / "model", cfg.teacher.dtype)
            preds = predict(model, tok, sources, cfg.eval.batch_size, cfg.teacher.max_target_length,
                            cfg.teacher.max_input_length)
            correct = matcher(cfg.data.source)
            write_jsonl(out / "student_train.jsonl", [{"id": ex.id, "prediction": p} for ex, p in zip(examples, preds)])
            return {"n": len(preds), "teacher_accuracy": accuracy(preds, [ex.label for ex in examples], correct,
                                                                  [ex.choices for ex in examples])}
        run_unit(out, fp_teacher_outputs(cfg), "teacher outputs", outputs_work)
        found["seqkd"] = {r["id"]: r["prediction"] for r in read_jsonl(out / "student_train.jsonl")}
    return found


def student_start(run: Path, cfg: RunConfig, seed: int) -> tuple[Any, Any]:
    """A new student and its tokenizer: as configured, or with `student.init: teacher` the run's fine-tuned
    teacher (and its tokenizer) with the blocks student.keep_every / keep_blocks select."""
    from_teacher = cfg.student.init == "teacher"
    tok = load_tokenizer(cfg.student, run / ("teacher/model" if from_teacher else "data/tokenizer"))
    model = load_model(cfg.student, tok, seed=cfg.student.train.seed + seed,
                       teacher=run / "teacher" / "model" if from_teacher else None)
    return model, tok


def forced_validation(cfg: RunConfig, rationale: bool) -> bool:
    """Validate by one forward pass (`training.train`): exact where answers are judged by exact match and the
    model's target is the label itself (not one sequence of label and rationale)."""
    return matcher(cfg.data.source) is exact_match and not (rationale and cfg.distill.format != "two_task")


def stage_distill(run: Path, cfg: RunConfig) -> dict:
    """Train one student per (variant, seed) on student_train."""
    require(run / "data", "the data stage", "run", fp_data(cfg))
    if cfg.student.init == "teacher":
        require(run / "teacher", "the fine-tuned teacher (student.init: teacher)", "finetune", fp_teacher(cfg))
    if any(parse_variant(v).rationale in METHODS or parse_variant(v).match for v in student_variants(cfg)):
        require(run / "attributions", "the teacher's rationales", "attribute", fp_attribution(cfg))
    examples, valid = load_split(run, "student_train"), _rows(load_split(run, "valid"), cfg)
    teacher = stage_teacher_signals(run, cfg)
    d = cfg.distill
    settings = KDSettings(d.kd_alpha, d.kd_temperature, d.kd_divergence, d.kd_beta)
    records = {}
    for variant in student_variants(cfg):
        v = parse_variant(variant)
        rows = _rows(examples, cfg, rationales_for(run, cfg, variant, examples),
                     targets=teacher["seqkd"] if v.needs_teacher_outputs else None,
                     kd=teacher["kd"] if v.needs_teacher_logits else None,
                     match={r["id"]: r["scores"] for r in read_jsonl(run / "attributions" / f"{v.match}.jsonl")}
                     if v.match else None)
        for seed in cfg.distill.seeds:
            out = student_dir(run, variant, seed)

            def work(out: Path = out, seed: int = seed, rows: list[dict] = rows, v: Variant = v,
                     variant: str = variant) -> dict:
                model, tok = student_start(run, cfg, seed)
                return train(model, tok, rows, valid, cfg.student, out,
                             rationale_weight=cfg.distill.rationale_weight, seed=seed,
                             correct=matcher(cfg.data.source), label=f"{variant}-seed{seed}",
                             kd=settings if v.needs_teacher_logits else None, match_weight=cfg.distill.match_weight,
                             teacher_forced=forced_validation(cfg, rationale=v.rationale is not None),
                             report_to=cfg.report_to)
            records[f"{variant}/seed{seed}"] = run_unit(out, fp_student(cfg, variant, seed),
                                                        f"distill {variant} seed {seed}", work, everyone=True)
    return {"seconds": sum(r["seconds"] for r in records.values())}


def taught_on_test(run: Path, cfg: RunConfig, variant: str, test: list[Example]) -> dict[str, str] | None:
    """The rationales a student would have been taught for the test inputs; None (logged) where they cannot be had."""
    try:
        return rationales_for(run, cfg, variant, test, split="test")
    except ValueError as e:   # e.g. the test split has no LLM rationales
        log.info("%s: no rationale F1 on test (%s)", variant, e)
        return None


def _models(cfg: RunConfig) -> dict[str, tuple[Path, str, str | None]]:
    """name -> (folder relative to the run, fingerprint, student variant or None) of every trained model: the
    teacher, then '<variant>-seed<n>'."""
    models: dict[str, tuple[Path, str, str | None]] = {"teacher": (Path("teacher"), fp_teacher(cfg), None)}
    for variant in student_variants(cfg):
        for seed in cfg.distill.seeds:
            models[f"{variant}-seed{seed}"] = (student_dir(Path(), variant, seed), fp_student(cfg, variant, seed),
                                               variant)
    return models


def stage_evaluate(run: Path, cfg: RunConfig) -> dict:
    """Greedy predictions of the teacher and every student on the test split; exact-match accuracy."""
    test = load_split(run, "test")
    sources = [cfg.data.predict_prefix + ex.input for ex in test]
    seconds = 0.0
    for name, (folder, model_fp, variant) in _models(cfg).items():
        model_dir = run / folder
        require(model_dir, f"model {name}", "distill" if name != "teacher" else "finetune", model_fp)
        out = run / "predictions" / name
        taught = taught_on_test(run, cfg, variant, test) if variant else None

        def work(model_dir: Path = model_dir, taught: dict[str, str] | None = taught) -> dict:
            role = cfg.teacher if model_dir.name == "teacher" else cfg.student
            model, tok = load_trained(model_dir / "model", role.dtype)
            preds = predict(model, tok, sources, cfg.eval.batch_size, cfg.eval.max_new_tokens, role.max_input_length)
            correct = matcher(cfg.data.source)
            write_jsonl(out / "test.jsonl", [{"id": ex.id, "prediction": p, "label": ex.label,
                                              "correct": correct(p, ex.label, ex.choices)}
                                             for ex, p in zip(test, preds)])
            result = {"accuracy": accuracy(preds, [ex.label for ex in test], correct, [ex.choices for ex in test]),
                      "n": len(test)}
            if taught is not None:   # how well the student reproduces the rationale it was taught
                result["rationale_f1"] = _rationale_f1(model, tok, cfg, test, preds, taught)
            return result
        seconds += run_unit(out, fp_predictions(cfg, model_fp, variant), f"evaluate {name}", work)["seconds"]
    return {"seconds": seconds}


def _rationale_f1(model: Any, tok: Any, cfg: RunConfig, test: list[Example], preds: list[str],
                  taught: dict[str, str]) -> float:
    """Mean word F1 of the student's generated rationales on test against those it would have been taught."""
    if cfg.distill.format != "two_task":
        generated = [rationale_of(p) for p in preds]
    else:
        generated = predict(model, tok, [cfg.data.explain_prefix + ex.input for ex in test], cfg.eval.batch_size,
                            cfg.eval.max_new_tokens, cfg.student.max_input_length)
    return statistics.fmean(analysis.word_f1(g, taught[ex.id]) for g, ex in zip(generated, test))


def _mean_std(values: list[float]) -> dict[str, float]:
    return {"accuracy": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0}


def fp_analyze(cfg: RunConfig) -> str:
    return fingerprint("analyze", fp_attribution(cfg), [fp_predictions(cfg, fp, variant)
                                                        for _, fp, variant in _models(cfg).values()],
                       to_dict(cfg.analysis), cfg.data.predict_prefix)


def stage_analyze(run: Path, cfg: RunConfig) -> dict:
    """Rationale quality per attribution method (recall@k, answer overlap, human agreement, faithfulness on
    the teacher) and prediction overlap between the students (their first seed)."""
    require(run / "attributions", "the teacher's rationales", "attribute", fp_attribution(cfg))
    out = run / "analyses"

    def work() -> dict:
        examples = load_split(run, "student_train")
        rows = {m: read_jsonl(run / "attributions" / f"{m}.jsonl") for m in attribution_methods(cfg)}
        result: dict[str, Any] = {
            "answer_overlap": {m: analysis.answer_overlap(r, examples) for m, r in rows.items()},
            "human_agreement": {m: h for m, r in rows.items() if (h := analysis.human_agreement(r, examples))},
        }
        n = min(cfg.analysis.faithfulness_examples, len(examples))
        if n:
            model, tok = load_trained(run / "teacher" / "model", cfg.teacher.dtype)
            result["faithfulness"] = {
                m: analysis.faithfulness(model, tok, examples[:n], r[:n], cfg.data.predict_prefix,
                                         tuple(cfg.analysis.fractions), cfg.attribution.batch_size,
                                         cfg.teacher.max_input_length, cfg.teacher.max_target_length)
                for m, r in rows.items()}
        seed = cfg.distill.seeds[0]
        preds = {}
        for v in cfg.distill.variants:
            path = run / "predictions" / f"{v}-seed{seed}"
            require(path, f"the test predictions of {v} (seed {seed})", "evaluate",
                    fp_predictions(cfg, fp_student(cfg, v, seed), v))
            preds[v] = read_jsonl(path / "test.jsonl")
        result["prediction_overlap"] = [{"a": a, "b": b, **analysis.prediction_overlap(preds[a], preds[b])}
                                        for a in preds for b in preds if a != b]
        return result
    return run_unit(out, fp_analyze(cfg), "analyze", work)


def collect_metrics(run: Path, cfg: RunConfig) -> dict:
    """metrics.json: the machine-readable summary later tools read (accuracies and recalls in 0..1)."""
    teacher_eval = done_record(run / "predictions" / "teacher")["result"]
    students = {}
    for variant in student_variants(cfg):
        per_seed = {seed: done_record(run / "predictions" / f"{variant}-seed{seed}")["result"]["accuracy"]
                    for seed in cfg.distill.seeds}
        students[variant] = {**_mean_std(list(per_seed.values())), "per_seed": per_seed}
        f1 = [r.get("rationale_f1") for s in cfg.distill.seeds
              if (r := done_record(run / "predictions" / f"{variant}-seed{s}")["result"])]
        if f1 and all(x is not None for x in f1):
            students[variant]["rationale_f1"] = statistics.fmean(f1)
    attr = done_record(run / "attributions")["result"]
    analyzed = require(run / "analyses", "the analyses", "analyze", fp_analyze(cfg))
    timing = {"data_s": done_record(run / "data")["seconds"],
              "finetune_s": done_record(run / "teacher")["seconds"],
              "attribute_s": done_record(run / "attributions")["seconds"],
              "distill_s": sum(done_record(student_dir(run, v, s))["seconds"]
                               for v in student_variants(cfg) for s in cfg.distill.seeds),
              "evaluate_s": sum(done_record(run / "predictions" / n)["seconds"] for n in _models(cfg)),
              "analyze_s": analyzed["seconds"]}
    metrics = {
        "teacher": {"accuracy": teacher_eval["accuracy"],
                    "best_valid_accuracy": done_record(run / "teacher")["result"]["best_valid_accuracy"]},
        "students": students,
        "attribution": {"method": cfg.attribution.method, "k": cfg.attribution.k,
                        "recall_at_k": attr[cfg.attribution.method]["recall_at_k"],
                        "random_recall_at_k": attr["random"]["recall_at_k"],
                        "n_examples": attr[cfg.attribution.method]["n"]},
        "timing": timing,
        "n_test": teacher_eval["n"],
        "paper": {"setting": cfg.paper, "teacher": paper_accuracy(cfg.paper, "teacher"),
                  "students": {v: paper_accuracy(cfg.paper, v) for v in cfg.distill.variants}} if cfg.paper else None,
        "version": __version__,
    }
    metrics["analyses"] = _analyses(cfg, metrics, analyzed["result"], attr)
    metrics["verdict"] = verdict(run, cfg, students)
    return metrics


# A student still improves at its end when the best validation accuracy of its last fifth of evaluations beats
# the best before them by more than this (2 points: 6 of the built-in task's 300 validation examples).
RISING = 0.02


def _still_rising(folder: Path, max_steps: int) -> bool:
    """Did training run all max_steps with validation accuracy still climbing (see RISING)?"""
    try:
        history = json.loads((folder / "log_history.json").read_text())
    except (OSError, ValueError):
        return False
    evals = [h["eval_accuracy"] for h in history if "eval_accuracy" in h]
    last_step = max((h.get("step", 0) for h in history), default=0)
    tail = max(1, len(evals) // 5)
    return last_step >= max_steps and len(evals) > tail and max(evals[-tail:]) - max(evals[:-tail]) > RISING


def verdict(run: Path, cfg: RunConfig, students: dict[str, dict]) -> dict[str, Any]:
    """What the report opens with: the best student, its gain over standard with the 95% interval over the
    paired seeds, the students still improving when training stopped, and one example of every rationale."""
    best = max(students, key=lambda v: students[v]["accuracy"])
    seeds = cfg.distill.seeds
    out: dict[str, Any] = {"best": best, "accuracy": students[best]["accuracy"], "std": students[best]["std"],
                           "seeds": len(seeds)}
    if "standard" in students and best != "standard":
        gain, low, high = analysis.paired_gain([students[best]["per_seed"][s] for s in seeds],
                                               [students["standard"]["per_seed"][s] for s in seeds])
        one_seed = math.isnan(low)   # no interval from a single pair
        out.update(gain=gain, low=None if one_seed else low, high=None if one_seed else high)
    out["still_rising"] = [f"{v}/seed{s}" for v in students for s in seeds
                           if _still_rising(student_dir(run, v, s), cfg.student.train.max_steps)]
    ex = load_split(run, "student_train")[0]
    shown: dict[str, str] = {}
    for variant in students:
        v = parse_variant(variant)
        # a match student generates no rationale: show the top-k words of the scores its saliency is pulled toward
        source = variant if v.rationale is not None else v.match
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
    for m in list(attr) + [v for v in ("oracle",) if v in students]:
        table[m] = {"recall_at_k": 1.0 if m == "oracle" else attr[m]["recall_at_k"],
                    "comprehensiveness": faith.get(m, {}).get("comprehensiveness"),
                    "sufficiency": faith.get(m, {}).get("sufficiency"),
                    "student_accuracy": students.get(m, {}).get("accuracy"),
                    "student_std": students.get(m, {}).get("std")}
    out["methods"] = table
    return out


def stage_report(run: Path, cfg: RunConfig) -> dict:
    """metrics.json, report.md and report.html (always rewritten: cheap, and reflects the latest stages)."""
    t0 = time.perf_counter()
    metrics = collect_metrics(run, cfg)
    write_report(run, cfg, metrics)   # before report_s exists: a report cannot time its own writing
    metrics["timing"]["report_s"] = round(time.perf_counter() - t0, 2)
    write_json(run / "metrics.json", metrics)
    log.info("report: %s, %s, %s", run / "report.html", run / "report.md", run / "metrics.json")
    return metrics


STAGES: dict[str, Callable[[Path, RunConfig], dict]] = {
    "data": stage_data, "finetune": stage_finetune, "attribute": stage_attribute,
    "distill": stage_distill, "evaluate": stage_evaluate, "analyze": stage_analyze, "report": stage_report,
}
# Under `accelerate launch` these run on the main process alone: nothing after them needs the others,
# and a process idle at a barrier through a long evaluation would hit the process group's timeout.
MAIN_ONLY = ("evaluate", "analyze", "report")


def environment() -> dict[str, Any]:
    """Versions of everything that can change a result, for the run directory's record."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    def v(package: str) -> str | None:
        try:
            return version(package)
        except PackageNotFoundError:
            return None
    import torch
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


def run_stages(run: Path, cfg: RunConfig, stages: list[str] | None = None) -> dict:
    """Run `stages` (None: all) in order, after checking that what they read from outside the run exists."""
    check_environment(cfg, stages)
    save_run_config(run, cfg)
    result: dict = {}
    for name in stages or list(STAGES):
        if name not in MAIN_ONLY:
            result = STAGES[name](run, cfg)
        elif is_main():
            with on_main_only():
                result = STAGES[name](run, cfg)
    return result
