"""attrdistill from Python: word attributions of any model, and whole runs, without the command line.

    import attrdistill
    rows = attrdistill.attribute(model, tok, ["the cat sat on the mat"], ["animal"], method="saliency", k=3)
    rows[0].words, rows[0].scores, rows[0].top, rows[0].rationale
    metrics = attrdistill.run(overrides=["distill.seeds=[0,1]"], out="runs/mine")
    metrics = attrdistill.run(out="runs/mine", stages=["attribute", "report"])   # verbs on an existing run

The losses a student trains with are pure functions and modules with documented tensor shapes, for your own
training loop: `sparse_divergence`, `kd_loss` and `KDLoss` (attrdistill.distill.kd); `token_targets`,
`student_saliency`, `match_divergence` and `AttributionMatching` (attrdistill.distill.matching). The package
re-exports them lazily: `import attrdistill` loads no torch until one of them is used.

`attrdistill run` and the stage verbs are a thin layer over `prepare` (which run directory and config) and
`run`; the command line adds its messages, the plan printout and the summary.

`attribute` is the pipeline's attribution engine (the same scores, tested to 1e-5), so a method registered
in `attrdistill.registry.methods` works here too. Bad input (lengths that differ, an empty input, an
unknown method) is refused with one line before any model runs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence

from attrdistill.config import RunConfig, attribution_settings, load_config
from attrdistill.data.example import Example
from attrdistill.errors import ConfigError
from attrdistill.modeling.template import Template
from attrdistill.pipeline.records import AttributionRow

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"   # a run's log.txt and the terminal's lines


def attribute(model: Any, tokenizer: Any, inputs: Sequence[str], targets: Sequence[str] | None = None,
              method: str = "saliency", k: int = 5, prefix: str = "", batch_size: int = 64,
              max_input_length: int = 512, max_target_length: int = 128, seed: int = 0, template: str | None = None,
              **settings: Any) -> list[AttributionRow]:
    """Word scores of each input by `method` and its top-k words, for a seq2seq or decoder-only model.

    inputs: the texts whose words are scored (a word is `attrdistill.modeling.words.words`' split); prefix: a
    prompt put before each input and never scored (the pipeline's "predict: "); targets: what the scores
    explain, one per input, or None for the model's own greedy output. `settings` are further
    `attribution.*` fields (order, quantity, aggregation, stop_words, ...); template: the format the inputs
    were built with, e.g. "Premise: {premise}\nHypothesis: {hypothesis}": its own words are scored but never
    chosen (`scaffold`). Returns one AttributionRow per input, in order: `words`, `scores` (one per word), `top`
    (the rationale's word indices), `rationale` and `scaffold` (the template's word indices, or None).
    """
    if isinstance(inputs, str) or (targets is not None and isinstance(targets, str)):
        raise ConfigError("attribute: inputs and targets are lists of texts, not one text")
    if targets is not None and len(targets) != len(inputs):
        raise ConfigError(f"attribute: {len(inputs)} inputs but {len(targets)} targets; give one target per input")
    empty = next((i for i, text in enumerate(inputs) if not text.strip()), None)
    if empty is not None:
        raise ConfigError(f"attribute: input {empty} is empty; every input needs words to score")
    # Shards of 64 here (no cache to key): a long list shows its progress shard by shard.
    cfg = attribution_settings(**{"shard_size": 64, **settings, "method": method, "k": k, "batch_size": batch_size,
                                  "target": "gold" if targets is not None else "prediction"})
    scaffolds = None
    if template is not None:
        form = Template(template)
        scaffolds = [form.scaffold(text) for text in inputs]
        off = next((i for i, marked in enumerate(scaffolds) if marked is None), None)
        if off is not None:
            raise ConfigError(f"attribute: input {off} does not follow the template {template!r}: {inputs[off][:60]!r}")
    from attrdistill.attribution.engine import attribute as engine  # torch loads here, not at import
    examples = [Example(str(i), text, targets[i] if targets is not None else "") for i, text in enumerate(inputs)]
    return engine(examples, method, model, tokenizer, cfg, prefix, max_input_length, max_target_length, seed,
                  scaffolds=scaffolds)


def prepare(config: str | Path | RunConfig | None = None, overrides: Sequence[str] = (),
            out: str | Path | None = None, existing: bool = False) -> tuple[Path, RunConfig]:
    """The run directory and the config a run works on, resolved as the command line resolves them.

    A new or resumed run (existing False) reads `config` (a YAML file, a RunConfig, or None: the built-in
    defaults) with `overrides` into `out` (default runs/<name>). Verbs on an existing run (existing True) read
    the config.yaml of `out` unless `config` is given. Refuses an `out` that is a file, and an existing run
    without config.yaml, with one line.
    """
    from attrdistill.pipeline.layout import Layout
    if existing:
        if out is None:
            raise ConfigError("run: the stages of an existing run need its folder (out=)")
        if config is None:
            config = Layout(Path(out)).config
            if not config.is_file():
                raise ConfigError(f"{out}: not a run directory (no config.yaml); make one with `attrdistill run`")
    if isinstance(config, RunConfig):
        if overrides:
            raise ConfigError("run: overrides apply to a config file or the defaults; change the RunConfig instead")
        cfg = config
    else:
        cfg = load_config(config, list(overrides))
    run_dir = Path(out) if out is not None else Path("runs") / cfg.name
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out {run_dir}: is a file, not a run directory (name a new or existing folder)")
    return run_dir, cfg


def run(config: str | Path | RunConfig | None = None, overrides: Sequence[str] = (), out: str | Path | None = None,
        stages: Sequence[str] | None = None, force: bool = False) -> dict[str, Any]:
    """Run every stage (or `stages`, verbs of an existing run: finetune, attribute, distill, evaluate, analyze,
    report) into `out` (default runs/<name>); returns the metrics of the report, or of the last unit run.

    config: a YAML file, a RunConfig, or None (the built-in defaults; for `stages`, the run's config.yaml);
    overrides: "section.field=value" strings, as the CLI's --set. Complete units are skipped, as on the CLI;
    force: empty the run directory first (after the config and what it needs are checked). The run logs into
    `out`/log.txt as well, a crash's traceback included.
    """
    import shutil

    from attrdistill.config import check_environment
    from attrdistill.errors import UserError
    from attrdistill.pipeline.distributed import barrier, is_main
    from attrdistill.pipeline.plan import run_stages
    run_dir, cfg = prepare(config, overrides, out, existing=stages is not None)
    # Checked before force removes anything: a run that could not start loses nothing.
    check_environment(cfg, list(stages) if stages is not None else None)
    if force and stages is None and run_dir.exists() and is_main():
        shutil.rmtree(run_dir)
    barrier()
    handler, restore = _log_to(run_dir)
    try:
        return run_stages(run_dir, cfg, list(stages) if stages is not None else None, checked=True)
    except (UserError, FileNotFoundError, OSError):   # the message says what to change; the caller reports it
        raise
    except Exception:   # a bug or a crash (a shape error, out of memory): its traceback into the run's log too
        logging.getLogger("attrdistill").exception("unexpected error; the traceback is also in %s",
                                                   handler.baseFilename)
        raise
    finally:
        restore()


def _log_to(run_dir: Path) -> tuple[Any, Callable[[], None]]:
    """A handler that logs into run_dir/log.txt, and the function that puts logging back as it was.

    The file gets attrdistill's progress lines (INFO) whatever the caller's logging shows: its own handlers
    get attrdistill's records at the level they got before (a notebook with logging at WARNING stays quiet),
    and the file gets every other logger's records that reach the root (transformers' warnings)."""
    from attrdistill.pipeline.layout import Layout
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(Layout(run_dir).log, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root, ours = logging.getLogger(), logging.getLogger("attrdistill")
    before = ours.level, ours.propagate, ours.getEffectiveLevel()
    upward = _ToRootHandlers(level=before[2], skip=handler)
    root.addHandler(handler)
    ours.addHandler(handler)
    ours.addHandler(upward)
    ours.setLevel(min(before[2], logging.INFO))
    ours.propagate = False   # `upward` passes them on, at the level the caller's handlers saw before

    def restore() -> None:
        for h in (handler, upward):
            ours.removeHandler(h)
        root.removeHandler(handler)
        ours.setLevel(before[0])
        ours.propagate = before[1]
        handler.close()
    return handler, restore


class _ToRootHandlers(logging.Handler):
    """Hands a record to the root logger's handlers but one, each at its own level (what propagation does)."""

    def __init__(self, level: int, skip: logging.Handler) -> None:
        super().__init__(level)
        self.skip = skip

    def emit(self, record: logging.LogRecord) -> None:
        for h in logging.getLogger().handlers:
            if h is not self.skip and record.levelno >= h.level:
                h.handle(record)
