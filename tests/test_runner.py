"""The runner on toy units (no models): skip, recompute exactly the dependents, refuse missing inputs, describe."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest

from attrdistill.errors import StageError
from attrdistill.pipeline.runner import Unit, describe, execute, fingerprints


def _write(run: Path, key: str, calls: list[str], value: int) -> dict:
    calls.append(key)
    (run / key / "out.json").write_text(json.dumps(value))
    return {"value": value}


def _plan(run: Path, calls: list[str], a: int = 1, b: int = 2) -> list[Unit]:
    work = partial(_write, run, calls=calls)
    return [Unit("a", "data", partial(work, "a", value=a), config=a),
            Unit("b", "finetune", partial(work, "b", value=b), ("a",), config=b),
            Unit("c", "attribute", partial(work, "c", value=0), ("a",)),
            Unit("d", "distill", partial(work, "d", value=0), ("b", "c"), what="the d unit")]


def _states(run: Path, units: list[Unit]) -> dict[str, str]:
    return {line.split()[0]: line.split(None, 2)[2] for line in describe(run, units).splitlines()[1:]}


def test_a_changed_setting_reruns_exactly_its_unit_and_the_units_that_read_it(tmp_path):
    calls: list[str] = []
    execute(tmp_path, _plan(tmp_path, calls))
    assert calls == ["a", "b", "c", "d"]
    calls.clear()
    execute(tmp_path, _plan(tmp_path, calls))
    assert calls == [], "complete units are skipped"
    units = _plan(tmp_path, calls, b=3)
    assert _states(tmp_path, units) == {"a": "done", "b": "runs: config or inputs changed", "c": "done",
                                        "d": "runs: config or inputs changed"}
    execute(tmp_path, units)
    assert calls == ["b", "d"]
    assert json.loads((tmp_path / "b" / "out.json").read_text()) == 3


def test_a_stage_alone_needs_its_inputs_complete_and_names_the_verb(tmp_path):
    calls: list[str] = []
    with pytest.raises(StageError, match=r"b is missing \(.*\); run `attrdistill finetune` on this run directory"):
        execute(tmp_path, _plan(tmp_path, calls), stages=["distill"])
    assert calls == []
    execute(tmp_path, _plan(tmp_path, calls), stages=["data", "finetune", "attribute"])
    with pytest.raises(StageError, match="was made with another config or is damaged.*`attrdistill finetune` again"):
        execute(tmp_path, _plan(tmp_path, calls, b=5), stages=["distill"])
    execute(tmp_path, _plan(tmp_path, calls), stages=["distill"])
    assert calls == ["a", "b", "c", "d"]


def test_describe_says_why_a_unit_would_run(tmp_path):
    calls: list[str] = []
    units = _plan(tmp_path, calls)
    assert set(_states(tmp_path, units).values()) == {"runs: no output yet"}
    execute(tmp_path, units)
    (tmp_path / "c" / "out.json").write_text("99")   # damaged after it was recorded
    (tmp_path / "d" / "DONE.json").unlink()           # interrupted before its record
    states = _states(tmp_path, units)
    assert "c/out.json is truncated or altered" in states["c"] and states["d"] == "runs: resumes where it stopped"


def test_a_unit_must_be_planned_after_what_it_reads():
    with pytest.raises(ValueError, match=r"unit b: its deps \['a'\] are not planned before it"):
        fingerprints([Unit("b", "finetune", dict, ("a",)), Unit("a", "data", dict)])
