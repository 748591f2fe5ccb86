"""The plan of a run: every unit of work, what it reads, what changes it, and the work itself.

    units = plan(run, cfg)                        # the whole run, in order (runner.Unit)
    run_stages(run, cfg)                          # every unit; complete ones are skipped
    run_stages(run, cfg, ["attribute"])           # the units of one verb, on an existing run

The units and their folders under the run directory (stage in brackets; `layout.py` knows every path):

    data                              [data]       the four splits (and a word-level tokenizer)
    teacher                           [finetune]   the fine-tuned teacher
    attributions/<method>             [attribute]  the teacher's word scores and top-k rationales on student_train
    attributions/test/<method>        [attribute]  the same on test, for the methods a student is taught
    <signal>                          [distill]    what the teacher hands its students (registry.signals:
                                                   teacher_logits for kd, teacher_outputs for seqkd)
    students/<variant>/seed<n>        [distill]    one student per variant and seed
    predictions/<model>               [evaluate]   greedy test predictions of the teacher and each student
    analyses                          [analyze]    rationale quality per method, prediction overlap
    report                            [report]     metrics.json, report.md, report.html (always rewritten)

Planning is torch-free: a unit's work (`stages.py`, or a teacher signal's class) is imported when the unit
runs. `runner.py` turns the plan into work: fingerprints, skip, resume and recompute, barriers, and the
"run `attrdistill finetune` first" errors. A new student objective, loss term, rationale source, teacher
signal or attribution method is an entry of a registry (`attrdistill.registry`): the plan reads them.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from attrdistill import __version__
from attrdistill.config import DataConfig, ModelConfig, RunConfig, check_environment, given_files, pretrained, to_dict
from attrdistill.data.sources import input_template
from attrdistill.pipeline.layout import (
    ANALYSES,
    DATA,
    REPORT,
    TEACHER,
    TRAIN,
    TRANSFER,
    attribution_key,
    attribution_methods,
    load_split,
    models,
    prediction_key,
    student_key,
    student_methods,
    student_variants,
)
from attrdistill.pipeline.runner import Unit, execute, fingerprints
from attrdistill.pipeline.store import files_digest
from attrdistill.registry import imported
from attrdistill.registry.methods import REGISTRY
from attrdistill.registry.signals import SIGNALS
from attrdistill.registry.variants import OBJECTIVES, check_available, parse_variant

# Fields added after runs were made (see `_as_before`).
LATER_DATA = ("input_template", "student_train_file", "transfer_file")
LATER_MODEL = ("finetune", "lora")


def _as_before(section: dict[str, Any], defaults: dict[str, Any], later: tuple[str, ...]) -> dict[str, Any]:
    """A config section for a fingerprint, less the fields added later while they keep their default: the runs
    made before them keep their units."""
    return {k: v for k, v in section.items() if k not in later or v != defaults[k]}


def _model_config(m: ModelConfig) -> dict[str, Any]:
    return _as_before(to_dict(m), to_dict(ModelConfig()), LATER_MODEL)


def _teacher_config(cfg: RunConfig) -> Any:
    """What changes the teacher: its settings, and for a given teacher (finetune false) its files as well."""
    if cfg.teacher.finetune:
        return _model_config(cfg.teacher)
    files = given_files(cfg.teacher)
    return _model_config(cfg.teacher), files_digest(files) if files is not None else None


def _stage(name: str, *args: Any) -> dict:
    """Run the stage function `name` of stages.py: imported here, when a unit runs, so planning loads no model."""
    from attrdistill.pipeline import stages
    return getattr(stages, name)(*args)


def _signal(name: str, run: Path, cfg: RunConfig, teacher_fp: str) -> dict:
    """A teacher signal's unit: its class's work (registry.signals)."""
    return SIGNALS[name].implementation().work(run, cfg, teacher_fp)


def _signal_check(name: str, run: Path, cfg: RunConfig) -> None:
    """A teacher signal's check (imported when it runs): before the teacher trains, and again before its unit."""
    if SIGNALS[name].check:
        imported(SIGNALS[name].check)(run, cfg)


def plan(run: Path, cfg: RunConfig) -> list[Unit]:
    """The whole run as units in the order they run; each names what it reads and the config that changes it."""
    roles = [(m.model, m.tokenizer) + ((m.gguf_file,) if m.gguf_file else ()) for m in (cfg.teacher, cfg.student)]
    units = [
        Unit(DATA, "data", partial(_stage, "make_data", run, cfg),
             config=(__version__, _as_before(to_dict(cfg.data), to_dict(DataConfig()), LATER_DATA), roles),
             what="the data stage"),
        Unit(TEACHER, "finetune", partial(_stage, "finetune", run, cfg), (DATA,), _teacher_config(cfg),
             "the fine-tuned teacher" if cfg.teacher.finetune else "the given teacher", everyone=True,
             check=partial(check_variants, run, cfg),
             note="" if cfg.teacher.finetune else f"given: {cfg.teacher.gguf_file or cfg.teacher.model}, not trained"),
    ]
    if cfg.data.transfer_file:
        units.append(Unit(TRANSFER, "finetune", partial(_stage, "label_transfer", run, cfg), (DATA, TEACHER),
                          what="the teacher's labels of the transfer inputs"))
    pool = (TRANSFER,) if cfg.data.transfer_file else ()   # what reads the student-train examples reads these too
    teacher_fp = fingerprints(units)[TEACHER]   # the key of the caches of its weights (attribution shards, kd logits)
    # What selects words (k, order, filters, the input format's words), not which method attribution.method names.
    selection = {**to_dict(cfg.attribution), "method": None}
    template = input_template(cfg.data)
    if template is not None and template.has_scaffold:   # only then: rows made before templates stay valid
        selection["scaffold"] = template.pattern
    d = cfg.distill
    # Only when set (units made before the option keep their fingerprints): the student-train examples the teacher
    # annotates, every student learns from and the analyses read.
    limit = ((d.student_limit, cfg.data.seed),) if d.student_limit else ()
    # Likewise the test examples a taught rationale is scored on (eval.rationale_limit), only when set.
    limits = {TRAIN: limit, "test": (cfg.eval.rationale_limit,) if cfg.eval.rationale_limit else ()}
    for split, methods in ((TRAIN, attribution_methods(cfg)), ("test", student_methods(cfg))):
        for m in methods:
            seed = cfg.data.seed if REGISTRY[m].seeded else None
            units.append(Unit(attribution_key(m, split), "attribute",
                              partial(_stage, "attribute_split", run, cfg, m, split, teacher_fp),
                              (DATA, TEACHER) + (pool if split == TRAIN else ()),
                              (selection, seed) + limits[split],
                              f"the teacher's {m} rationales of {split}", everyone=True))
    variants = {name: parse_variant(name) for name in student_variants(cfg)}
    for name in dict.fromkeys(v.reads for v in variants.values() if v.reads):
        signal = SIGNALS[name]
        units.append(Unit(name, "distill", partial(_signal, name, run, cfg, teacher_fp), (DATA, TEACHER, *pool),
                          (signal.config(d),) + limit if limit else signal.config(d),
                          f"the teacher's {name.replace('_', ' ').removeprefix('teacher ')}",
                          check=partial(_signal_check, name, run, cfg) if signal.check else None))
    for name, v in variants.items():
        deps = [DATA, *pool] + [attribution_key(m) for m in (v.rationale, v.guide) if m in REGISTRY]
        deps += [v.reads] * bool(v.reads) + [TEACHER] * (cfg.student.init == "teacher")   # weights: the teacher's
        how = {"rationale": (d.rationale_weight, d.format) if v.rationale else None, "k": v.k,
               "objective": [getattr(d, f) for f in OBJECTIVES[v.objective].settings],
               "match": v.term_settings(d)}
        if v.term and d.term_every != 1:   # only when set: students made before the option keep their fingerprints
            how["term_every"] = d.term_every
        if limit:
            how["student_limit"] = limit[0]
        for seed in d.seeds:
            units.append(Unit(student_key(name, seed), "distill",
                              partial(_stage, "train_student", run, cfg, name, seed),
                              tuple(dict.fromkeys(deps)), (_model_config(cfg.student), name, seed, how),
                              f"student {name} (seed {seed})", everyone=True))
    # eval.rationale_limit changes a taught rationale's F1 only (and, through their key, its test attributions).
    decoding = {k: v for k, v in to_dict(cfg.eval).items() if k != "rationale_limit"}
    f1 = ("f1", cfg.eval.rationale_limit) if cfg.eval.rationale_limit else "f1"
    for name, (key, variant) in models(cfg).items():
        rationale = parse_variant(variant).rationale if variant else None
        taught = [attribution_key(rationale, "test")] if rationale in REGISTRY else []
        units.append(Unit(prediction_key(name), "evaluate", partial(_stage, "evaluate", run, cfg, name),
                          (DATA, key, *taught), (decoding, f1 if rationale else None),
                          f"the test predictions of {name}"))
    read = [attribution_key(m) for m in attribution_methods(cfg)]
    firsts = [prediction_key(f"{v}-seed{cfg.distill.seeds[0]}") for v in cfg.distill.variants]
    units.append(Unit(ANALYSES, "analyze", partial(_stage, "analyze", run, cfg), (DATA, TEACHER, *pool, *read, *firsts),
                      (to_dict(cfg.analysis), cfg.data.predict_prefix) + limit, "the analyses"))
    units.append(Unit(REPORT, "report", partial(_stage, "report", run, cfg, list(units)),
                      tuple(u.key for u in units), cached=False))
    return units


def check_variants(run: Path, cfg: RunConfig) -> None:
    """Before the teacher trains: the data must have what every variant's rationale source and data guide read,
    and each teacher signal a variant reads passes its own check (kd: one vocabulary for both models)."""
    student_train = load_split(run, TRAIN)
    for variant in cfg.distill.variants:
        check_available(variant, student_train)
    for name in _signals_read(cfg):
        _signal_check(name, run, cfg)


def check_signals_early(run: Path, cfg: RunConfig) -> None:
    """The teacher signals' checks (kd: one vocabulary) as far as they can run before the data stage, for a dry
    run: where both models are given (a from-scratch model's vocabulary is the data stage's word tokenizer, so
    there the check waits for the run, which makes it before the teacher trains)."""
    if pretrained(cfg.teacher) and pretrained(cfg.student):
        for name in _signals_read(cfg):
            _signal_check(name, run, cfg)


def _signals_read(cfg: RunConfig) -> list[str]:
    return list(dict.fromkeys(r for r in (parse_variant(v).reads for v in cfg.distill.variants) if r))


def run_stages(run: Path, cfg: RunConfig, stages: list[str] | None = None, checked: bool = False) -> dict:
    """Run the units of `stages` (None: all) in order, after checking that what they read from outside exists
    (unless the caller has: checked)."""
    if not checked:
        check_environment(cfg, stages)
    _stage("save_run_config", run, cfg)
    return execute(run, plan(run, cfg), stages)
