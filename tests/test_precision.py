"""Compute dtype: `auto` resolves to bf16 only where the device has it, and a bf16 CPU step trains with mixed
precision close to float32."""

from __future__ import annotations

import json

import pytest
import torch

from attrdistill.config import ModelConfig, TrainConfig, load_config
from attrdistill.distill.trainer import train
from attrdistill.modeling import precision
from tests.conftest import tiny_t5

PREFIX = "predict: "


def test_auto_resolves_by_what_the_device_has(monkeypatch):
    monkeypatch.setattr(precision, "_cuda", lambda: (False, False))
    monkeypatch.setattr(precision, "cpu_bf16", lambda: "avx512_bf16")
    assert precision.compute_dtype("auto") == "bfloat16" and precision.trainer_precision("auto")["bf16"]
    assert "avx512_bf16" in precision.described("auto")
    monkeypatch.setattr(precision, "cpu_bf16", lambda: None)
    assert precision.compute_dtype("auto") == "float32" and precision.trainer_precision("auto") == {
        "bf16": False, "fp16": False}
    assert precision.trainer_precision("float16") == {"bf16": False, "fp16": False}, "no float16 on a CPU"
    monkeypatch.setattr(precision, "_cuda", lambda: (True, True))
    assert precision.compute_dtype("auto") == "bfloat16" and precision.trainer_precision("float16")["fp16"]
    assert precision.compute_dtype("float32") == "float32"
    # Scoring (attribution, faithfulness, kd logits) keeps float32 under auto; an explicit dtype is taken as asked.
    assert precision.scoring_dtype("auto") == "float32" and precision.scoring_dtype("bfloat16") == "bfloat16"
    assert load_config(None, ["student.dtype=auto"]).student.dtype == "auto"


@pytest.mark.skipif(precision.cpu_bf16() is None, reason="this CPU has no native bf16 (avx512_bf16 or amx_bf16)")
def test_a_bf16_cpu_step_is_mixed_precision_within_two_percent_of_float32(word_tok, examples, tmp_path):
    """The first logged loss of the same model, data and seed: bf16 autocast moves it (so it is on) by less than
    2% (bf16 keeps 8 bits of mantissa; a tiny T5's cross-entropy sums hundreds of such products)."""
    rows = [{"source": PREFIX + ex.input, "target": ex.label} for ex in examples[:8]]
    first = {}
    for dtype in ("float32", "bfloat16"):
        cfg = ModelConfig(dtype=dtype, train=TrainConfig(max_steps=2, eval_steps=1, batch_size=4, learning_rate=1e-3))
        model = tiny_t5(len(word_tok), seed=2)
        train(model, word_tok, rows, rows[:4], cfg, tmp_path / dtype, teacher_forced=True)
        history = json.loads((tmp_path / dtype / "log_history.json").read_text())
        first[dtype] = next(h["loss"] for h in history if "loss" in h)
        assert next(model.parameters()).dtype.is_floating_point and str(next(model.parameters()).dtype) == \
            "torch.float32", "master weights stay float32"
    assert first["bfloat16"] != first["float32"], "bf16 autocast was not on"
    assert first["bfloat16"] == pytest.approx(first["float32"], rel=0.02)


def test_a_causal_students_loss_runs_under_the_trainers_bf16_autocast(word_tok, examples, tmp_path):
    """label_loss runs the decoder-only model's base and output layer directly, past the forward that accelerate
    wraps in autocast: the trainer opens it itself, so the logits of a bf16 step are bf16 (before the fix they
    were float32 and a causal student's bf16 run was as slow as float32's) and its loss stays float32."""
    from transformers import Seq2SeqTrainingArguments

    from attrdistill.distill.trainer import TwoTaskTrainer, collate_train, features
    from tests.conftest import tiny_llama

    model = tiny_llama(len(word_tok))
    rows = [{"source": PREFIX + ex.input, "target": ex.label} for ex in examples[:4]]
    batch = collate_train(features(word_tok, rows, ModelConfig(), True), word_tok.pad_token_id)
    seen = []
    model.get_output_embeddings().register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    for bf16, dtype in ((False, "torch.float32"), (True, "torch.bfloat16")):
        args = Seq2SeqTrainingArguments(str(tmp_path), report_to=[], use_cpu=True, bf16=bf16)
        loss = TwoTaskTrainer(model=model, args=args).compute_loss(model, dict(batch))
        assert str(seen.pop()) == dtype and loss.dtype == torch.float32
