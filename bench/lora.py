"""Benchmark: a LoRA teacher's train step against a full fine-tune's, peak memory and time, in one run.

    python bench/lora.py [--gguf models/SmolLM2-135M-Instruct.Q4_1.gguf] [--steps 5] [--rank 8] [--batch 16]

The model: SmolLM2-135M-Instruct from its GGUF file (all 30 blocks, the largest teacher these 2 cores train in
reasonable time), as a run's teacher loads it; the batch: the first --batch e-SNLI validation prompts of the
DSbS release in ../shared (nli_format text) with their labels. Each mode runs in a fresh process, so its peak
memory is its own: the process's peak resident set (ru_maxrss) after loading the model, and after the train
steps (forward, the run's trainer's loss, backward, AdamW); the time is the median of --steps steps after
one warm-up step. LoRA: teacher.lora with --rank, alpha 16, peft's default targets for Llama (q_proj, v_proj).
Prints one JSON object: both modes and the ratios full / LoRA (above 1: LoRA needs less).
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
from typing import Any

SHARED = Path(__file__).resolve().parents[2] / "shared"


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # KiB on Linux


def worker(mode: str, gguf: str, steps: int, rank: int, batch: int) -> dict[str, Any]:
    import torch
    from transformers import Seq2SeqTrainingArguments

    from attrdistill.config import LoraConfig, ModelConfig
    from attrdistill.data.dsbs import load_dsbs
    from attrdistill.distill.trainer import TwoTaskTrainer, collate_train, features
    from attrdistill.modeling.lora import with_adapters
    from attrdistill.modeling.models import load_model, load_tokenizer
    role = ModelConfig(gguf_file=gguf, max_input_length=96, max_target_length=8)
    tok = load_tokenizer(role, None)
    model = load_model(role, tok)
    loaded = _peak_mib()
    if mode == "lora":
        model = with_adapters(model, LoraConfig(rank=rank))
    examples = load_dsbs(SHARED / "data" / "dsbs", "esnli", "valid", nli_format="text")[:batch]
    rows = [{"source": "predict: " + ex.input, "target": ex.label} for ex in examples]
    b = collate_train(features(tok, rows, role, True), tok.pad_token_id)
    trainer = TwoTaskTrainer(model=model, args=Seq2SeqTrainingArguments("/tmp/lora-bench", report_to=[]))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    model.train()
    times = []
    for step in range(steps + 1):
        t0 = time.perf_counter()
        trainer.compute_loss(model, dict(b)).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step:
            times.append(time.perf_counter() - t0)
    return {"mode": mode, "step_s": statistics.median(times), "steps_s": times, "peak_mib_loaded": loaded,
            "peak_mib": _peak_mib(), "threads": torch.get_num_threads(),
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "parameters": sum(p.numel() for p in model.parameters()), "batch_shape": list(b["input_ids"].shape)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--worker", choices=["full", "lora"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.gguf, args.steps, args.rank, args.batch)))
        return
    result: dict[str, Any] = {}
    for mode in ("full", "lora"):   # each alone in a fresh process: its own peak memory
        out = subprocess.run([sys.executable, __file__, "--worker", mode, "--gguf", args.gguf, "--steps",
                              str(args.steps), "--rank", str(args.rank), "--batch", str(args.batch)],
                             check=True, capture_output=True, text=True).stdout
        result[mode] = json.loads(out.strip().splitlines()[-1])
    full, lora = result["full"], result["lora"]
    result["ratios_full_over_lora"] = {
        "step_time": full["step_s"] / lora["step_s"], "peak_memory": full["peak_mib"] / lora["peak_mib"],
        "training_memory": (full["peak_mib"] - full["peak_mib_loaded"]) / (lora["peak_mib"] - lora["peak_mib_loaded"])}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
