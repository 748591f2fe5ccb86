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
  loop   the reference, `attrdistill.attribution.reference.stepwise_saliency` (the one the tests check
         ours against): per example, per gold target token j, one forward (decoder fed the gold prefix
         up to j) and one gradient of that token's logit w.r.t. the input embeddings; the signed
         gradients are averaged over the target tokens, then the L1 norm over embedding dims.
         It is slow, so it runs on --loop-n examples (a seeded sample of the n, default 32) and its
         examples/s is extrapolated from those; the agreement numbers are over those examples too.
  inseq  inseq 0.7.1's "saliency" on the same model object and tokenizer, gold targets forced
         (generated_texts), attributed_fn="logit" (the gold logit, as ours; inseq's default would be
         the probability) and abs=False (signed per-step gradients). Its batch size is the fastest of
         --inseq-batch-sizes on a --inseq-probe-n subset; the timed run gets the n texts in the same
         length order that our batching uses (less padding for inseq too), cut into --inseq-parts
         parts of whole inseq batches; ours runs on each part just before inseq does, and ours/inseq
         is the ratio of these paired times (other jobs' load drifts over minutes; pairing keeps it
         out of the ratio). The public `attrdistill.attribute` (prefix given apart; word scores and
         top-5 as well) runs on each part too: api/inseq, paired the same way. inseq returns per-step,
         per-dimension gradients; averaging them over steps and taking the L1 norm gives our quantity,
         which is checked (inseq top-5 agreement). If inseq cannot be imported or fails, its numbers
         are null and the reason is printed.

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
gradients, no optimizer step), each timed by torch.utils.benchmark (--step-repeats runs, median).

The code: each `measure_*` function times one way and returns a `Timing` (what, examples, wall and
CPU seconds, peak GPU memory) with its scores; `bench_set` pairs them as above and returns one set's
results (the JSON); `report` prints the table and the floors.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils import benchmark

from attrdistill.attribution.gradients import saliency
from attrdistill.attribution.reference import stepwise_saliency
from attrdistill.config import ModelConfig
from attrdistill.data.dsbs import load_dsbs
from attrdistill.modeling.features import collate, encode, length_batches
from attrdistill.modeling.models import DTYPES, load_model

SHARED = Path(__file__).resolve().parents[2] / "shared"   # ../shared from the repository root
DATA = SHARED / "data/dsbs"
TOKENIZER = str(SHARED / "tokenizers/t5")
PREFIX = "predict: "
MAX_INPUT, MAX_TARGET = 512, 128
TOP = 5
FLOORS = {"loop": {"cqa": 20.0, "svamp": 20.0}, "inseq": {"cqa": 5.0, "svamp": 10.0},
          "top5": 0.99, "attr_over_train": 1.2}
SIZES = {"small": dict(d_model=512, d_ff=2048, num_layers=6, num_heads=8),      # t5-small, d_kv 64
         "large": dict(d_model=1024, d_ff=4096, num_layers=24, num_heads=16)}   # t5-large, d_kv 64
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
Scores = list[torch.Tensor]   # one (input length,) tensor of token scores per example


def build_model(tokenizer: Any, seed: int, size: str = "small", dtype: str = "float32") -> torch.nn.Module:
    """A T5 of t5-small's or t5-large's shape, random init, built by the engine's own load_model, on the
    GPU if there is one, its weights in `dtype` (as the engine's load_trained does for attribution)."""
    cfg = ModelConfig(**SIZES[size], dropout=0.1)
    return load_model(cfg, tokenizer, seed=seed).to(DEVICE, DTYPES[dtype]).eval()


# ---------------------------------------------------------------------------------------------- measuring


@dataclass
class Timing:
    """One timed run of one way of attributing `n` examples."""

    what: str
    n: int
    wall_s: float
    cpu_s: float                      # CPU seconds of this process, all threads
    peak_gib: float | None = None     # peak GPU memory, on a GPU

    @property
    def per_s(self) -> float:
        return self.n / self.wall_s


def _timed(what: str, n: int, fn: Callable[[], Any]) -> tuple[Timing, Any]:
    """(its Timing, fn's result); on a GPU synchronised, with its peak memory."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    peak = None
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**30
    return Timing(what, n, time.perf_counter() - t0, time.process_time() - c0, peak), result


def _features(tokenizer: Any, texts: list[str], targets: list[str]) -> list[dict[str, Any]]:
    return encode(tokenizer, texts, targets, MAX_INPUT, MAX_TARGET)


def measure_ours(model: Any, tokenizer: Any, texts: list[str], targets: list[str], batch_size: int,
                 what: str = "ours") -> tuple[Timing, Scores, list[list[int]]]:
    """Ours as the engine batches (tokenising and batching timed too): token scores per example (unpadded) and
    the batches used."""
    def run() -> tuple[Scores, list[list[int]]]:
        feats = _features(tokenizer, texts, targets)
        out: Scores = [torch.empty(0)] * len(texts)
        batches = list(length_batches([len(f["input_ids"]) for f in feats], batch_size))
        for idx in batches:
            batch = {k: v.to(DEVICE) for k, v in collate([feats[i] for i in idx], tokenizer.pad_token_id).items()}
            scores = saliency(model, batch).detach().cpu()
            for row, i in enumerate(idx):
                out[i] = scores[row, :len(feats[i]["input_ids"])].clone()
        return out, batches

    timing, (scores, batches) = _timed(what, len(texts), run)
    return timing, scores, batches


def measure_loop(model: Any, tokenizer: Any, texts: list[str], targets: list[str]) -> tuple[Timing, Scores]:
    """The step-wise reference, example by example."""
    def run() -> Scores:
        return [stepwise_saliency(model, f["input_ids"], f["labels"]) for f in _features(tokenizer, texts, targets)]
    return _timed("loop", len(texts), run)


def measure_inseq(inseq_model: Any, texts: list[str], targets: list[str], batch_size: int) -> tuple[Timing, Scores]:
    """inseq's saliency on the gold targets, rebuilt into our quantity (mean over steps, L1 over dims)."""
    def run() -> Scores:
        out = inseq_model.attribute(input_texts=texts, generated_texts=targets, batch_size=batch_size,
                                    show_progress=False, attributed_fn="logit", abs=False)
        return [s.source_attributions.float().mean(1).abs().sum(-1) for s in out.sequence_attributions]
    return _timed("inseq", len(texts), run)


def measure_api(model: Any, tokenizer: Any, texts: list[str], targets: list[str], batch_size: int) -> Timing:
    """The public `attrdistill.attribute` on the same inputs, the prefix given apart (never scored): tokenising,
    batching, the backward passes, word scores and the top-5 words, what a library user gets."""
    import attrdistill
    inputs = [t.removeprefix(PREFIX) for t in texts]
    return _timed("api", len(texts), lambda: attrdistill.attribute(
        model, tokenizer, inputs, targets, method="saliency", k=TOP, prefix=PREFIX, batch_size=batch_size,
        max_input_length=MAX_INPUT, max_target_length=MAX_TARGET))[0]


def measure_step_ratio(model: Any, batch: dict[str, torch.Tensor], repeats: int) -> dict[str, float]:
    """Median seconds (torch.utils.benchmark) of our saliency and of one training step on `batch`, and their ratio."""
    def train_step() -> None:
        model.train()
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
              labels=batch["labels"]).loss.backward()
        model.zero_grad(set_to_none=True)
        model.eval()

    def median(fn: Callable[[], Any]) -> float:
        # benchmark.Timer synchronises a GPU; it runs on one thread unless told otherwise.
        timer = benchmark.Timer("fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
        timer.timeit(1)   # warm-up
        return statistics.median(timer.timeit(1).median for _ in range(max(repeats, 1)))

    s, t = median(lambda: saliency(model, batch)), median(train_step)
    return {"saliency_s": s, "train_step_s": t, "ratio": s / t}


def load_inseq(model: Any, tokenizer: Any) -> Any:
    """inseq's wrapper around a copy of our model (inseq swaps its embedding layer while it attributes)."""
    import inseq  # only in the bench venv

    return inseq.load_model(copy.deepcopy(model).eval(), "saliency", tokenizer=tokenizer)


def real_positions(tokenizer: Any, text: str) -> list[int]:
    """Token positions of the example's own text: neither the prefix nor </s> (offset (0, 0))."""
    offsets = tokenizer(text, truncation=True, max_length=MAX_INPUT, return_offsets_mapping=True)["offset_mapping"]
    return [i for i, (a, b) in enumerate(offsets) if b > a and a >= len(PREFIX)]


def compare(a: Scores, b: Scores, positions: list[list[int]]) -> dict[str, float]:
    """Top-5 agreement over the real input tokens, and max abs / relative score difference (all tokens)."""
    same, max_abs, max_rel = 0, 0.0, 0.0
    for x, y, pos in zip(a, b, positions):
        if x.shape != y.shape:
            raise ValueError(f"score lengths differ: {tuple(x.shape)} vs {tuple(y.shape)}")
        p = torch.tensor(pos)
        k = min(TOP, len(pos))
        same += set(p[x[p].topk(k).indices].tolist()) == set(p[y[p].topk(k).indices].tolist())
        diff = float((x - y).abs().max())
        max_abs = max(max_abs, diff)
        max_rel = max(max_rel, diff / max(float(y.abs().max()), 1e-30))
    return {"top5_agreement": same / len(a), "max_abs_diff": max_abs, "max_rel_diff": max_rel}


# ---------------------------------------------------------------------------------------------- one set


def bench_set(name: str, model: Any, tokenizer: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement of one data set, paired as the module's doc says; its results (JSON-ready)."""
    examples = load_dsbs(DATA, name, "test")[:args.n]
    texts, targets = [PREFIX + ex.input for ex in examples], [ex.label for ex in examples]
    n = len(texts)
    mean_target = statistics.mean(len(f["labels"]) for f in _features(tokenizer, texts, targets))
    print(f"{name}: {n} test examples, {mean_target:.1f} target tokens each (with </s>); measuring ...", flush=True)
    ours_runs: list[Timing] = []

    def time_ours() -> tuple[Scores, list[list[int]]]:
        """--repeats runs of ours over all n; at the start, after the loop and after inseq."""
        for _ in range(args.repeats):
            timing, scores, batches = measure_ours(model, tokenizer, texts, targets, args.batch_size)
            ours_runs.append(timing)
        return scores, batches

    load_before = os.getloadavg()[0]
    measure_ours(model, tokenizer, texts[:8], targets[:8], args.batch_size)   # warm-up
    ours, batches = time_ours()
    sample = sorted(random.Random(args.seed).sample(range(n), min(args.loop_n, n)))
    s_texts, s_targets = [texts[i] for i in sample], [targets[i] for i in sample]
    loop_t, loop = measure_loop(model, tokenizer, s_texts, s_targets)
    one_t, _, _ = measure_ours(model, tokenizer, s_texts, s_targets, 1, what="ours_batch1")
    time_ours()
    positions = [real_positions(tokenizer, texts[i]) for i in sample]
    check = compare([ours[i] for i in sample], loop, positions)
    mid = batches[len(batches) // 2]   # attribution / train step on the median-length batch
    batch = {k: v.to(DEVICE) for k, v in collate(_features(tokenizer, [texts[i] for i in mid],
                                                           [targets[i] for i in mid]), tokenizer.pad_token_id).items()}
    step = measure_step_ratio(model, batch, args.step_repeats)
    inseq, inseq_error = None, None
    try:
        inseq = _inseq_paired(model, tokenizer, texts, targets, batches, sample, ours, loop, positions, args)
    except Exception as e:   # noqa: BLE001 - report, never crash the benchmark
        traceback.print_exc(limit=3)
        inseq_error = f"{type(e).__name__}: {e}"
    time_ours()

    around_loop = ours_runs[:2 * args.repeats]   # the runs just before and just after the loop
    loop_s_per_ex = loop_t.wall_s / loop_t.n
    speedup = loop_s_per_ex * n / statistics.median(t.wall_s for t in around_loop)
    return {
        "n": n, "mean_target_tokens": mean_target, "device": torch.cuda.get_device_name(0) if DEVICE.type == "cuda"
        else "cpu", "model": {"size": args.size, "dtype": args.dtype}, "batch_size": args.batch_size,
        "load_average_before": load_before, "load_average_after": os.getloadavg()[0], "loop_n": loop_t.n,
        "examples_per_s": {"ours": n / statistics.median(t.wall_s for t in ours_runs), "loop": loop_t.per_s,
                           "ours_batch1": one_t.per_s, "inseq": inseq and inseq["examples_per_s"]},
        "ours_times_s": [t.wall_s for t in ours_runs],
        "peak_memory_gib_ours": ours_runs[0].peak_gib,
        "speedup_vs_loop": speedup,
        "speedup_parts": {"one_backward_per_example": loop_t.wall_s / one_t.wall_s,
                          "batching": speedup * one_t.wall_s / loop_t.wall_s},
        "speedup_vs_inseq": inseq and inseq["paired_inseq_s"] / inseq["paired_ours_s"],
        "api_speedup_vs_inseq": inseq and inseq["paired_inseq_s"] / inseq["paired_api_s"],
        "cpu_s_per_example": {"ours": statistics.median(t.cpu_s for t in ours_runs) / n,
                              "loop": loop_t.cpu_s / loop_t.n, "inseq": inseq and inseq["cpu_s_per_example"]},
        "speedup_vs_loop_cpu_time": loop_t.cpu_s / loop_t.n * n / statistics.median(t.cpu_s for t in around_loop),
        "speedup_vs_inseq_cpu_time": inseq and inseq["paired_inseq_cpu_s"] / inseq["paired_ours_cpu_s"],
        "top5_agreement_vs_loop": check["top5_agreement"], "max_abs_diff_vs_loop": check["max_abs_diff"],
        "max_rel_diff_vs_loop": check["max_rel_diff"],
        "attribution_over_train_step": step["ratio"],
        "train_step": {**step, "batch_shape": list(batch["input_ids"].shape), "target_len": batch["labels"].shape[1]},
        "inseq": inseq, **({"inseq_error": inseq_error} if inseq_error else {}),
    }


def _inseq_paired(model: Any, tokenizer: Any, texts: list[str], targets: list[str], batches: list[list[int]],
                  sample: list[int], ours: Scores, loop: Scores, positions: list[list[int]],
                  args: argparse.Namespace) -> dict[str, Any]:
    """inseq at its fastest probed batch size, in --inseq-parts parts of our length order, each part also run by
    ours just before (both see the same load from other jobs); its agreement with ours and the loop."""
    inseq_model = load_inseq(model, tokenizer)
    probe = min(args.inseq_probe_n, len(texts))
    rates = {bs: measure_inseq(inseq_model, texts[:probe], targets[:probe], bs)[0].per_s
             for bs in args.inseq_batch_sizes}
    best = max(rates, key=rates.get)
    order = [i for b in batches for i in b]
    per_part = -(-len(texts) // (args.inseq_parts * best)) * best
    theirs_by_example: dict[int, torch.Tensor] = {}
    paired: list[tuple[Timing, Timing]] = []
    api: list[Timing] = []
    for start in range(0, len(texts), per_part):
        part = order[start:start + per_part]
        p_texts, p_targets = [texts[i] for i in part], [targets[i] for i in part]
        api.append(measure_api(model, tokenizer, p_texts, p_targets, args.batch_size))
        ours_t = measure_ours(model, tokenizer, p_texts, p_targets, args.batch_size)[0]
        inseq_t, theirs = measure_inseq(inseq_model, p_texts, p_targets, best)
        paired.append((ours_t, inseq_t))
        theirs_by_example.update(zip(part, theirs))
    theirs = [theirs_by_example[i] for i in sample]
    vs_ours = compare(theirs, [ours[i] for i in sample], positions)
    vs_loop = compare(theirs, loop, positions)
    inseq_s = sum(i.wall_s for _, i in paired)
    return {"batch_size": best, "probe_examples_per_s": rates, "probe_n": probe, "parts": len(paired),
            "examples_per_s": len(texts) / inseq_s, "cpu_s_per_example": sum(i.cpu_s for _, i in paired) / len(texts),
            "paired_ours_s": sum(o.wall_s for o, _ in paired), "paired_inseq_s": inseq_s,
            "paired_api_s": sum(a.wall_s for a in api), "api_examples_per_s": len(texts) / sum(a.wall_s for a in api),
            "paired_ours_cpu_s": sum(o.cpu_s for o, _ in paired),
            "paired_inseq_cpu_s": sum(i.cpu_s for _, i in paired),
            "top5_agreement_vs_ours": vs_ours["top5_agreement"], "max_rel_diff_vs_ours": vs_ours["max_rel_diff"],
            "top5_agreement_vs_loop": vs_loop["top5_agreement"], "max_rel_diff_vs_loop": vs_loop["max_rel_diff"]}


# ---------------------------------------------------------------------------------------------- report


def fmt(x: float | None, spec: str, unit: str = "") -> str:
    """format(x, spec) + unit, or "null" right-aligned to the same width."""
    width = int(spec.split(".")[0] or 0) + len(unit)
    return "null".rjust(width) if x is None else format(x, spec) + unit


def report(results: dict[str, dict[str, Any]], header: str) -> str:
    """The table of every set, where the speedups come from, inseq's agreement, and the floors."""
    lines = [header, "",
             f"{'set':<6} {'n':>4} {'tgt tok':>7} {'ours ex/s':>10} {'loop ex/s':>10} {'inseq ex/s':>11} "
             f"{'ours/loop':>10} {'ours/inseq':>11} {'top-5 agr':>10} {'max rel diff':>13} {'attr/train':>11}"]
    for name, r in results.items():
        e, top5 = r["examples_per_s"], r["top5_agreement_vs_loop"]
        lines.append(f"{name:<6} {r['n']:>4} {r['mean_target_tokens']:7.1f} {fmt(e['ours'], '10.2f')} "
                     f"{fmt(e['loop'], '10.2f')} {fmt(e['inseq'], '11.2f')} {fmt(r['speedup_vs_loop'], '9.1f', 'x')} "
                     f"{fmt(r['speedup_vs_inseq'], '10.1f', 'x')} {fmt(100 * top5, '9.1f', '%')} "
                     f"{fmt(r['max_rel_diff_vs_loop'], '13.1e')} {fmt(r['attribution_over_train_step'], '11.2f')}")
    lines.append("")
    for name, r in results.items():
        parts, step, inseq = r["speedup_parts"], r["train_step"], r["inseq"]
        lines.append(f"{name}: ours/loop {r['speedup_vs_loop']:.1f}x = {parts['one_backward_per_example']:.1f}x (one "
                     f"backward per example, not per target token) x {parts['batching']:.1f}x (batches of "
                     f"{r['batch_size']}); loop timed on {r['loop_n']} examples (extrapolated); in CPU time "
                     f"ours/loop {r['speedup_vs_loop_cpu_time']:.1f}x, ours/inseq "
                     f"{fmt(r['speedup_vs_inseq_cpu_time'], '.1f', 'x')}")
        lines.append(f"  attribution / train step {step['saliency_s']:.3f}s / {step['train_step_s']:.3f}s (batch "
                     f"{tuple(step['batch_shape'])}, target length {step['target_len']}); ours timings "
                     + ", ".join(f"{t:.2f}s" for t in r["ours_times_s"])
                     + (f"; peak GPU memory {r['peak_memory_gib_ours']:.2f} GiB" if r["peak_memory_gib_ours"] else "")
                     + f"; load average {r['load_average_before']:.1f} -> {r['load_average_after']:.1f}")
        if inseq:
            lines.append(f"  attrdistill.attribute (the public API: word scores and top-5 too) "
                         f"{inseq['api_examples_per_s']:.2f} ex/s; api/inseq {r['api_speedup_vs_inseq']:.1f}x, "
                         f"paired as ours/inseq")
            lines.append(f"  inseq batch size {inseq['batch_size']} (probed: " + ", ".join(
                f"{bs}: {v:.2f} ex/s" for bs, v in inseq["probe_examples_per_s"].items()) + f"); rebuilt into our "
                f"quantity, top-5 agreement with ours {100 * inseq['top5_agreement_vs_ours']:.1f}% (max rel diff "
                f"{inseq['max_rel_diff_vs_ours']:.1e}), with the loop {100 * inseq['top5_agreement_vs_loop']:.1f}%")
        else:
            lines.append(f"  inseq: not run ({r.get('inseq_error')})")
    lines.append("floors (reported, not asserted):")
    for name, r in results.items():
        checks = [("ours/loop", r["speedup_vs_loop"], FLOORS["loop"][name], ">="),
                  ("ours/inseq", r["speedup_vs_inseq"], FLOORS["inseq"][name], ">="),
                  ("top-5", r["top5_agreement_vs_loop"], FLOORS["top5"], ">="),
                  ("attr/train", r["attribution_over_train_step"], FLOORS["attr_over_train"], "<=")]
        verdicts = [f"{label} {op} {floor:g}: " + ("n/a" if value is None else "met" if
                    (value >= floor if op == ">=" else value <= floor) else "NOT met")
                    for label, value, floor, op in checks]
        lines.append(f"  {name:<6} " + "; ".join(verdicts))
    return "\n".join(lines)


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
    os.environ["TQDM_DISABLE"] = "1"   # attrdistill.attribute's progress bars, inside timed runs
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    model = build_model(tokenizer, args.seed, args.size, args.dtype)
    shape, n_params = SIZES[args.size], sum(p.numel() for p in model.parameters())
    device = torch.cuda.get_device_name(0) if DEVICE.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    header = (f"model: T5 d_model {shape['d_model']}, d_ff {shape['d_ff']}, {shape['num_layers']}+"
              f"{shape['num_layers']} layers, {shape['num_heads']} heads, vocab {model.config.vocab_size}, "
              f"{n_params / 1e6:.1f}M parameters, {args.dtype}, random init (seed {args.seed}); torch "
              f"{torch.__version__}, {device}")
    t0 = time.perf_counter()
    results = {name: bench_set(name, model, tokenizer, args) for name in args.sets}
    print(report(results, header) + f"\nwall time: {time.perf_counter() - t0:.0f}s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
