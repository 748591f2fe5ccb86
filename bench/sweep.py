"""Benchmark: choose a variant's distill settings on validation, one student per setting (test is never read).

    python bench/sweep.py configs/esnli-smollm2-low.yaml --base runs/esnli-smollm2-low --variant kd \
        --grid distill.kd_alpha=0.5,0.9 distill.kd_temperature=1,2,4 [--seed 0] [--json sweep.json]

Each point of the grid (every combination of the listed values) is a run folder under BASE/sweep/ that
starts with hard links to what the students read (data, the teacher, its attributions and kd logits: from
BASE, or from the point before where BASE lacks them), then runs the stages up to distill for `--variant`
and one seed. What a changed setting touches is recomputed by the usual fingerprints; every file is
written to a new name and renamed, so a linked file is never written through. It prints each point's best
validation accuracy (the checkpoint the student keeps) and its steps, best first: the setting to write into
the config. Folders are reused, so an interrupted sweep resumes. BASE needs its data and finetune stages
done (`attrdistill run CONFIG --out BASE`, or those stages alone).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
from pathlib import Path

import attrdistill
from attrdistill.config import load_config
from attrdistill.errors import UserError
from attrdistill.pipeline.layout import DATA, TEACHER, student_key
from attrdistill.pipeline.runner import done_record
from attrdistill.registry.methods import REGISTRY
from attrdistill.registry.variants import parse_variant

SHARED = (DATA, TEACHER)   # what the base run must have
OWN = {"students", "predictions", "analyses", "report_files", "sweep"}   # a point's own folders


def link_upstream(sources: list[Path], dst: Path) -> None:
    """Hard links in dst to every folder the students read, each from the first of `sources` that has it."""
    for src in sources:
        for folder in src.iterdir():
            if folder.is_dir() and folder.name not in OWN and not (dst / folder.name).exists():
                shutil.copytree(folder, dst / folder.name, copy_function=os.link)


def points(grid: list[str]) -> list[list[str]]:
    """["a=1,2", "b=3"] -> [["a=1", "b=3"], ["a=2", "b=3"]]."""
    axes = []
    for spec in grid:
        key, _, values = spec.partition("=")
        if not values:
            raise SystemExit(f"--grid {spec!r}: expected field=value,value,...")
        axes.append([f"{key}={v}" for v in values.split(",")])
    return [list(p) for p in itertools.product(*axes)]


def check_points(config: str, grid: list[list[str]], fixed: list[str]) -> None:
    """Every point's config, before the first point trains: a bad combination (e.g. keep_every=1 with
    keep_by=influence) stops the sweep at once instead of after the points before it."""
    for sets in grid:
        try:
            load_config(config, sets + fixed)
        except UserError as e:
            raise SystemExit(f"--grid point {' '.join(sets)}: {e}") from None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--base", type=Path, required=True, help="run folder whose data and teacher are done")
    ap.add_argument("--variant", required=True)
    ap.add_argument("--grid", nargs="+", required=True, metavar="FIELD=V1,V2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    missing = [u for u in SHARED if not (args.base / u / "DONE.json").is_file()]
    if missing:
        raise SystemExit(f"{args.base}: {', '.join(missing)} not done; run its data and finetune stages first")
    v = parse_variant(args.variant)   # the attribute stage only for a variant that reads attributions
    reads = any(m in REGISTRY for m in (v.rationale, v.guide))
    stages = ["data", "finetune"] + ["attribute"] * reads + ["distill"]
    fixed = [f"distill.variants=[{args.variant}]", f"distill.seeds=[{args.seed}]"]
    grid = points(args.grid)
    check_points(args.config, grid, fixed)
    results, done_points = [], []
    for sets in grid:
        name = "_".join(key.rpartition(".")[2] + value for key, _, value in (s.partition("=") for s in sets))
        out = args.base / "sweep" / f"{args.variant.replace(':', '-')}_{name}"
        out.mkdir(parents=True, exist_ok=True)
        link_upstream([args.base] + done_points[::-1], out)
        attrdistill.run(args.config, sets + fixed, out=out, stages=stages)
        done = done_record(out / student_key(args.variant, args.seed))
        results.append({"settings": sets, "best_valid_accuracy": done["result"]["best_valid_accuracy"],
                        "steps": done["result"]["steps"], "seconds": done["seconds"], "run": str(out)})
        done_points.append(out)
    results.sort(key=lambda r: -r["best_valid_accuracy"])
    for r in results:
        print(f"{100 * r['best_valid_accuracy']:5.1f}% valid  {r['steps']:5d} steps  {r['seconds']:7.1f} s  "
              f"{' '.join(r['settings'])}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
