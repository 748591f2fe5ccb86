"""Killed runs resume: SIGKILL during teacher training, attribution and student training, then the same
command again gives the metrics of an uninterrupted run; damaged artifacts are detected and recomputed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from attrdistill.cli import main

TINY = ["data.n_teacher_train=48", "data.n_student_train=12", "data.n_valid=6", "data.n_test=8",
        "teacher.d_model=32", "teacher.d_ff=64", "teacher.train.max_steps=4", "teacher.train.eval_steps=2",
        "teacher.train.batch_size=16", "student.d_model=16", "student.d_ff=32", "student.train.max_steps=4",
        "student.train.eval_steps=2", "student.train.batch_size=4", "eval.max_new_tokens=4",
        "attribution.k=3", "attribution.shard_size=4", "distill.variants=[standard,saliency]"]
SETS = [x for o in TINY for x in ("--set", o)]


def _run(out: Path, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("ATTRDISTILL_CRASH_AT", None)
    if crash_at:
        env["ATTRDISTILL_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, "-m", "attrdistill.cli", "run", "--out", str(out), *SETS],
                          capture_output=True, text=True, timeout=600, env=env)


def _results(run: Path) -> dict:
    """metrics.json without the timings, which differ between any two runs."""
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.pop("timing")
    return metrics


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("whole") / "run"
    proc = _run(run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run


def test_three_kill_points_are_survived(uninterrupted, tmp_path):
    run = tmp_path / "run"
    killed = -signal.SIGKILL

    proc = _run(run, crash_at="teacher@2")   # 1: during teacher training, after its first checkpoint
    assert proc.returncode == killed, proc.stderr[-3000:]
    assert (run / "teacher" / "checkpoints" / "checkpoint-2").is_dir() and not (run / "teacher" / "DONE.json").exists()

    proc = _run(run, crash_at="shard@1")     # 2: during attribution, after its second shard
    assert proc.returncode == killed, proc.stderr[-3000:]
    assert "resuming teacher from checkpoint-2" in proc.stderr
    (cache,) = (run / "attribution_cache").glob("saliency-*")
    assert sorted(p.name for p in cache.iterdir()) == ["shard-00000.jsonl", "shard-00001.jsonl"]
    assert not (run / "attributions" / "saliency" / "DONE.json").exists()
    shard_times = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}

    proc = _run(run, crash_at="saliency-seed0@2")   # 3: during a student's training
    assert proc.returncode == killed, proc.stderr[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir() if p.name in shard_times} == shard_times, \
        "finished shards are reused, not recomputed"
    student = run / "students" / "saliency" / "seed0"
    assert (student / "checkpoints" / "checkpoint-2").is_dir() and not (student / "DONE.json").exists()

    proc = _run(run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming saliency-seed0 from checkpoint-2" in proc.stderr
    assert _results(run) == _results(uninterrupted), "a resumed run ends where an uninterrupted one does"
    assert not (student / "checkpoints").exists(), "checkpoints are removed once a stage is complete"


def test_same_config_and_seed_give_identical_metrics(uninterrupted, tmp_path):
    """Determinism on CPU: a second run from scratch, in this process, reproduces metrics.json exactly."""
    again = tmp_path / "again"
    assert main(["run", "--out", str(again), *SETS]) == 0
    assert _results(again) == _results(uninterrupted)


def test_damaged_artifacts_are_detected_and_recomputed(uninterrupted, tmp_path, caplog):
    import shutil
    run = tmp_path / "copy"
    shutil.copytree(uninterrupted, run)
    rationales = run / "attributions" / "saliency" / "rows.jsonl"
    whole = rationales.read_text()
    rationales.write_text(whole[: len(whole) // 2])          # truncated
    weights = next((run / "students" / "standard" / "seed0" / "model").glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF                                         # same size, one byte flipped
    weights.write_bytes(bytes(data))
    with caplog.at_level("WARNING"):
        assert main(["run", "--out", str(run), *SETS]) == 0
    assert "rows.jsonl is truncated or altered" in caplog.text
    assert "is corrupted (checksum differs from the manifest)" in caplog.text
    assert rationales.read_text() == whole
    assert _results(run) == _results(uninterrupted)


def test_a_checkpoint_cut_short_is_skipped(tmp_path):
    from attrdistill.distill.trainer import last_checkpoint
    for step, state in ((2, "{}"), (10, "{}"), (12, '{"log_hist')):   # 12 was being written when killed
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    (tmp_path / "checkpoint-14").mkdir()                                 # killed before its state was written
    assert last_checkpoint(tmp_path).name == "checkpoint-10", "numeric order, complete checkpoints only"
    assert last_checkpoint(tmp_path / "none") is None
