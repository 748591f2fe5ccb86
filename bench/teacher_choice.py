"""Benchmark: on which real task does the SmolLM2-135M-Instruct teacher learn most in the hour's budget?

    python bench/teacher_choice.py [--tasks esnli cqa] [--out runs/bench-teacher]
    python bench/teacher_choice.py --config configs/esnli-gemma-smollm2.yaml   # another teacher, same recipe

Fine-tunes the GGUF teacher of configs/<task>-smollm2.yaml on each task with one recipe (the e-SNLI
config's: 120 steps of 16 at lr 2e-4, 300 validation examples) and prints its best validation accuracy
next to chance; `--config` measures the teacher of any config (another model, e.g. Gemma 3 270M) under the
same recipe instead, into OUT/<its name>. Only the data and finetune stages run;
`attrdistill run configs/<task>-smollm2.yaml` reuses the teacher when pointed at the same folder. About 12
minutes per task on 2 idle cores.
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
    ap.add_argument("--config", nargs="+", default=[], help="configs to measure instead of --tasks")
    ap.add_argument("--out", type=Path, default=Path("runs/bench-teacher"))
    args = ap.parse_args()
    # distill.variants only decides which data checks run before the teacher trains
    sets = RECIPE + ["distill.variants=[standard]"]
    configs = [load_config(path, sets) for path in args.config]
    configs = configs or [load_config(f"configs/{task}-smollm2.yaml", sets) for task in args.tasks]
    results = {}
    for cfg in configs:
        name = cfg.name if args.config else cfg.data.source
        done = run_stages(args.out / name, cfg, ["data", "finetune"])
        results[name] = {"best_valid_accuracy": done["result"]["best_valid_accuracy"],
                         "chance": CHANCE[cfg.data.source], "seconds": done["seconds"]}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
