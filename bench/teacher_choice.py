"""Benchmark: on which real task does the SmolLM2-135M-Instruct teacher learn most in the hour's budget?

    python bench/teacher_choice.py [--tasks esnli cqa] [--out runs/bench-teacher]

Fine-tunes the GGUF teacher of configs/<task>-smollm2.yaml on each task with one recipe (the e-SNLI
config's: 120 steps of 16 at lr 2e-4, 300 validation examples) and prints its best validation accuracy
next to chance. Only the data and finetune stages run; `attrdistill run configs/<task>-smollm2.yaml`
reuses the teacher when pointed at the same folder. About 12 minutes per task on 2 idle cores.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from attrdistill.config import load_config
from attrdistill.pipeline.plan import run_stages

RECIPE = ["teacher.train.learning_rate=2e-4", "teacher.train.max_steps=120", "teacher.train.batch_size=16",
          "teacher.train.eval_steps=60", "data.limit=1920", "data.eval_limit=300"]
CHANCE = {"esnli": 1 / 3, "cqa": 1 / 5}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=["esnli", "cqa"], choices=sorted(CHANCE))
    ap.add_argument("--out", type=Path, default=Path("runs/bench-teacher"))
    args = ap.parse_args()
    results = {}
    for task in args.tasks:
        # distill.variants only decides which data checks run before the teacher trains
        cfg = load_config(f"configs/{task}-smollm2.yaml", RECIPE + ["distill.variants=[standard]"])
        done = run_stages(args.out / task, cfg, ["data", "finetune"])
        results[task] = {"best_valid_accuracy": done["result"]["best_valid_accuracy"], "chance": CHANCE[task],
                         "seconds": done["seconds"]}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
