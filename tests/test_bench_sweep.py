"""bench/sweep.py checks every grid point's config before the first point trains."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _sweep():
    spec = importlib.util.spec_from_file_location("sweep", ROOT / "bench" / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_bad_grid_point_stops_the_sweep_before_any_point_trains():
    sweep = _sweep()
    config = str(ROOT / "configs" / "esnli-gemma-smollm2.yaml")
    grid = sweep.points(["student.keep_every=3,1"])
    assert grid == [["student.keep_every=3"], ["student.keep_every=1"]]
    fixed = ["distill.variants=[standard]", "distill.seeds=[0]"]
    sweep.check_points(config, grid[:1], fixed)   # keep_every=3 with keep_by=influence is a valid point
    with pytest.raises(SystemExit, match=r"--grid point student.keep_every=1: .*keep_by: influence"):
        sweep.check_points(config, grid, fixed)
