"""Benchmark: the default pipeline on the built-in task, students over several seeds.

    python bench/builtin.py --seeds 0 1 2 [--low-data] [--methods] [--out runs/bench-builtin] [--set key=value ...]

Prints the teacher's test accuracy, each student variant's test accuracy (mean and std over the
seeds), the gain over the label-only student, recall@k of the decisive words (saliency and random
words) and wall time per stage. The run directory is reused: finished stages are skipped.
--low-data: 150 student examples trained to convergence (batch 16, 1500 steps), the regime in
which rationales pay off for the student (about 20 minutes on 2 cores for 3 seeds).
--methods: one student per attribution method (every entry of the registry attrdistill.registry.methods but the
random control: saliency, saliency_stepwise, input_x_gradient, integrated_gradients, occlusion) beside
standard, random and oracle, and the table that says which method to distil with: recall@k of the
decisive words, faithfulness on the teacher, student accuracy.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from attrdistill.cli import main as cli
from attrdistill.registry.methods import REGISTRY

# The seeded control (random) is listed among the controls; every other registered method gets a student.
METHODS = [f"distill.variants=[standard,random,oracle,{','.join(m for m, e in REGISTRY.items() if not e.seeded)}]"]
LOW_DATA = ["data.n_student_train=150", "student.train.batch_size=16", "student.train.max_steps=1500",
            "student.train.eval_steps=250"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=Path("runs/bench-builtin"))
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--low-data", action="store_true", help="150 student examples, 1500 steps (see above)")
    ap.add_argument("--methods", action="store_true", help="a student per attribution method (see above)")
    ap.add_argument("--json", type=Path, help="also write the summary here")
    args = ap.parse_args()
    overrides = [f"distill.seeds={args.seeds}", *(LOW_DATA if args.low_data else []),
                 *(METHODS if args.methods else []), *args.overrides]
    sets = [x for o in overrides for x in ("--set", o)]
    t0 = time.perf_counter()
    if cli(["-q", "run", "--out", str(args.out), *sets]) != 0:
        raise SystemExit("run failed")
    m = json.loads((args.out / "metrics.json").read_text())
    std = m["students"]["standard"]["accuracy"]
    print(f"\nbuilt-in task, {m['n_test']} test examples, student seeds {args.seeds}")
    print(f"teacher accuracy: {100 * m['teacher']['accuracy']:.1f}%")
    print(f"{'variant':<21} {'mean %':>7} {'std':>6} {'vs standard':>12}   per seed")
    for variant, s in m["students"].items():
        per_seed = " ".join(f"{100 * v:.1f}" for v in s["per_seed"].values())
        print(f"{variant:<21} {100 * s['accuracy']:7.1f} {100 * s['std']:6.1f} "
              f"{100 * (s['accuracy'] - std):+12.1f}   {per_seed}")
    a = m["attribution"]
    print(f"{a['method']} recall@{a['k']}: {100 * a['recall_at_k']:.1f}%  random words: "
          f"{100 * a['random_recall_at_k']:.1f}%  ratio {a['recall_at_k'] / a['random_recall_at_k']:.2f}x")
    print(f"\n{'method':<21} {'recall@k %':>10} {'compr.':>7} {'suff.':>7} {'student %':>10} {'std':>5}")
    for method, row in m["analyses"]["methods"].items():
        cells = [_cell(row["recall_at_k"], 100, 10), _cell(row["comprehensiveness"], 1, 7),
                 _cell(row["sufficiency"], 1, 7), _cell(row["student_accuracy"], 100, 10),
                 _cell(row["student_std"], 100, 5)]
        print(f"{method:<21} " + " ".join(cells))
    print("seconds per stage: " + ", ".join(f"{k.removesuffix('_s')} {v:.0f}" for k, v in m["timing"].items()))
    print(f"wall time of this command: {time.perf_counter() - t0:.0f}s")
    if args.json:
        args.json.write_text(json.dumps(m, indent=2))


def _cell(value: float | None, scale: float, width: int) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{scale * value:{width}.{1 if scale == 100 else 3}f}"


if __name__ == "__main__":
    main()
