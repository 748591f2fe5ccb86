"""The runner: units of work in one run directory, each done once, resumable, recomputed when its inputs change.

    units = plan.plan(run, cfg)              # the whole run as a list of Unit, in order
    execute(run, units, stages=["distill"])  # the units of these verbs (None: all); skips complete ones
    print(describe(run, units))              # which units are done, which would run, and why

A unit writes into RUN/<key>. Its fingerprint hashes its key, the slice of config that changes its result
and the fingerprints of the units it reads (`deps`), so a changed setting recomputes exactly the units that
depend on it. A unit is complete when its DONE.json (written last, with the fingerprint and the size and
checksum of every file it wrote) matches; a folder with a STARTED.json of the same fingerprint and no
DONE.json is resumed (Trainer checkpoints, attribution shards), anything else in it is removed first.

Under `accelerate launch` the main process alone prepares folders and writes DONE.json; a unit's work runs
on every process when `everyone` (training and attribution, which the processes share), else on the main
one while the others wait. The units after the last `everyone` one run on the main process alone: nothing
after them needs the others, and a process idle at a barrier through a long evaluation would hit the
process group's timeout.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

from attrdistill.errors import StageError
from attrdistill.pipeline.distributed import barrier, is_main, on_main_only
from attrdistill.pipeline.store import CHECKPOINTS, fingerprint, manifest, verify, write_json

log = logging.getLogger("attrdistill")

Stage = Literal["data", "finetune", "attribute", "distill", "evaluate", "analyze", "report"]


@dataclass(frozen=True)
class Verb:
    """A stage as the command line knows it: the command that makes its units, and what it does."""

    command: str
    help: str


# The stages in the order they run: the one verb table, read by the CLI (a subcommand per stage that has its
# own command) and by the runner's "run `attrdistill <command>` first" errors.
STAGES: dict[Stage, Verb] = {
    "data": Verb("run", "build the four splits (and a task tokenizer) into RUN/data: part of `attrdistill run`"),
    "finetune": Verb("finetune", "fine-tune the teacher on teacher_train into RUN/teacher (and label "
                                 "data.transfer_file's inputs with it)"),
    "attribute": Verb("attribute", "score input words with the teacher; top-k words become rationales "
                                   "(RUN/attributions)"),
    "distill": Verb("distill", "make the teacher's signals and train every student variant x seed on student_train "
                               "(RUN/students)"),
    "evaluate": Verb("evaluate", "greedy predictions of teacher and students on the test split (RUN/predictions)"),
    "analyze": Verb("analyze", "rationale quality per method (recall, faithfulness, human agreement) and "
                               "prediction overlap"),
    "report": Verb("report", "write RUN/metrics.json, RUN/report.md and RUN/report.html"),
}


@dataclass(frozen=True)
class Unit:
    """One piece of a run: what it is, what it reads, what changes it, and the work that makes it."""

    key: str                                 # its folder under the run directory, e.g. "students/kd/seed0"
    stage: Stage                             # the verb that makes it
    work: Callable[[], dict[str, Any]]       # writes RUN/key; returns the result that DONE.json keeps
    deps: tuple[str, ...] = ()               # keys of the units whose outputs it reads
    config: Any = None                       # the slice of config that changes its result (JSON-able)
    what: str = ""                           # how an error names it ("the fine-tuned teacher")
    everyone: bool = False                   # work on every process, not the main one alone
    cached: bool = True                      # False: rewritten every time, no DONE.json (the report)
    check: Callable[[], None] | None = None  # a quick check before the unit, even when it is complete
    note: str = ""                           # shown beside its state in the plan ("given: ..., not trained")


def fingerprints(units: list[Unit]) -> dict[str, str]:
    """key -> fingerprint of every unit; a unit's deps come before it in the list."""
    fps: dict[str, str] = {}
    for u in units:
        missing = [d for d in u.deps if d not in fps]
        if missing:
            raise ValueError(f"unit {u.key}: its deps {missing} are not planned before it")
        fps[u.key] = fingerprint(u.key, u.config, [fps[d] for d in u.deps])
    return fps


def completed(out: Path, fp: str) -> dict | None:
    """The DONE record of `out` if it was made with fingerprint `fp` and its files match its manifest."""
    return _done(out, fp)[0]


def _done(out: Path, fp: str) -> tuple[dict | None, str]:
    """(the DONE record or None, and why not: no output yet, config or inputs changed, resumes, a damage)."""
    done = out / "DONE.json"
    if not done.is_file():
        if _fingerprint_of(out / "STARTED.json") == fp:
            return None, "resumes where it stopped"
        return None, "config or inputs changed" if out.exists() else "no output yet"
    try:
        record = json.loads(done.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        log.warning("%s is unreadable: the unit will be recomputed", done)
        return None, "DONE.json unreadable"
    if record.get("fingerprint") != fp:
        return None, "config or inputs changed"
    problem = verify(out, record.get("files", {}))
    if problem:
        log.warning("%s: %s; the unit will be recomputed", out, problem)
        return None, problem
    return record, "done"


def _fingerprint_of(path: Path) -> str | None:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("fingerprint")
    except (ValueError, OSError):
        return None


def done_record(out: Path) -> dict:
    """The DONE record of a unit known to be complete (no checksums: that is `completed`'s work)."""
    return json.loads((out / "DONE.json").read_text(encoding="utf-8"))


def run_unit(out: Path, fp: str, label: str, work: Callable[[], dict], everyone: bool = False) -> dict:
    """Run `work` into `out` unless already complete with `fp`; returns its DONE record."""
    record = completed(out, fp)
    barrier()   # every process has decided from the same files before the main one changes them
    if record is not None:
        log.info("skip %s: complete (%s)", label, out / "DONE.json")
        return record
    started = out / "STARTED.json"
    if is_main():
        if out.exists() and _fingerprint_of(started) != fp:
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
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)   # resumable state, useless once the unit is done
        log.info("%s: done in %.1fs", label, record["seconds"])
    barrier()
    return record if record is not None else done_record(out)   # the main process has just verified and written it


def require(run: Path, unit: Unit, fp: str) -> dict:
    """The DONE record of a unit another one reads; a clear error if it is missing, stale or damaged."""
    out, what, verb = run / unit.key, unit.what or unit.key, STAGES[unit.stage].command
    if not (out / "DONE.json").is_file():
        raise StageError(f"{what} is missing ({out / 'DONE.json'}); run `attrdistill {verb}` on this run directory "
                         "first")
    record = completed(out, fp)
    if record is None:
        raise StageError(f"{what} ({out}) was made with another config or is damaged (see the log); run "
                         f"`attrdistill {verb}` again first")
    return record


def execute(run: Path, units: list[Unit], stages: list[str] | None = None) -> dict[str, Any]:
    """Run the units of `stages` (None: all) in order; the result of the last one run (the report's metrics)."""
    fps = fingerprints(units)
    by_key = {u.key: u for u in units}
    chosen = [u for u in units if stages is None or u.stage in stages]
    keys = {u.key for u in chosen}
    last_shared = max((i for i, u in enumerate(chosen) if u.everyone), default=-1)
    result: dict[str, Any] = {}
    for i, u in enumerate(chosen):
        if i > last_shared and not is_main():
            break   # the rest is the main process's alone (see the module doc)
        for d in u.deps:
            if d not in keys:
                require(run, by_key[d], fps[d])
        if i > last_shared:
            with on_main_only():
                result = _run(run, u, fps[u.key])
        else:
            result = _run(run, u, fps[u.key])
    return result


def _run(run: Path, unit: Unit, fp: str) -> dict[str, Any]:
    if unit.check is not None:
        unit.check()
    if not unit.cached:
        return unit.work()
    return run_unit(run / unit.key, fp, f"{unit.stage} {unit.key}", unit.work, unit.everyone)


def describe(run: Path, units: list[Unit], stages: list[str] | None = None) -> str:
    """The plan as text: one line per unit, with its stage, its state and, for one that would run, why."""
    fps = fingerprints(units)
    lines = [f"{'unit':<44} {'stage':<10} state"]
    for u in units:
        if stages is not None and u.stage not in stages:
            continue
        if not u.cached:
            state = "runs: rewritten every time"
        else:
            record, why = _done(run / u.key, fps[u.key])
            state = "done" if record is not None else f"runs: {why}"
        lines.append(f"{u.key:<44} {u.stage:<10} {state}" + (f" ({u.note})" if u.note else ""))
    return "\n".join(lines)
