"""The compute dtype a model runs in: the configured one, or for `dtype: auto` bf16 where the device has it.

    compute_dtype("auto")        # "bfloat16" on a CUDA GPU with bf16 or a CPU with AVX512-BF16 / AMX, else "float32"
    trainer_precision("auto")    # {"bf16": True, "fp16": False}: the Trainer's mixed precision for it
    scoring_dtype("auto")        # "float32": attribution, faithfulness and kd logits (see its doc)
    described("auto")            # "bfloat16 (auto: the CPU has native bf16: avx512_bf16)" for environment.json

bf16 trains with mixed precision, on a GPU and on a CPU alike: float32 master weights and optimizer state,
the forward and backward under autocast (the Trainer's `bf16`). Evaluation (greedy predictions) loads the
saved model in the compute dtype; attribution, faithfulness and kd's teacher logits in `scoring_dtype`,
which is float32 under `auto` (measured: bf16 changes too many top-k words); attribution accumulates its
scores in float32 whatever the model's dtype. float16 stays a
GPU dtype (a CPU has no fast float16 path). `auto` is resolved on the machine that runs a unit and recorded
in environment.json and the report; like a thread count it is not part of a unit's fingerprint.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")   # /proc/cpuinfo flags of native bf16 matrix / vector units


@lru_cache(maxsize=1)
def cpu_bf16() -> str | None:
    """The native bf16 flag this CPU lists (Linux /proc/cpuinfo), or None."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    return next((f for f in CPU_BF16_FLAGS if f in flags), None)


def _cuda() -> tuple[bool, bool]:
    """(a CUDA GPU is there, it has bf16)."""
    import torch
    if not torch.cuda.is_available():
        return False, False
    return True, torch.cuda.is_bf16_supported()


def native_bf16() -> tuple[bool, str]:
    """(whether this process's device computes bf16 natively, why)."""
    gpu, gpu_bf16 = _cuda()
    if gpu:
        return gpu_bf16, "the GPU has bf16" if gpu_bf16 else "the GPU lacks bf16"
    flag = cpu_bf16()
    return flag is not None, f"the CPU has native bf16: {flag}" if flag else "the CPU lacks native bf16"


def compute_dtype(name: str) -> str:
    """The dtype a configured `dtype` runs in here: `auto` resolved, the others as they are."""
    if name != "auto":
        return name
    return "bfloat16" if native_bf16()[0] else "float32"


def scoring_dtype(name: str) -> str:
    """The dtype a model is loaded in to score, not to decide: attribution, faithfulness and kd's teacher logits.
    `auto` keeps float32 here: with bf16 weights the top-5 words of saliency agreed with float32's on 83% of the
    built-in teacher's examples and occlusion's on 20% (bench/bf16.py, docs/results.md), far from the 99% a
    rationale needs. An explicit bfloat16 is taken as asked."""
    return "float32" if name == "auto" else name


def described(name: str) -> str:
    """What `name` resolves to here and, for auto, why."""
    return compute_dtype(name) + (f" (auto: {native_bf16()[1]})" if name == "auto" else "")


def trainer_precision(name: str) -> dict[str, bool]:
    """The Trainer's mixed-precision switches for a configured dtype: bf16 on any device, fp16 on a GPU only."""
    resolved = compute_dtype(name)
    return {"bf16": resolved == "bfloat16", "fp16": resolved == "float16" and _cuda()[0]}
