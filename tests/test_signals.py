"""Teacher signals: a new one is one registry.signals entry plus its class, nothing else (the plan gives it a unit,
train rows carry it, the trainer hands its tensors to the objective that reads it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from attrdistill.cli import main
from attrdistill.data import write_jsonl
from attrdistill.pipeline.layout import TRAIN, Layout, load_split
from attrdistill.pipeline.records import TrainRow
from attrdistill.registry.signals import SIGNALS, TeacherSignal, signal_of
from attrdistill.registry.variants import OBJECTIVES, Objective

TINY = ["data.n_teacher_train=48", "data.n_student_train=12", "data.n_valid=6", "data.n_test=8",
        "teacher.d_model=32", "teacher.d_ff=64", "teacher.train.max_steps=4", "teacher.train.eval_steps=2",
        "teacher.train.batch_size=16", "student.d_model=16", "student.d_ff=32", "student.train.max_steps=4",
        "student.train.eval_steps=2", "student.train.batch_size=4", "eval.max_new_tokens=4", "attribution.k=3",
        "analysis.faithfulness_examples=0"]
SEEN: list[dict[str, Any]] = []


class InputLength:
    """A toy signal: per example, its input's length in characters times a setting (no teacher needed)."""

    @staticmethod
    def work(run: Path, cfg: Any, teacher_fp: str) -> dict[str, Any]:
        rows = [{"id": ex.id, "value": len(ex.input) * cfg.distill.kd_temperature} for ex in load_split(run, TRAIN)]
        write_jsonl(Layout(run).signal("input_length"), rows)
        return {"n": len(rows), "teacher": teacher_fp}

    @staticmethod
    def attach(row: TrainRow, teacher: dict[str, Any], goes_on: bool) -> None:
        row.signals["inlen"] = teacher["value"]

    @staticmethod
    def features(values: list[float]) -> list[dict[str, Any]]:
        return [{"inlen_value": v} for v in values]

    @staticmethod
    def collate(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return {"inlen_value": torch.tensor([f["inlen_value"] for f in features])}


class RecordingLoss:
    """The toy objective's loss: the label's CE, recording the signal tensors it was handed."""

    def __init__(self) -> None:
        pass

    def __call__(self, target_logits: torch.Tensor, ce: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        SEEN.append({k: v.tolist() for k, v in batch.items()})
        return ce


def test_one_entry_is_a_whole_teacher_signal(monkeypatch, tmp_path):
    monkeypatch.setitem(SIGNALS, "input_length", TeacherSignal("toy: input lengths", f"{__name__}:InputLength",
                                                               ("kd_temperature",), field="inlen"))
    monkeypatch.setitem(OBJECTIVES, "lenkd", Objective("toy: reads input_length", "input_length",
                                                       loss=f"{__name__}:RecordingLoss"))
    assert signal_of("inlen_value") == "input_length" and signal_of("input_ids") is None
    assert TrainRow.from_json({"source": "s", "target": "t", "inlen": 3.0}).signals == {"inlen": 3.0}
    SEEN.clear()
    run = tmp_path / "run"
    sets = TINY + ["distill.variants=[standard,lenkd]", "distill.kd_temperature=2.0"]
    assert main(["-q", "run", "--out", str(run), *[x for o in sets for x in ("--set", o)]]) == 0
    done = json.loads((run / "input_length" / "DONE.json").read_text())
    assert done["result"]["n"] == 12 and not (run / "teacher_logits").exists()
    values = {r["id"]: r["value"] for r in map(json.loads, (run / "input_length" / "student_train.jsonl").open())}
    lengths = sorted(2.0 * len(ex.input) for ex in load_split(run, TRAIN))
    assert sorted(values.values()) == lengths
    assert SEEN and all(set(batch) == {"inlen_value"} for batch in SEEN), "the loss gets the signal's tensors alone"
    first_epoch = sorted(v for batch in SEEN[:3] for v in batch["inlen_value"])   # 3 batches of 4: all 12 rows
    assert first_epoch == lengths, "each row carries its own example's value"
    # Its setting is its unit's config: a new value remakes the signal and retrains its students, not standard.
    before = {v: (run / "students" / v / "seed0" / "DONE.json").read_text() for v in ("standard", "lenkd")}
    sets[-1] = "distill.kd_temperature=3.0"
    assert main(["-q", "run", "--out", str(run), *[x for o in sets for x in ("--set", o)]]) == 0
    after = {v: (run / "students" / v / "seed0" / "DONE.json").read_text() for v in ("standard", "lenkd")}
    assert [v for v in before if before[v] != after[v]] == ["lenkd"]
    assert max(json.loads(x)["value"] for x in (run / "input_length" / "student_train.jsonl").open()) == \
        pytest.approx(1.5 * max(lengths))
