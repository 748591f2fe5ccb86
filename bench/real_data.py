"""Benchmark: CQA and SVAMP from the DSbS release, end to end on a CPU, with from-scratch models.

    python bench/real_data.py [--datasets cqa svamp] [--path ../shared/data/dsbs] [--json out.json]

Every train example goes through attribution (all 8,766 CQA train rows after the 10% validation
split); teacher and students train for a short budget. Models are from scratch (no pretrained
weights can be had offline), so accuracies near chance on CQA (20%) are the expected, honest
outcome: the point is that the whole pipeline runs on the real data and how fast each stage is.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from attrdistill.cli import main as cli

BUDGET = [  # small models and short training, so that both sets finish in minutes on 2 cores
    "teacher.d_model=128", "teacher.d_ff=512", "teacher.train.max_steps=300", "teacher.train.eval_steps=150",
    "student.d_model=64", "student.d_ff=256", "student.train.max_steps=150", "student.train.eval_steps=75",
    "distill.variants=[standard, dsbs, saliency, random]", "eval.max_new_tokens=32",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["cqa", "svamp"])
    ap.add_argument("--path", default="../shared/data/dsbs")
    ap.add_argument("--out", type=Path, default=Path("runs/bench-real"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    summary = {}
    for name in args.datasets:
        run = args.out / name
        sets = [f"data.source={name}", f"data.path={args.path}", f"name={name}", *BUDGET]
        if cli(["-q", "run", "--out", str(run), *[x for s in sets for x in ("--set", s)]]) != 0:
            raise SystemExit(f"{name}: run failed")
        m = json.loads((run / "metrics.json").read_text())
        t, cfg_steps = m["timing"], {"teacher": 300, "student": 150}
        n_attr = m["attribution"]["n_examples"]
        summary[name] = {
            "teacher_accuracy": m["teacher"]["accuracy"],
            "students": {v: s["accuracy"] for v, s in m["students"].items()},
            "timing_s": t,
            "attribution_examples_per_s": n_attr / t["attribute_s"],   # includes loading the teacher
            "teacher_train_examples_per_s": cfg_steps["teacher"] * 32 / t["finetune_s"],  # incl. evaluations
            "n_attributed": n_attr, "n_test": m["n_test"],
        }
    for name, s in summary.items():
        print(f"\n== {name}: {s['n_attributed']} train examples attributed, {s['n_test']} test examples")
        print(f"teacher accuracy {100 * s['teacher_accuracy']:.1f}%; students: " +
              ", ".join(f"{v} {100 * a:.1f}%" for v, a in s["students"].items()))
        print("seconds: " + ", ".join(f"{k.removesuffix('_s')} {v:.0f}" for k, v in s["timing_s"].items()))
        print(f"attribution {s['attribution_examples_per_s']:.0f} examples/s; teacher training "
              f"{s['teacher_train_examples_per_s']:.0f} examples/s (with its evaluations)")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
