"""Student training in two CPU processes (DDP over gloo) equals one process with the same global batch.

The launcher is `accelerate launch --multi_gpu --num_processes 2`: without GPUs it starts two
processes through torch.distributed.run, and `trainer.train` puts them on the CPU, where they
join one gloo group. (`accelerate launch --cpu --num_processes 2` starts a single process: accelerate
runs several CPU processes only through mpirun.)

Two processes with half the per-device batch see the same examples per optimizer step as one
process with the whole batch, and DDP averages their gradients; every target here has the same
number of tokens, so the mean of the two halves' per-token losses is the whole batch's. The logged
training losses -- the first from the initial weights, the later ones after synchronised updates --
must therefore match. Run as a module, this file is the training script both sides run:

    python -m tests.test_multiprocess_training OUT PER_DEVICE_BATCH
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from attrdistill.config import ModelConfig, TrainConfig
from attrdistill.data.synthetic import generate
from attrdistill.modeling.models import build_word_tokenizer, load_model
from attrdistill.modeling.words import words
from attrdistill.pipeline.distributed import is_main

GLOBAL_BATCH = 8
ARCHITECTURES = ("t5", "llama")


def _rows(examples) -> list[dict[str, str]]:
    """Two-task rows whose targets all have the same token count: a 2-word label, a 3-word rationale."""
    return [{"source": "predict: " + ex.input, "target": ex.label, "explain_source": "explain: " + ex.input,
             "rationale": ", ".join([w for w in words(ex.input) if w.isalnum()][:3])} for ex in examples]


def train_tiny(out: Path, per_device_batch: int) -> dict[str, list[float]]:
    """Train a tiny T5 and a tiny Llama student for 4 steps; {architecture: logged training losses}."""
    from attrdistill.distill.trainer import train
    train_ex, valid_ex = generate(48, seed=5), generate(4, seed=6)
    tok = build_word_tokenizer([t for ex in train_ex + valid_ex for t in (ex.input, ex.label)]
                               + ["predict: explain: ,"])
    losses = {}
    for arch in ARCHITECTURES:
        # No dropout: each process would draw its own masks, which one process cannot reproduce.
        cfg = ModelConfig(architecture=arch, d_model=32, d_ff=64, num_layers=2, num_heads=4, dropout=0.0,
                          max_target_length=8,
                          train=TrainConfig(learning_rate=3e-3, batch_size=per_device_batch, max_steps=4, eval_steps=2))
        model = load_model(cfg, tok, seed=0)
        train(model, tok, _rows(train_ex), _rows(valid_ex), cfg, out / arch, rationale_weight=0.5)
        if is_main():   # the one process that writes log_history.json
            history = json.loads((out / arch / "log_history.json").read_text())
            losses[arch] = [h["loss"] for h in history if "loss" in h]
    return losses


def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path):
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
                "-m", "tests.test_multiprocess_training", str(tmp_path / "two"), str(GLOBAL_BATCH // 2)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(launcher, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=Path(__file__).resolve().parents[1])
    one = train_tiny(tmp_path / "one", GLOBAL_BATCH)   # meanwhile, in this process
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    two = json.loads((tmp_path / "two" / "losses.json").read_text())
    for arch in ARCHITECTURES:
        assert len(one[arch]) == 2, one
        assert two[arch] == pytest.approx(one[arch], rel=1e-4), (arch, one[arch], two[arch])


if __name__ == "__main__":
    result = train_tiny(Path(sys.argv[1]), int(sys.argv[2]))
    if is_main():
        (Path(sys.argv[1]) / "losses.json").write_text(json.dumps(result))
