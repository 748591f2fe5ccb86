"""Benchmark: teacher-forced validation at the label's positions against the full logits, on a run's model.

    python bench/validation.py runs/esnli-smollm2-low CHECKPOINT [--n 256] [--batch 64]

CHECKPOINT is a saved causal model (a student's checkpoints/checkpoint-N, or teacher/model). On the first
--n validation examples of the run (its own prompts and labels, bf16 autocast where the run's student dtype
resolves to it) each row is judged both ways: every label token the argmax given the gold prefix, from the
model's logits at every position (the path before 2026-12-07) and from `label.label_correct` (the logits at the
label's positions only: the trainer's path since). Prints how many verdicts agree and the seconds of each; the two
alternate batch by batch so that machine noise hits both alike. Why: the logits of a 49,152-token
vocabulary at every prompt position cost about as much as a 10-block student's blocks, for nothing read.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from attrdistill.config import load_config
from attrdistill.distill.label import label_correct
from attrdistill.distill.rows import prompted
from attrdistill.distill.trainer import collate_train, features
from attrdistill.modeling.precision import trainer_precision
from attrdistill.pipeline.records import TrainRow


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    cfg = load_config(args.run / "config.yaml")
    tok = AutoTokenizer.from_pretrained(args.checkpoint)
    model = AutoModelForCausalLM.from_pretrained(args.checkpoint, dtype=torch.float32).eval()
    examples, sources = prompted(args.run, cfg, "valid")
    rows = [TrainRow(s, ex.label) for s, ex in zip(sources[:args.n], examples[:args.n])]
    feats = features(tok, rows, cfg.student, causal=True)
    bf16 = trainer_precision(cfg.student.dtype)["bf16"]   # the mixed precision the student trained and validated in
    agree = right_full = right_label = 0
    seconds = {"full": 0.0, "label": 0.0}
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for i in range(0, len(feats), args.batch):
            batch = collate_train(feats[i:i + args.batch], tok.pad_token_id)
            start = time.perf_counter()
            logits, labels = model(**batch).logits[:, :-1], batch["labels"][:, 1:]   # position t predicts t + 1
            full = ((logits.argmax(-1) == labels) | (labels == -100)).all(-1)
            seconds["full"] += time.perf_counter() - start
            start = time.perf_counter()
            _, label = label_correct(model, batch)
            seconds["label"] += time.perf_counter() - start
            agree += int((full == label).sum())
            right_full, right_label = right_full + int(full.sum()), right_label + int(label.sum())
    print(f"{len(feats)} validation rows ({'bf16 autocast' if bf16 else 'float32'}): the same verdict on {agree}; "
          f"right {right_full} (all logits) / {right_label} (label positions); seconds {seconds['full']:.1f} / "
          f"{seconds['label']:.1f} ({seconds['full'] / seconds['label']:.2f}x)")


if __name__ == "__main__":
    main()
