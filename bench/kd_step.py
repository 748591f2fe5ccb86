"""Benchmark: the cost of a kd (and a match) student step against a standard one, same batch, in one run.

    python bench/kd_step.py [--batch 32] [--steps 60] [--top-k 16] [--compile]

The built-in task's default student (d_model 64) and its word-level tokenizer; the teacher's sparse
logits are computed once beforehand (as the pipeline caches them), so a step reads them from the
batch. Forward, loss, backward and an AdamW step; the two kinds of step alternate so that machine
noise hits all alike. Prints ms per step of each and the ratios to standard. `match` (attribution
matching against uniform teacher word scores: the cost does not depend on their values) needs a
double backward through the model. --compile also times the standard step of the student under
`torch.compile` (inductor), with the seconds its first step takes to compile.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from attrdistill.config import RunConfig
from attrdistill.data.synthetic import generate
from attrdistill.distill.kd import KDLoss, teacher_logits
from attrdistill.distill.trainer import TwoTaskTrainer, collate_train, features
from attrdistill.modeling.models import build_word_tokenizer, load_model
from attrdistill.modeling.words import words


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--top-k", type=int, default=16)
    ap.add_argument("--compile", action="store_true", help="also time a torch.compile'd standard step")
    args = ap.parse_args()
    cfg = RunConfig()
    examples = generate(args.batch, seed=1)
    tok = build_word_tokenizer([t for ex in generate(2000, seed=0) for t in (ex.input, ex.label)] + ["predict: x"])
    teacher, student = load_model(cfg.teacher, tok, seed=0).eval(), load_model(cfg.student, tok, seed=1)
    sources, targets = [cfg.data.predict_prefix + ex.input for ex in examples], [ex.label for ex in examples]
    kd = teacher_logits(teacher, tok, [ex.id for ex in examples], sources, targets, args.top_k,
                        cfg.distill.kd_temperature, 128, 32)
    rows = [{"source": s, "target": t} for s, t in zip(sources, targets)]
    batches = {"standard": collate_train(features(tok, rows, cfg.student), tok.pad_token_id),
               "kd": collate_train(features(tok, [{**r, "kd": k} for r, k in zip(rows, kd)], cfg.student),
                                   tok.pad_token_id),
               "match": collate_train(features(tok, [{**r, "match": {"input": ex.input,
                                                                     "prefix": cfg.data.predict_prefix,
                                                                     "scores": [1.0] * len(words(ex.input))}}
                                                     for r, ex in zip(rows, examples)], cfg.student), tok.pad_token_id)}
    from transformers import Seq2SeqTrainingArguments
    trainer = TwoTaskTrainer(model=student, args=Seq2SeqTrainingArguments("/tmp/kd-step-bench", report_to=[]),
                             objective_loss=KDLoss())
    opt = torch.optim.AdamW(student.parameters(), lr=1e-4)
    student.train()
    times: dict[str, list[float]] = {name: [] for name in batches}
    for step in range(args.steps + 5):
        for name, batch in batches.items():
            t0 = time.perf_counter()
            trainer.compute_loss(student, dict(batch)).backward()
            opt.step()
            opt.zero_grad()
            if step >= 5:   # warm-up steps are not timed
                times[name].append(time.perf_counter() - t0)
    med = {k: 1000 * statistics.median(v) for k, v in times.items()}
    if args.compile:
        compiled = torch.compile(student)
        t0 = time.perf_counter()
        trainer.compute_loss(compiled, dict(batches["standard"])).backward()
        first = time.perf_counter() - t0
        opt.zero_grad()
        for step in range(args.steps + 5):
            t0 = time.perf_counter()
            trainer.compute_loss(compiled, dict(batches["standard"])).backward()
            opt.step()
            opt.zero_grad()
            if step >= 5:
                times.setdefault("compiled standard", []).append(time.perf_counter() - t0)
        print(f"torch.compile: first step {first:.1f} s (compilation)")
    print(f"batch {args.batch}, top-K {args.top_k}, {args.steps} steps each, {torch.get_num_threads()} threads")
    print(", ".join(f"{k} step {v:.1f} ms" for k, v in med.items()) + " (medians); ratios to standard: "
          + ", ".join(f"{k} {v / med['standard']:.3f}" for k, v in med.items() if k != "standard"))


if __name__ == "__main__":
    main()
