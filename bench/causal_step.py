"""Benchmark: a decoder-only train step with logits at the target positions only, against full logits.

    python bench/causal_step.py [--batch 16] [--steps 6] [--layers 30]

A SmolLM2-135M-shaped Llama (hidden 576, 30 layers, 9 heads, 3 KV heads, vocabulary 49152) built
from config with random weights (the step costs the same as with the real ones), on batches of the
first CQA train examples in the causal layout (`features.encode`), tokenised with the T5 tokenizer
in ../shared/tokenizers/t5 (CQA-length prompts, short answers). Each step is forward, loss,
backward and an AdamW step; the two kinds alternate so that machine noise hits both alike. The
full step is `model(**batch).loss` (logits for every position); the target step is
`trainer.label_loss` (hidden states gathered where a target token is predicted, then the output
layer). Peak memory: the peak resident set size of a fresh process that builds the model and batch
and does two steps of one kind (the same setup for both kinds, so the difference is the step's).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from attrdistill.data.dsbs import load_dsbs
from attrdistill.distill.label import label_loss
from attrdistill.modeling.features import collate, encode

SHARED = Path(__file__).resolve().parents[2] / "shared"


def setup(batch: int, layers: int) -> tuple[LlamaForCausalLM, dict[str, torch.Tensor]]:
    tok = AutoTokenizer.from_pretrained(SHARED / "tokenizers" / "t5")
    examples = load_dsbs(SHARED / "data" / "dsbs", "cqa", "train")[:batch]
    feats = encode(tok, ["predict: " + ex.input for ex in examples], [ex.label for ex in examples], 512, 32,
                   causal=True)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=layers,
                      num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                      tie_word_embeddings=True, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    return LlamaForCausalLM(cfg).train(), collate(feats, tok.pad_token_id)


def losses(model: LlamaForCausalLM) -> dict:
    return {"full": lambda b: model(**b).loss, "target": lambda b: label_loss(model, b)[0]}


def peak_rss(kind: str, batch: int, layers: int) -> None:
    """Child process: print the peak RSS (MiB) of setup plus two steps of `kind`."""
    model, b = setup(batch, layers)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    for _ in range(2):
        losses(model)[kind](b).backward()
        opt.step()
        opt.zero_grad()
    print(json.dumps({"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--peak", choices=("full", "target"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peak:
        return peak_rss(args.peak, args.batch, args.layers)
    model, batch = setup(args.batch, args.layers)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    steps = losses(model)
    times: dict[str, list[float]] = {k: [] for k in steps}
    got = {k: f(batch).item() for k, f in steps.items()}
    for step in range(args.steps + 1):
        for kind, loss_of in steps.items():
            t0 = time.perf_counter()
            loss_of(batch).backward()
            opt.step()
            opt.zero_grad()
            if step:   # the first round warms up
                times[kind].append(time.perf_counter() - t0)
    peak = {k: json.loads(subprocess.run([sys.executable, __file__, "--peak", k, "--batch", str(args.batch),
                                          "--layers", str(args.layers)], check=True, capture_output=True,
                                         text=True).stdout.splitlines()[-1])["peak_mib"] for k in steps}
    med = {k: statistics.median(v) for k, v in times.items()}
    shape = tuple(batch["input_ids"].shape)
    n_target = int((batch["labels"] != -100).sum())
    print(f"batch {shape[0]} x {shape[1]} tokens ({n_target} target tokens), {args.layers} layers, "
          f"{torch.get_num_threads()} threads, {args.steps} steps each; loss full {got['full']:.6f} "
          f"target {got['target']:.6f}")
    for k in steps:
        print(f"{k:>6}: {med[k]:.2f} s/step (median), process peak {peak[k]:.0f} MiB")
    print(f"target-only is {med['full'] / med['target']:.2f}x faster and peaks {peak['full'] - peak['target']:.0f} MiB "
          "lower")


if __name__ == "__main__":
    main()
