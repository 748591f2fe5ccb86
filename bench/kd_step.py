"""Benchmark: the cost of a kd (and a match) student step against a standard one, same batch, in one run.

    python bench/kd_step.py [--batch 32] [--steps 60] [--top-k 16] [--compile]
    python bench/kd_step.py --causal [--batch 16] [--steps 20] [--layers 10]

The built-in task's default student (d_model 64) and its word-level tokenizer; or with --causal a
SmolLM2-135M-shaped decoder-only student (hidden 576, 9 heads, 3 KV heads, vocabulary 49152, random
weights: a step costs the same as with real ones) cut to --layers blocks (the e-SNLI config keeps 10),
on the first --batch e-SNLI validation prompts of the DSbS release in ../shared (the config's "Premise:
... Hypothesis: ..." format, 96 input tokens at most) tokenised with ../shared/tokenizers/t5. The teacher's sparse
logits are computed once beforehand (as the pipeline caches them), so a step reads them from the
batch. Forward, loss, backward and an AdamW step; the two kinds of step alternate so that machine
noise hits all alike. Prints ms per step of each and the ratios to standard. `match` (attribution
matching against uniform teacher word scores: the cost does not depend on their values) needs a
double backward through the model; `match/2` is its cheaper schedule, the term on every 2nd step
(`distill.term_every: 2`): the mean of a step with the term and the next one without. --compile also
times the standard step of the student under
`torch.compile` (inductor), with the seconds its first step takes to compile.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from attrdistill.config import ModelConfig, RunConfig
from attrdistill.data.dsbs import load_dsbs
from attrdistill.data.synthetic import generate
from attrdistill.distill.kd import KDLoss, teacher_logits
from attrdistill.distill.matching import AttributionMatching
from attrdistill.distill.trainer import TwoTaskTrainer, collate_train, features
from attrdistill.modeling.models import build_word_tokenizer, load_model
from attrdistill.modeling.words import words


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--top-k", type=int, default=16)
    ap.add_argument("--compile", action="store_true", help="also time a torch.compile'd standard step")
    ap.add_argument("--causal", action="store_true", help="a SmolLM2-shaped decoder-only student on e-SNLI prompts")
    ap.add_argument("--layers", type=int, default=10, help="--causal: transformer blocks of the student")
    args = ap.parse_args()
    cfg = RunConfig()
    if args.causal:
        tok, teacher, student, examples, role = causal_setup(args.batch, args.layers)
    else:
        examples = generate(args.batch, seed=1)
        tok = build_word_tokenizer([t for ex in generate(2000, seed=0) for t in (ex.input, ex.label)] + ["predict: x"])
        teacher, student = load_model(cfg.teacher, tok, seed=0).eval(), load_model(cfg.student, tok, seed=1)
        role = cfg.student
    causal = args.causal
    sources, targets = [cfg.data.predict_prefix + ex.input for ex in examples], [ex.label for ex in examples]
    kd = teacher_logits(teacher, tok, [ex.id for ex in examples], sources, targets, args.top_k,
                        cfg.distill.kd_temperature, role.max_input_length, role.max_target_length)
    rows = [{"source": s, "target": t} for s, t in zip(sources, targets)]
    guides = [{"input": ex.input, "prefix": cfg.data.predict_prefix, "scores": [1.0] * len(words(ex.input))}
              for ex in examples]
    batches = {"standard": collate_train(features(tok, rows, role, causal), tok.pad_token_id),
               "kd": collate_train(features(tok, [{**r, "kd": k} for r, k in zip(rows, kd)], role, causal),
                                   tok.pad_token_id),
               "match": collate_train(features(tok, [{**r, "match": g} for r, g in zip(rows, guides)], role, causal),
                                      tok.pad_token_id)}
    from transformers import Seq2SeqTrainingArguments
    targs = Seq2SeqTrainingArguments("/tmp/kd-step-bench", report_to=[])
    # Each kind of step as the pipeline trains it: the label's CE, kd's loss, the match term (weight 1).
    trainers = {"standard": TwoTaskTrainer(model=student, args=targs),
                "kd": TwoTaskTrainer(model=student, args=targs, objective_loss=KDLoss()),
                "match": TwoTaskTrainer(model=student, args=targs, term=AttributionMatching(1.0)),
                "match/2": TwoTaskTrainer(model=student, args=targs, term=AttributionMatching(1.0), term_every=2)}
    batches["match/2"] = batches["match"]
    opt = torch.optim.AdamW(student.parameters(), lr=1e-4)
    student.train()
    times: dict[str, list[float]] = {name: [] for name in batches}
    for step in range(args.steps + 5):
        for name, batch in batches.items():
            trainer, t0 = trainers[name], time.perf_counter()
            # match/2 (distill.term_every 2): a step with the term and one without, the mean of the two timed
            for global_step in range(trainer.term_every):
                trainer.state.global_step = global_step
                trainer.compute_loss(student, dict(batch)).backward()
                opt.step()
                opt.zero_grad()
            if step >= 5:   # warm-up steps are not timed
                times[name].append((time.perf_counter() - t0) / trainer.term_every)
    med = {k: 1000 * statistics.median(v) for k, v in times.items()}
    if args.compile:
        compiled = torch.compile(student)
        t0 = time.perf_counter()
        trainers["standard"].compute_loss(compiled, dict(batches["standard"])).backward()
        first = time.perf_counter() - t0
        opt.zero_grad()
        for step in range(args.steps + 5):
            t0 = time.perf_counter()
            trainers["standard"].compute_loss(compiled, dict(batches["standard"])).backward()
            opt.step()
            opt.zero_grad()
            if step >= 5:
                times.setdefault("compiled standard", []).append(time.perf_counter() - t0)
        print(f"torch.compile: first step {first:.1f} s (compilation)")
    ids = tuple(batches["standard"]["input_ids"].shape)
    shape = f"causal {args.layers}-block SmolLM2-shaped student, input {ids}" if causal else "the built-in student"
    print(f"{shape}; batch {args.batch}, top-K {args.top_k}, {args.steps} steps each, {torch.get_num_threads()} "
          "threads")
    print(", ".join(f"{k} step {v:.1f} ms" for k, v in med.items()) + " (medians); ratios to standard: "
          + ", ".join(f"{k} {v / med['standard']:.3f}" for k, v in med.items() if k != "standard"))


def causal_setup(batch: int, layers: int) -> tuple[Any, Any, Any, list[Any], ModelConfig]:
    """(tokenizer, teacher, student, examples, the student's config): the SmolLM2 shape, e-SNLI prompts. The kd
    teacher is the student's twin (its sparse logits cost the same whatever their values)."""
    shared = Path(__file__).resolve().parents[2] / "shared"
    tok = AutoTokenizer.from_pretrained(shared / "tokenizers" / "t5")
    examples = load_dsbs(shared / "data" / "dsbs", "esnli", "valid", nli_format="text")[:batch]
    torch.manual_seed(0)
    shape = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=layers,
                        num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                        tie_word_embeddings=True, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    student = LlamaForCausalLM(shape)
    teacher = LlamaForCausalLM(shape).eval()
    return tok, teacher, student, examples, ModelConfig(max_input_length=96, max_target_length=8)


if __name__ == "__main__":
    main()
