"""Benchmark: how often a run's teacher rationales start with the oracle's decisive words, in label order.

    python bench/rationale_order.py RUN [RUN ...]

For each run directory and each attribution method it has scored (attributions/<method>/rows.jsonl over
student_train), prints the share of examples whose first two rationale words are the two decisive
words in the label's order (tool, then place), the share holding both in either order, and
recall@k. Reads files only: no model is loaded.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from attrdistill.attribution.select import recall_at_k
from attrdistill.data.example import read_examples
from attrdistill.pipeline.records import attribution_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+")
    args = ap.parse_args()
    print(f"{'run':<40} {'method':<12} {'order':<8} {'first 2 = oracle %':>18} {'both in first 2 %':>18} "
          f"{'recall@k %':>10}")
    for run in args.runs:
        examples = {ex.id: ex for ex in read_examples(run / "data" / "student_train.jsonl")}
        order = _order(run)
        for path in sorted((run / "attributions").glob("*/rows.jsonl")):   # student_train; test is one deeper
            rows = attribution_rows(run, path.parent.name)
            exs = [examples[r.id] for r in rows]
            same = sum(r.top[:2] == list(ex.decisive) for r, ex in zip(rows, exs)) / len(rows)
            both = sum(set(r.top[:2]) == set(ex.decisive) for r, ex in zip(rows, exs)) / len(rows)
            print(f"{str(run):<40} {path.parent.name:<12} {order:<8} {100 * same:18.1f} {100 * both:18.1f} "
                  f"{100 * recall_at_k(rows, exs):10.1f}")


def _order(run: Path) -> str:
    import yaml
    return yaml.safe_load((run / "config.yaml").read_text())["attribution"]["order"]


if __name__ == "__main__":
    main()
