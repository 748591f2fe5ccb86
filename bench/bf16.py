"""Benchmark: bf16 against float32 on this CPU, in one run: train step, attribution and evaluation.

    python bench/bf16.py [--run runs/default] [--steps 10] [--n 64] [--layers 10]

Two models: the built-in task's trained teacher from a default run's folder (`attrdistill run`, a T5 of
d_model 128; its student-train examples), and a SmolLM2-135M-shaped decoder-only model (hidden 576, 9
heads, 3 KV heads, vocabulary 49152, random weights, cut to --layers blocks) on the first e-SNLI validation
prompts of the DSbS release in ../shared, tokenised with ../shared/tokenizers/t5.

- train step: the run's trainer's loss (`compute_loss`), backward and AdamW, float32 weights; bf16 with the
  Trainer's own `bf16` mixed precision (autocast), as a run's students train. Batches of 32 (T5) and 16
  (causal); the two dtypes alternate so that machine noise hits both alike; medians after one warm-up step.
- attribution: the engine's saliency and occlusion scores of --n examples, with the model's weights in
  float32 and in bfloat16 (as `load_trained` loads it for attribution); examples per second, and how many
  examples keep the same top-5 words (attribution.k 5) in bf16.
- evaluation: greedy predictions of the same examples (`evaluate.predict`), examples per second, and how
  many predictions are the same.

Prints one JSON object; the ratios are float32 time / bf16 time (above 1: bf16 is faster).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from attrdistill.attribution.engine import attribute
from attrdistill.config import AttributionConfig, ModelConfig
from attrdistill.data.dsbs import load_dsbs
from attrdistill.data.example import Example
from attrdistill.distill.trainer import TwoTaskTrainer, collate_train, features
from attrdistill.evaluate.predict import predict
from attrdistill.modeling.features import is_causal
from attrdistill.modeling.models import load_trained
from attrdistill.modeling.precision import cpu_bf16
from attrdistill.pipeline.layout import TRAIN, load_split

SHARED = Path(__file__).resolve().parents[2] / "shared"
PREFIX = "predict: "


def train_steps(model: Any, tok: Any, examples: list[Example], role: ModelConfig, batch: int,
                steps: int) -> dict[str, float]:
    """Median ms of a train step of the Trainer in float32 and with its `bf16` mixed precision, alternating, on
    the same batch: the trainer's `compute_loss` (which opens the Trainer's autocast for bf16), backward, AdamW."""
    from transformers import Seq2SeqTrainingArguments
    rows = [{"source": PREFIX + ex.input, "target": ex.label} for ex in examples[:batch]]
    b = collate_train(features(tok, rows, role, is_causal(model)), tok.pad_token_id)
    trainers = {dtype: TwoTaskTrainer(model=model, args=Seq2SeqTrainingArguments(
        "/tmp/bf16-bench", report_to=[], use_cpu=True, bf16=dtype == "bfloat16")) for dtype in ("float32", "bfloat16")}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    model.train()
    times: dict[str, list[float]] = {dtype: [] for dtype in trainers}
    for step in range(steps + 1):
        for dtype, trainer in trainers.items():
            t0 = time.perf_counter()
            trainer.compute_loss(model, dict(b)).backward()
            opt.step()
            opt.zero_grad()
            if step:
                times[dtype].append(time.perf_counter() - t0)
    return {d: 1000 * statistics.median(t) for d, t in times.items()}


def timed(work: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = work()
    return out, time.perf_counter() - t0


def inference(model: Any, tok: Any, examples: list[Example], max_target: int) -> dict[str, Any]:
    """Attribution (saliency, occlusion) and evaluation in float32 and with bf16 weights: examples per second
    and agreement."""
    models = {"float32": model.eval(), "bfloat16": copy.deepcopy(model).to(torch.bfloat16).eval()}
    cfg = AttributionConfig(k=5, batch_size=16)
    out: dict[str, Any] = {}
    for method in ("saliency", "occlusion"):
        rows, seconds = {}, {}
        for dtype, m in models.items():
            rows[dtype], seconds[dtype] = timed(lambda m=m: attribute(examples, method, m, tok, cfg, PREFIX, 128,
                                                                      max_target))
        same = sum(a.top == b.top for a, b in zip(rows["float32"], rows["bfloat16"]))
        out[method] = {"examples_per_s": {d: len(examples) / s for d, s in seconds.items()},
                       "ratio": seconds["float32"] / seconds["bfloat16"],
                       "top5_same": same, "top5_same_share": same / len(examples),
                       "top5_set_same_share": sum(set(a.top) == set(b.top) for a, b in
                                                  zip(rows["float32"], rows["bfloat16"])) / len(examples)}
    preds, seconds = {}, {}
    for dtype, m in models.items():
        preds[dtype], seconds[dtype] = timed(lambda m=m: predict(m, tok, [PREFIX + ex.input for ex in examples],
                                                                 16, max_target, 128))
    out["evaluate"] = {"examples_per_s": {d: len(examples) / s for d, s in seconds.items()},
                       "ratio": seconds["float32"] / seconds["bfloat16"],
                       "same_predictions_share": sum(a == b for a, b in zip(*preds.values())) / len(examples)}
    return out


def causal_model(layers: int, tok: Any) -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536,
                                        num_hidden_layers=layers, num_attention_heads=9, num_key_value_heads=3,
                                        max_position_embeddings=2048, tie_word_embeddings=True,
                                        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, help="a default run's folder (its teacher and data); without it, the "
                    "causal model alone")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--n", type=int, default=64, help="examples attributed and predicted")
    ap.add_argument("--layers", type=int, default=10)
    args = ap.parse_args()
    result: dict[str, Any] = {"cpu_bf16": cpu_bf16(), "threads": torch.get_num_threads()}
    if args.run:
        t5, t5_tok = load_trained(args.run / "teacher" / "model")
        builtin = load_split(args.run, TRAIN)
        result["t5"] = {"train_step_ms": train_steps(copy.deepcopy(t5), t5_tok, builtin, ModelConfig(), 32,
                                                     args.steps), **inference(t5, t5_tok, builtin[:args.n], 32)}
    tok = AutoTokenizer.from_pretrained(SHARED / "tokenizers" / "t5")
    esnli = load_dsbs(SHARED / "data" / "dsbs", "esnli", "valid", nli_format="text")
    role = ModelConfig(max_input_length=96, max_target_length=8)
    llama = causal_model(args.layers, tok)
    result["causal"] = {"train_step_ms": train_steps(llama, tok, esnli, role, 16, args.steps),
                        **inference(causal_model(args.layers, tok), tok, esnli[:args.n], 8)}
    for part in ("t5", "causal")[0 if args.run else 1:]:
        ms = result[part]["train_step_ms"]
        result[part]["train_step_ratio"] = ms["float32"] / ms["bfloat16"]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
