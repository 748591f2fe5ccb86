"""Benchmark: speed of our batched gradient saliency against a step-wise loop and inseq.

    .venv-bench/bin/python bench/attribution.py [--sets cqa svamp] [--n 256] [--loop-n 32]
        [--batch-size 32] [--threads N] [--size small|large] [--dtype float32|bfloat16|float16]
        [--seed 0] [--json runs/bench_attr.json]

Model: a T5 the size of t5-small (d_model 512, d_ff 2048, 6+6 layers, 8 heads, d_kv 64, the real T5
tokenizer's vocabulary, ~60M parameters) built from config with random init, seeded (--seed); with
--size large, t5-large's shape (d_model 1024, d_ff 4096, 24+24 layers, 16 heads, ~738M). Data:
the first --n test examples of each DSbS set (SVAMP's test split has only 200), input "predict: " +
question, the gold label as target, on the GPU if there is one (then the JSON also gives the device
and the peak memory of ours), else the CPU. On a GPU, e.g.:
    python bench/attribution.py --size large --dtype bfloat16 --batch-size 64 --json runs/bench_attr_gpu.json
Three ways of computing the same token scores:

  ours   attrdistill.attribution.gradients.saliency, batched exactly as the engine batches
         (features.encode -> length_batches -> collate, --batch-size examples per backward, default 32:
         on 2 cores it beat the engine's default attribution.batch_size of 64 by ~15%); the time
         covers tokenising, batching and the backward passes. Since other jobs may share the CPU, it
         is timed --repeats times at each of three points of a set's run (start, after the loop,
         after inseq); its examples/s is the median of all, ours/loop uses the median of the runs
         just before and after the loop.
  loop   the reference, written here: per example, per gold target token j, one forward (decoder fed
         the gold prefix up to j) and one backward of that token's logit w.r.t. the input embeddings;
         the signed gradients are averaged over the target tokens, then the L1 norm over embedding dims.
         It is slow, so it runs on --loop-n examples (a seeded sample of the n, default 32) and its
         examples/s is extrapolated from those; the agreement numbers are over those examples too.
  inseq  inseq 0.7.1's "saliency" on the same model object and tokenizer, gold targets forced
         (generated_texts), attributed_fn="logit" (the gold logit, as ours; inseq's default would be
         the probability) and abs=False (signed per-step gradients). Its batch size is the fastest of
         --inseq-batch-sizes on a --inseq-probe-n subset; the timed run gets the n texts in the same
         length order that our batching uses (less padding for inseq too), cut into --inseq-parts
         parts of whole inseq batches; ours runs on each part just before inseq does, and ours/inseq
         is the ratio of these paired times (other jobs' load drifts over minutes; pairing keeps it
         out of the ratio). inseq returns per-step, per-dimension gradients; averaging them over steps
         and taking the L1 norm gives our quantity, which is checked (inseq top-5 agreement). If
         inseq cannot be imported or fails, its numbers are null and the reason is printed.

What to expect: the loop costs one batch-1 forward+backward per target token, inseq one batched
forward+backward per target token (it drops finished targets from its batch), ours one batched
forward+backward per example. So ours/inseq is at least about the mean target length (printed per
set: ~2.9 tokens for CQA, ~11 for SVAMP; more where inseq's per-step overhead and single-threaded
Python show) and ours/loop that times the gain of batching on this CPU (~2.5-3x).
The run splits ours/loop into these two factors (speedup_parts in the JSON): ours at batch size 1
against the loop, on the loop's examples (one backward instead of one per target token), and the
rest (batching). On a 2-core CPU a batch-1 pass of a 60M model is already compute-bound, so
batching gains little there; on a GPU it is most of the gain.

Scores of ours and the loop can differ by up to ~1e-3 relative on padded batches (top-5 unaffected):
in our checks that was torch's fused CPU attention (sdpa, the model's default) in float32; with
attn_implementation="eager" or in float64, batched and per-example scores agree to ~1e-7. inseq's
batched scores differ from the loop's by the same order.

Also: top-5 agreement (share of examples whose 5 best-scored input tokens, "predict:" prefix and
</s> excluded, are the same set in ours and the loop), the max absolute and relative difference of
the scores (relative = |ours - loop| / max |loop| of that example), the speedups also in CPU time of
this process (time.process_time, all threads: less skewed by other jobs than wall time, but blind
to how well a method uses the cores: ours keeps both busy, inseq ~1.3 of 2), and
attribution/train-step: the time of our saliency on one batch (the median-length batch) over one
training step on that batch (model.train(), forward with labels, loss.backward() with parameter
gradients, no optimizer step), medians of --step-repeats after a warm-up.

Floors (reported, not asserted): ours >= 20x loop on both sets, >= 5x inseq on CQA and >= 10x on
SVAMP, top-5 agreement >= 99%, attribution/train-step <= 1.2.
inseq is not a project dependency: run this from a separate venv, e.g.
    python3 -m venv .venv-bench && .venv-bench/bin/pip install torch==2.13.0 -e . inseq==0.7.1
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import statistics
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from attrdistill.attribution.gradients import saliency
from attrdistill.config import ModelConfig
from attrdistill.data.dsbs import load_dsbs
from attrdistill.features import collate, encode, length_batches
from attrdistill.models import DTYPES, load_model

SHARED = Path(__file__).resolve().parents[2] / "shared"   # ../shared from the repository root
DATA = SHARED / "data/dsbs"
TOKENIZER = str(SHARED / "tokenizers/t5")
PREFIX = "predict: "
MAX_INPUT, MAX_TARGET = 512, 128
TOP = 5
FLOORS = {"loop": {"cqa": 20.0, "svamp": 20.0}, "inseq": {"cqa": 5.0, "svamp": 10.0},
          "top5": 0.99, "attr_over_train": 1.2}


# ---------------------------------------------------------------------------------------------- model


SIZES = {"small": dict(d_model=512, d_ff=2048, num_layers=6, num_heads=8),      # t5-small, d_kv 64
         "large": dict(d_model=1024, d_ff=4096, num_layers=24, num_heads=16)}   # t5-large, d_kv 64
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_model(tokenizer: Any, seed: int, size: str = "small", dtype: str = "float32") -> torch.nn.Module:
    """A T5 of t5-small's or t5-large's shape, random init, built by the engine's own load_model, on the
    GPU if there is one, its weights in `dtype` (as the engine's load_trained does for attribution)."""
    cfg = ModelConfig(**SIZES[size], dropout=0.1)
    return load_model(cfg, tokenizer, seed=seed).to(DEVICE, DTYPES[dtype]).eval()


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------------- ours


def run_ours(model: Any, tokenizer: Any, texts: list[str], targets: list[str],
             batch_size: int) -> tuple[list[torch.Tensor], list[list[int]]]:
    """Token scores per example (unpadded) and the batches used, as attrdistill.attribution batches."""
    feats = encode(tokenizer, texts, targets, MAX_INPUT, MAX_TARGET, offsets=True)
    out: list[torch.Tensor] = [torch.empty(0)] * len(texts)
    batches = list(length_batches([len(f["input_ids"]) for f in feats], batch_size))
    for idx in batches:
        batch = {k: v.to(DEVICE) for k, v in collate([feats[i] for i in idx], tokenizer.pad_token_id).items()}
        scores = saliency(model, batch).detach().cpu()
        for row, i in enumerate(idx):
            out[i] = scores[row, :len(feats[i]["input_ids"])].clone()
    return out, batches


# ---------------------------------------------------------------------------------------------- loop


def loop_saliency(model: Any, input_ids: list[int], labels: list[int]) -> torch.Tensor:
    """The reference: one forward+backward per gold target token, signed gradients averaged, L1 norm."""
    ids = torch.tensor([input_ids], device=DEVICE)
    mask = torch.ones_like(ids)
    start = model.config.decoder_start_token_id
    embed = model.get_input_embeddings()
    total = torch.zeros(len(input_ids), model.config.d_model, device=DEVICE)
    for j, gold in enumerate(labels):
        embeds = embed(ids).detach().requires_grad_(True)
        decoder_input_ids = torch.tensor([[start] + labels[:j]], device=DEVICE)
        logits = model(inputs_embeds=embeds, attention_mask=mask, decoder_input_ids=decoder_input_ids).logits
        logits[0, -1, gold].backward()
        total += embeds.grad[0].float()
    return (total / len(labels)).abs().sum(-1).cpu()


def run_loop(model: Any, tokenizer: Any, texts: list[str], targets: list[str]) -> list[torch.Tensor]:
    flags = [p.requires_grad for p in model.parameters()]
    model.eval().requires_grad_(False)
    try:
        out = []
        for text, target in zip(texts, targets):
            f = encode(tokenizer, [text], [target], MAX_INPUT, MAX_TARGET)[0]
            out.append(loop_saliency(model, f["input_ids"], f["labels"]))
        return out
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)


# ---------------------------------------------------------------------------------------------- inseq


def load_inseq(model: Any, tokenizer: Any) -> Any:
    """inseq's wrapper around a copy of our model (inseq swaps its embedding layer while it attributes)."""
    import inseq  # only in the bench venv

    return inseq.load_model(copy.deepcopy(model).eval(), "saliency", tokenizer=tokenizer)


def run_inseq(inseq_model: Any, texts: list[str], targets: list[str], batch_size: int) -> Any:
    return inseq_model.attribute(input_texts=texts, generated_texts=targets, batch_size=batch_size,
                                 show_progress=False, attributed_fn="logit", abs=False)


def inseq_scores(output: Any) -> list[torch.Tensor]:
    """Our quantity from inseq's granular output (source_len, steps, d_model): mean over steps, L1 over dims."""
    return [s.source_attributions.float().mean(1).abs().sum(-1) for s in output.sequence_attributions]


# ---------------------------------------------------------------------------------------------- checks


def real_positions(tokenizer: Any, text: str) -> list[int]:
    """Token positions of the example's own text: neither the prefix nor </s> (offset (0, 0))."""
    offsets = tokenizer(text, truncation=True, max_length=MAX_INPUT, return_offsets_mapping=True)["offset_mapping"]
    return [i for i, (a, b) in enumerate(offsets) if b > a and a >= len(PREFIX)]


def compare(a: list[torch.Tensor], b: list[torch.Tensor], positions: list[list[int]]) -> dict[str, float]:
    """Top-5 agreement over the real input tokens, and max abs / relative score difference (all tokens)."""
    same, max_abs, max_rel = 0, 0.0, 0.0
    for x, y, pos in zip(a, b, positions):
        if x.shape != y.shape:
            raise ValueError(f"score lengths differ: {tuple(x.shape)} vs {tuple(y.shape)}")
        k = min(TOP, len(pos))
        p = torch.tensor(pos)
        top_x = set(p[x[p].topk(k).indices].tolist())
        top_y = set(p[y[p].topk(k).indices].tolist())
        same += top_x == top_y
        diff = float((x - y).abs().max())
        max_abs = max(max_abs, diff)
        max_rel = max(max_rel, diff / max(float(y.abs().max()), 1e-30))
    return {"top5_agreement": same / len(a), "max_abs_diff": max_abs, "max_rel_diff": max_rel}


def timed(fn: Any, *args: Any) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, all threads, result) of fn(*args)."""
    _sync()
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn(*args)
    _sync()
    return time.perf_counter() - t0, time.process_time() - c0, result


def attribution_over_train_step(model: Any, batch: dict[str, torch.Tensor], repeats: int) -> dict[str, float]:
    """Median seconds of saliency and of one training step on `batch`, alternating, after one warm-up each."""
    def train_step() -> None:
        model.train()
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
              labels=batch["labels"]).loss.backward()

    sal, train = [], []
    for r in range(repeats + 1):
        t_sal, _, _ = timed(saliency, model, batch)
        t_train, _, _ = timed(train_step)
        model.zero_grad(set_to_none=True)
        model.eval()
        if r:   # the first round is the warm-up
            sal.append(t_sal)
            train.append(t_train)
    s, t = statistics.median(sal), statistics.median(train)
    return {"saliency_s": s, "train_step_s": t, "ratio": s / t}


# ---------------------------------------------------------------------------------------------- one set


def bench_set(name: str, model: Any, tokenizer: Any, args: argparse.Namespace) -> dict[str, Any]:
    examples = load_dsbs(DATA, name, "test")[:args.n]
    texts = [PREFIX + ex.input for ex in examples]
    targets = [ex.label for ex in examples]
    n = len(texts)
    m = statistics.mean(len(f["labels"]) for f in encode(tokenizer, texts, targets, MAX_INPUT, MAX_TARGET))
    print(f"\n== {name}: {n} test examples" + (f" (all the split has; asked for {args.n})" if n < args.n else "")
          + f", {m:.1f} target tokens per example (with </s>), load average {os.getloadavg()[0]:.1f}")
    res: dict[str, Any] = {"n": n, "mean_target_tokens": m, "load_average_before": os.getloadavg()[0],
                           "examples_per_s": {"ours": None, "loop": None, "inseq": None}, "speedup_vs_loop": None,
                           "speedup_vs_inseq": None, "top5_agreement_vs_loop": None,
                           "attribution_over_train_step": None}
    ours_times: list[float] = []
    ours_cpu: list[float] = []

    def time_ours() -> tuple[list[torch.Tensor], list[list[int]]]:
        """--repeats timed runs of ours over all n; called at the start, after the loop and after inseq."""
        for _ in range(args.repeats):
            t, c, result = timed(run_ours, model, tokenizer, texts, targets, args.batch_size)
            ours_times.append(t)
            ours_cpu.append(c)
        return result

    run_ours(model, tokenizer, texts[:8], targets[:8], args.batch_size)   # warm-up
    if DEVICE.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    ours, batches = time_ours()
    res["device"] = torch.cuda.get_device_name(0) if DEVICE.type == "cuda" else "cpu"
    res["model"] = {"size": args.size, "dtype": args.dtype}
    if DEVICE.type == "cuda":
        res["peak_memory_gib_ours"] = torch.cuda.max_memory_allocated() / 2**30
        print(f"peak GPU memory of ours: {res['peak_memory_gib_ours']:.2f} GiB")
    print(f"ours:  {n / ours_times[0]:8.2f} ex/s  (first timing: {ours_times[0]:.2f}s, batch size "
          f"{args.batch_size}, {len(batches)} batches)")

    # the reference loop on a seeded sample
    sample = sorted(random.Random(args.seed).sample(range(n), min(args.loop_n, n)))
    t_loop, c_loop, loop = timed(run_loop, model, tokenizer, [texts[i] for i in sample], [targets[i] for i in sample])
    res["loop_n"] = len(sample)
    res["examples_per_s"]["loop"] = len(sample) / t_loop
    res["cpu_s_per_example"] = {"ours": None, "loop": c_loop / len(sample), "inseq": None}
    positions = [real_positions(tokenizer, texts[i]) for i in sample]
    check = compare([ours[i] for i in sample], loop, positions)
    res["top5_agreement_vs_loop"] = check["top5_agreement"]
    res["max_abs_diff_vs_loop"] = check["max_abs_diff"]
    res["max_rel_diff_vs_loop"] = check["max_rel_diff"]
    print(f"loop:  {len(sample) / t_loop:8.2f} ex/s  ({t_loop:.2f}s for {len(sample)} examples, extrapolated)")
    print(f"ours vs loop: top-5 agreement {100 * check['top5_agreement']:.1f}%, max |diff| "
          f"{check['max_abs_diff']:.2e}, max relative diff {check['max_rel_diff']:.2e}")
    # Where the speedup comes from: ours one example at a time (one backward instead of one per target
    # token), then batching on top of that.
    t_one, _, _ = timed(run_ours, model, tokenizer, [texts[i] for i in sample], [targets[i] for i in sample], 1)
    res["examples_per_s"]["ours_batch1"] = len(sample) / t_one
    print(f"ours at batch size 1: {len(sample) / t_one:8.2f} ex/s on the loop's examples: "
          f"{t_loop / t_one:.1f}x the loop from one backward per example instead of one per target token")
    time_ours()

    # attribution / train step on the median-length batch
    mid = batches[len(batches) // 2]
    feats = encode(tokenizer, [texts[i] for i in mid], [targets[i] for i in mid], MAX_INPUT, MAX_TARGET)
    batch = {k: v.to(DEVICE) for k, v in collate(feats, tokenizer.pad_token_id).items()}
    step = attribution_over_train_step(model, batch, args.step_repeats)
    res["attribution_over_train_step"] = step["ratio"]
    res["train_step"] = {**step, "batch_shape": list(batch["input_ids"].shape),
                         "target_len": batch["labels"].shape[1]}
    print(f"attribution / train step: {step['saliency_s']:.3f}s / {step['train_step_s']:.3f}s = {step['ratio']:.2f} "
          f"(batch {tuple(batch['input_ids'].shape)}, target length {batch['labels'].shape[1]})")

    # inseq
    res["inseq"] = None
    t_inseq = c_inseq = t_paired = c_paired = None
    try:
        inseq_model = load_inseq(model, tokenizer)
        probe = list(range(min(args.inseq_probe_n, n)))
        probe_rates = {}
        for bs in args.inseq_batch_sizes:
            t, _, _ = timed(run_inseq, inseq_model, [texts[i] for i in probe], [targets[i] for i in probe], bs)
            probe_rates[bs] = len(probe) / t
            print(f"inseq probe: batch size {bs:3d}: {probe_rates[bs]:.2f} ex/s on {len(probe)} examples")
        best = max(probe_rates, key=probe_rates.get)
        # Paired timing: our length order in --inseq-parts parts (whole inseq batches), each part
        # attributed by ours and then by inseq, so that both see the same load from other jobs.
        order = [i for b in batches for i in b]
        per_part = -(-n // (args.inseq_parts * best)) * best
        t_inseq = c_inseq = t_paired = c_paired = 0.0
        by_example = {}
        for start in range(0, n, per_part):
            part = order[start:start + per_part]
            part_texts, part_targets = [texts[i] for i in part], [targets[i] for i in part]
            t, c, _ = timed(run_ours, model, tokenizer, part_texts, part_targets, args.batch_size)
            t_paired, c_paired = t_paired + t, c_paired + c
            t, c, out = timed(run_inseq, inseq_model, part_texts, part_targets, best)
            t_inseq, c_inseq = t_inseq + t, c_inseq + c
            by_example.update(zip(part, inseq_scores(out)))
        res["examples_per_s"]["inseq"] = n / t_inseq
        res["cpu_s_per_example"]["inseq"] = c_inseq / n
        theirs = [by_example[i] for i in sample]
        agree = compare(theirs, [ours[i] for i in sample], positions)
        vs_loop = compare(theirs, loop, positions)
        res["inseq"] = {"batch_size": best, "probe_examples_per_s": probe_rates, "probe_n": len(probe),
                        "paired_ours_s": t_paired, "paired_inseq_s": t_inseq, "parts": -(-n // per_part),
                        "top5_agreement_vs_ours": agree["top5_agreement"],
                        "max_rel_diff_vs_ours": agree["max_rel_diff"],
                        "top5_agreement_vs_loop": vs_loop["top5_agreement"],
                        "max_rel_diff_vs_loop": vs_loop["max_rel_diff"]}
        print(f"inseq: {n / t_inseq:8.2f} ex/s  ({t_inseq:.2f}s, batch size {best}; in {-(-n // per_part)} parts, "
              f"each also run by ours just before: {t_paired:.2f}s for ours -> ours/inseq "
              f"{t_inseq / t_paired:.1f}x)")
        print(f"inseq's per-step gradients rebuilt into our quantity: top-5 agreement with ours "
              f"{100 * agree['top5_agreement']:.1f}% (max relative diff {agree['max_rel_diff']:.2e}), with the loop "
              f"{100 * vs_loop['top5_agreement']:.1f}% ({vs_loop['max_rel_diff']:.2e})")
    except Exception as e:   # noqa: BLE001 - report, never crash the benchmark
        print(f"inseq: not run ({type(e).__name__}: {e})")
        traceback.print_exc(limit=3)
        res["inseq_error"] = f"{type(e).__name__}: {e}"
    time_ours()

    t_ours = statistics.median(ours_times)
    res["batch_size"] = args.batch_size
    res["ours_times_s"] = ours_times
    res["examples_per_s"]["ours"] = n / t_ours
    around_loop = slice(0, 2 * args.repeats)   # the runs just before and just after the loop
    res["speedup_vs_loop"] = t_loop / len(sample) * n / statistics.median(ours_times[around_loop])
    res["cpu_s_per_example"]["ours"] = statistics.median(ours_cpu) / n
    res["speedup_parts"] = {"one_backward_per_example": t_loop / t_one,
                            "batching": res["speedup_vs_loop"] * t_one / t_loop}
    print(f"ours/loop {res['speedup_vs_loop']:.1f}x = {t_loop / t_one:.1f}x (one backward per example) x "
          f"{res['speedup_parts']['batching']:.1f}x (batches of {args.batch_size} on this machine)")
    res["speedup_vs_loop_cpu_time"] = c_loop / len(sample) * n / statistics.median(ours_cpu[around_loop])
    res["speedup_vs_inseq_cpu_time"] = None
    if t_inseq is not None:   # from the paired runs (see above)
        res["speedup_vs_inseq"] = t_inseq / t_paired
        res["speedup_vs_inseq_cpu_time"] = c_inseq / c_paired
    print(f"ours:  {n / t_ours:8.2f} ex/s  (median of {len(ours_times)} timings spread over this set's run: "
          + ", ".join(f"{t:.2f}s" for t in ours_times) + ")")
    cpu = res["cpu_s_per_example"]
    print(f"CPU seconds per example: ours {cpu['ours']:.3f}, loop {cpu['loop']:.3f}, "
          f"inseq {fmt(cpu['inseq'], '.3f')} -> ours/loop {res['speedup_vs_loop_cpu_time']:.1f}x, "
          f"ours/inseq {fmt(res['speedup_vs_inseq_cpu_time'], '.1f', 'x')}")
    res["load_average_after"] = os.getloadavg()[0]
    print(f"load average after {name}: {res['load_average_after']:.1f} (other jobs on this machine skew timings)")
    return res


# ---------------------------------------------------------------------------------------------- main


def fmt(x: float | None, spec: str, unit: str = "") -> str:
    """format(x, spec) + unit, or "null" right-aligned to the same width."""
    width = int(spec.split(".")[0] or 0) + len(unit)
    return "null".rjust(width) if x is None else format(x, spec) + unit


def floor_line(name: str, r: dict[str, Any]) -> str:
    checks = [("ours/loop", r["speedup_vs_loop"], FLOORS["loop"][name], ">="),
              ("ours/inseq", r["speedup_vs_inseq"], FLOORS["inseq"][name], ">="),
              ("top-5", r["top5_agreement_vs_loop"], FLOORS["top5"], ">="),
              ("attr/train", r["attribution_over_train_step"], FLOORS["attr_over_train"], "<=")]
    parts = []
    for label, value, floor, op in checks:
        ok = None if value is None else (value >= floor if op == ">=" else value <= floor)
        parts.append(f"{label} {op} {floor:g}: " + {None: "n/a", True: "met", False: "NOT met"}[ok])
    return f"{name:<6} " + "; ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=["cqa", "svamp"], choices=["cqa", "svamp"])
    ap.add_argument("--n", type=int, default=256, help="examples per set (the first n of its test split)")
    ap.add_argument("--loop-n", type=int, default=32, help="examples the slow loop runs on (extrapolated)")
    ap.add_argument("--batch-size", type=int, default=32,
                    help="our attribution batch size (the engine's default is 64; 32 was ~15%% faster on 2 cores)")
    ap.add_argument("--inseq-batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--inseq-probe-n", type=int, default=32, help="examples for choosing inseq's batch size")
    ap.add_argument("--inseq-parts", type=int, default=4,
                    help="the timed inseq run is cut into this many parts, each paired with a run of ours")
    ap.add_argument("--repeats", type=int, default=2,
                    help="timed runs of ours at each of 3 points of a set's run (median of all)")
    ap.add_argument("--step-repeats", type=int, default=5, help="timed repeats for attribution/train-step")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--size", choices=sorted(SIZES), default="small",
                    help="the model's shape: t5-small (60M) or t5-large (738M, for a GPU)")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="float32",
                    help="the model's weights (bfloat16 on a GPU: the engine's mixed-precision attribution; "
                         "scores still accumulate in float32)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    model = build_model(tokenizer, args.seed, args.size, args.dtype)
    n_params = sum(p.numel() for p in model.parameters())
    shape = SIZES[args.size]
    device = torch.cuda.get_device_name(0) if DEVICE.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"model: T5 d_model {shape['d_model']}, d_ff {shape['d_ff']}, {shape['num_layers']}+{shape['num_layers']} "
          f"layers, {shape['num_heads']} heads, vocab {model.config.vocab_size}, {n_params / 1e6:.1f}M parameters, "
          f"{args.dtype}, random init (seed {args.seed}); torch {torch.__version__}, {device}")
    t0 = time.perf_counter()
    results = {name: bench_set(name, model, tokenizer, args) for name in args.sets}

    print(f"\n{'set':<6} {'n':>4} {'ours ex/s':>10} {'loop ex/s':>10} {'inseq ex/s':>11} {'ours/loop':>10} "
          f"{'ours/inseq':>11} {'top-5 agr':>10} {'max rel diff':>13} {'attr/train':>11}")
    for name, r in results.items():
        e = r["examples_per_s"]
        print(f"{name:<6} {r['n']:>4} {fmt(e['ours'], '10.2f')} {fmt(e['loop'], '10.2f')} {fmt(e['inseq'], '11.2f')} "
              f"{fmt(r['speedup_vs_loop'], '9.1f', 'x')} {fmt(r['speedup_vs_inseq'], '10.1f', 'x')} "
              f"{fmt(r['top5_agreement_vs_loop'] and 100 * r['top5_agreement_vs_loop'], '9.1f', '%')} "
              f"{fmt(r['max_rel_diff_vs_loop'], '13.1e')} {fmt(r['attribution_over_train_step'], '11.2f')}")
    loop_ns = ", ".join(f"{k} {r['loop_n']}" for k, r in results.items())
    inseq_bs = ", ".join(f"{k} {(r['inseq'] or {}).get('batch_size')}" for k, r in results.items())
    print(f"loop timed on {loop_ns} examples (extrapolated to ex/s); inseq batch size {inseq_bs}")
    print("the same ratios in CPU time of this process (less skewed by other jobs, blind to core use): "
          + "; ".join(f"{k} ours/loop {fmt(r['speedup_vs_loop_cpu_time'], '.1f', 'x')}, "
                      f"ours/inseq {fmt(r['speedup_vs_inseq_cpu_time'], '.1f', 'x')}" for k, r in results.items()))
    print("floors (reported, not asserted):")
    for name, r in results.items():
        print("  " + floor_line(name, r))
    print(f"wall time: {time.perf_counter() - t0:.0f}s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
