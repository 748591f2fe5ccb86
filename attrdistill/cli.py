"""The `attrdistill` command line.

    attrdistill run [CONFIG.yaml] [--set key=value ...] [--out DIR]   # every stage into runs/<name>
    attrdistill finetune|attribute|distill|evaluate|analyze|report RUN_DIR   # one stage of an existing run
    attrdistill plan RUN_DIR [--set ...]                              # its units: done, or why they would run
    attrdistill run [CONFIG.yaml] --dry-run                           # the same before a run starts
    attrdistill show RUN_DIR [--example ID] [--html FILE]             # an example's word scores, coloured
    attrdistill data show cqa --n 3                                    # look at a data source
    attrdistill export RUN_DIR DIR [--student V] [--seed N]           # a student to ship, with a model card
    attrdistill predict DIR_OR_RUN --input TEXT | --file F.jsonl      # use it
    attrdistill config [CONFIG.yaml] [--set ...]                      # the resolved config, documented
"""

from __future__ import annotations

import argparse
import errno
import html
import json
import logging
import os
import sys
from pathlib import Path

from attrdistill import __version__
from attrdistill.api import LOG_FORMAT, prepare, run
from attrdistill.config import DataConfig, RunConfig, check_environment, dump_config, field_docs, load_config
from attrdistill.errors import ConfigError, UserError
from attrdistill.pipeline.distributed import is_main
from attrdistill.pipeline.layout import Layout
from attrdistill.pipeline.plan import check_signals_early, plan
from attrdistill.pipeline.records import attribution_rows
from attrdistill.pipeline.runner import STAGES, describe
from attrdistill.report import heatmap

# What a full disk, a read-only folder, missing permissions or a path through a file raise: one line says so.
CANNOT_WRITE = {errno.ENOSPC: "free space", errno.EDQUOT: "free space", errno.EROFS: "fix the path or permissions",
                errno.EACCES: "fix the path or permissions", errno.EPERM: "fix the path or permissions",
                errno.ENOTDIR: "fix the path (a part of it is a file)"}


def _config_epilog() -> str:
    rows = [f"  {key} = {default!r}\n      {doc}" for key, default, doc in field_docs()]
    return "config keys (set in YAML or with --set key=value):\n" + "\n".join(rows)


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config field, e.g. --set attribution.k=3 (repeatable; values are YAML)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attrdistill", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Attribution-guided knowledge distillation: a teacher's most salient input words become "
                    "rationales that a small student learns to generate beside the label.",
        epilog="Start with `attrdistill run` (the built-in task, a few minutes on a CPU).")
    parser.add_argument("--version", action="version", version=f"attrdistill {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only, and no progress bars")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    run = sub.add_parser("run", help="run every stage into a run directory", epilog=_config_epilog(),
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         description="Build data, fine-tune the teacher, attribute, train students, evaluate and "
                                     "report, into runs/<name> (or --out). Stages already complete with the same "
                                     "config are skipped; interrupted training resumes from its last checkpoint.")
    run.add_argument("config", nargs="?", help="YAML config (default: the built-in configs/default.yaml settings)")
    run.add_argument("--out", type=Path, help="run directory (default: runs/<name>)")
    run.add_argument("--force", action="store_true", help="delete the run directory's outputs first")
    run.add_argument("--dry-run", action="store_true",
                     help="check the config and what it needs (files, models) as a run does, print the plan (which "
                          "units would run, and why) and stop")
    _add_overrides(run)

    for verb, text in ((v.command, v.help) for stage, v in STAGES.items() if v.command == stage):
        p = sub.add_parser(verb, help=text, description=f"{text[0].upper()}{text[1:]}. Works on a run directory "
                           "made by `attrdistill run`; skips work whose outputs are complete.",
                           epilog=_config_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("run_dir", type=Path, help="the run directory (holds config.yaml)")
        _add_overrides(p)

    plan = sub.add_parser("plan", help="the units of a run: which are done, which would run and why",
                          description="Print every unit of work of a run directory (its folder, its stage) and its "
                                      "state: done, or why it would run (no output yet, config or inputs changed, "
                                      "damaged, resumes). --set shows what a changed setting would recompute.")
    plan.add_argument("run_dir", type=Path, help="the run directory (holds config.yaml)")
    _add_overrides(plan)

    data = sub.add_parser("data", help="inspect a data source: attrdistill data show SOURCE")
    show = data.add_subparsers(dest="data_verb", required=True, metavar="show").add_parser(
        "show", help="split sizes and formatted examples",
        description="Print split sizes and the first formatted examples of SOURCE: a dataset name "
                    "(cqa, svamp, anli1, esnli, read from --path), a DSbS folder, or a .jsonl/.csv file.")
    show.add_argument("source")
    show.add_argument("--n", type=int, default=3, help="how many examples to print (default 3)")
    show.add_argument("--split", help="which split to print (default: the first)")
    show.add_argument("--path", type=Path, default=Path(DataConfig().path), help="DSbS release folder for names")
    show.add_argument("--loader", choices=("dsbs", "hub", "esnli_csv"), default="dsbs",
                      help="for a dataset name: the DSbS release at --path, the hub (datasets library), or the e-SNLI "
                           "CSV files in --path")
    show.add_argument("--hub-id", help="with --loader hub: a hub id or save_to_disk folder instead of the default")
    show.add_argument("--input-field", default="input", help="input column of a .jsonl/.csv file")
    show.add_argument("--label-field", default="label", help="label column of a .jsonl/.csv file")

    show_scores = sub.add_parser(
        "show", help="an example's word scores as a heat-map (terminal colours, optional HTML)",
        description="Print the input words of one student_train example shaded by the teacher's attribution scores; "
                    "the rationale (top-k) words are bold and underlined. Needs the attribute stage.")
    show_scores.add_argument("run_dir", type=Path, help="the run directory")
    show_scores.add_argument("--example", help="example id (default: the first example)")
    show_scores.add_argument("--method", help="attribution method (default: the run's attribution.method)")
    show_scores.add_argument("--html", type=Path, help="also write an HTML heat-map to this file")

    export = sub.add_parser(
        "export", help="a run's student as a standalone model folder with a model card",
        description="Write a student of RUN_DIR to DIR: weights, tokenizer, a greedy generation config, "
                    "attrdistill.json (its prompt format) and a README.md model card (task, teacher, what it learned "
                    "from, test accuracy with its interval over seeds, the config, how to remake it). Default: the "
                    "verdict's best student (chosen on validation), at its best seed on validation.")
    export.add_argument("run_dir", type=Path, help="the run directory (a finished run: metrics.json)")
    export.add_argument("out", type=Path, help="the folder to write (new or empty)")
    export.add_argument("--student", help="the variant (default: the verdict's best)")
    export.add_argument("--seed", type=int, help="the seed (default: the variant's best on validation)")

    use = sub.add_parser(
        "predict", help="labels (and rationales) of an exported student or a run's chosen student",
        description="Greedy, batched predictions for new inputs: --input TEXT (repeatable) or --file F (.jsonl "
                    "with an input field, or .txt with one input per line). Prints JSON lines: input, label, and "
                    "the rationale for a rationale student.")
    use.add_argument("target", type=Path, help="a folder written by `attrdistill export`, or a run directory")
    given = use.add_mutually_exclusive_group(required=True)
    given.add_argument("--input", action="append", help="an input text (repeatable)")
    given.add_argument("--file", type=Path, help="a .jsonl (see --field) or .txt file of inputs")
    use.add_argument("--field", default="input", help="the field of a .jsonl file holding the input")
    use.add_argument("--out", type=Path, help="write the JSON lines here instead of printing them")
    use.add_argument("--batch-size", type=int, default=32)

    cfg = sub.add_parser("config", help="print the resolved config with every field documented",
                         epilog=_config_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    cfg.add_argument("config", nargs="?", help="YAML config to resolve (default: built-in defaults)")
    _add_overrides(cfg)
    return parser


def _terminal_log(quiet: bool) -> None:
    """Log lines on stderr: INFO, or with -q warnings only. The level is the terminal handler's, not the root
    logger's, so that a run's log.txt (`api.run`) keeps its progress lines under -q too."""
    root = logging.getLogger()
    root.setLevel(min(root.getEffectiveLevel(), logging.INFO))
    ours = next((h for h in root.handlers if getattr(h, "attrdistill_terminal", False)), None)
    if ours is None:   # once per process: main() may be called again (tests, notebooks)
        ours = logging.StreamHandler()
        ours.setFormatter(logging.Formatter(LOG_FORMAT, "%H:%M:%S"))
        ours.attrdistill_terminal = True   # type: ignore[attr-defined]
        root.addHandler(ours)
    ours.setLevel(logging.WARNING if quiet else logging.INFO)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    bars = _progress_bars(enabled=not args.quiet)
    _terminal_log(quiet=args.quiet)
    try:
        if args.verb == "data":
            from attrdistill.data.sources import show as show_data
            print(show_data(args.source, args.path, args.n, args.split, args.input_field, args.label_field,
                            args.loader, args.hub_id))
            return 0
        if args.verb == "show":
            return _show_scores(args.run_dir, args.example, args.method, args.html)
        if args.verb == "export":
            from attrdistill.ship.export import export
            print(f"wrote {export(args.run_dir, args.out, args.student, args.seed)}")
            return 0
        if args.verb == "predict":
            return _predict(args)
        if args.verb == "config":
            sys.stdout.write(dump_config(load_config(args.config, args.overrides)))
            return 0
        stages = None if args.verb in ("run", "plan") else [args.verb]
        new = args.verb == "run"
        run_dir, cfg = prepare(args.config if new else None, args.overrides, args.out if new else args.run_dir,
                               existing=not new)
        if args.verb == "plan":
            return _print_plan(run_dir, cfg)
        if new and args.dry_run:   # refused where the run would be (missing files, a keep_blocks the model lacks)
            check_environment(cfg)
            check_signals_early(run_dir, cfg)
            return _print_plan(run_dir, cfg)
        metrics = run(cfg, out=run_dir, stages=stages, force=new and args.force)
        if new and is_main():
            _summary(run_dir, metrics)
        return 0
    except (UserError, FileNotFoundError) as e:   # the message says what to change
        logging.getLogger("attrdistill").error("%s", e)
        return 2
    except OSError as e:
        log = logging.getLogger("attrdistill")
        if e.errno in CANNOT_WRITE:   # finished stages stay complete
            where = f" {e.filename}" if e.filename else ""
            log.error("cannot write%s: %s. Stages completed so far are kept; %s and rerun to continue.", where,
                      e.strerror or e, CANNOT_WRITE[e.errno])
            return 2
        if "is not a valid model identifier" in str(e) or "Repository Not Found" in str(e):
            log.error("model not found: %s", str(e).splitlines()[0])   # e.g. a mistyped hub id
            return 2
        raise
    finally:
        _progress_bars(bars)   # as they were: main() may run many times in one process (tests, benches)


def _predict(args: argparse.Namespace) -> int:
    from attrdistill.ship.use import predict_inputs, read_inputs
    inputs = args.input if args.input is not None else read_inputs(args.file, args.field)
    rows = predict_inputs(args.target, inputs, args.batch_size)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {len(rows)} predictions to {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def _progress_bars(enabled: bool) -> bool:
    """Switch every progress bar on or off, ours (TQDM_DISABLE, read by `distributed.quiet`) and transformers' /
    the hub's (loading and saving weights); returns whether they were on."""
    was = os.environ.get("TQDM_DISABLE") != "1"
    if enabled:
        os.environ.pop("TQDM_DISABLE", None)
    else:
        os.environ["TQDM_DISABLE"] = "1"
    if enabled != was:
        from transformers.utils import logging as hf_logging
        if enabled:
            hf_logging.enable_progress_bar()
        else:
            hf_logging.disable_progress_bar()
    return was


def _print_plan(run_dir: Path, cfg: RunConfig) -> int:
    print(describe(run_dir, plan(run_dir, cfg)))
    return 0


def _show_scores(run_dir: Path, example: str | None, method: str | None, html_file: Path | None) -> int:
    run_dir, cfg = prepare(out=run_dir, existing=True)
    method = method or cfg.attribution.method
    path = Layout(run_dir).attributions(method)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {method} attributions; run `attrdistill attribute {run_dir}` first")
    rows = attribution_rows(run_dir, method)
    row = next((r for r in rows if example is None or r.id == example), None)
    if row is None:
        near = ", ".join(r.id for r in rows[:5])
        raise ConfigError(f"--example {example}: no such id in {path} (ids look like: {near}, ...)")
    print(f"{row.id}  method {method}  target {row.target!r}")
    print(heatmap.terminal(row.words, row.scores, row.top, row.scaffold or ()))
    print(f"rationale: {row.rationale}")
    if row.scaffold:
        print(f"format words (italic; never rationale words): {' '.join(row.words[i] for i in row.scaffold)}")
    if html_file is not None:
        meta = (f'<p class="meta">{html.escape(row.id)} &middot; method {html.escape(method)} &middot; '
                f'target {html.escape(row.target)} &middot; '
                f'rationale {html.escape(row.rationale)}</p>')
        shaded = heatmap.html_words(row.words, row.scores, row.top, scaffold=row.scaffold or ())
        html_file.write_text(heatmap.html_page([meta, shaded]), encoding="utf-8")
        print(f"wrote {html_file}")
    return 0


def _summary(run_dir: Path, metrics: dict) -> None:
    print(f"\nteacher accuracy {100 * metrics['teacher']['accuracy']:.1f}%")
    for variant, s in metrics["students"].items():
        print(f"student {variant:<9} {100 * s['accuracy']:.1f}%")
    a = metrics["attribution"]
    if a["recall_at_k"] is not None:
        print(f"{a['method']} recall@{a['k']} {100 * a['recall_at_k']:.1f}% "
              f"(random {100 * a['random_recall_at_k']:.1f}%)")
    print(f"report: {run_dir / 'report.html'} (and report.md)")


if __name__ == "__main__":
    sys.exit(main())
