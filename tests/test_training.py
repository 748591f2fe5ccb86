"""The two-task loss: L = L_label + lambda * L_rationale, computed as the paper defines it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from transformers import Seq2SeqTrainingArguments

from attrdistill.config import ModelConfig
from attrdistill.distill.trainer import TwoTaskTrainer, features
from attrdistill.modeling.features import collate
from tests.conftest import tiny_t5


@pytest.mark.parametrize("weight", [0.0, 0.5, 2.0])
def test_two_task_loss_is_label_plus_weighted_rationale(word_tok, examples, tmp_path, weight):
    model = tiny_t5(len(word_tok))
    rows = [{"source": "predict: " + ex.input, "target": ex.label, "explain_source": "explain: " + ex.input,
             "rationale": ", ".join(ex.input.split()[:3])} for ex in examples[:5]]
    batch = collate(features(word_tok, rows, ModelConfig()), word_tok.pad_token_id)
    trainer = TwoTaskTrainer(model=model, args=Seq2SeqTrainingArguments(str(tmp_path), report_to=[]),
                             rationale_weight=weight)
    combined = trainer.compute_loss(model, dict(batch))
    label = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    rationale = model(input_ids=batch["explain_input_ids"], attention_mask=batch["explain_attention_mask"],
                      labels=batch["explain_labels"]).loss
    torch.testing.assert_close(combined, label + weight * rationale)
    assert rationale > 0 and label > 0


def test_label_only_rows_give_the_label_loss(word_tok, examples, tmp_path):
    model = tiny_t5(len(word_tok))
    rows = [{"source": "predict: " + ex.input, "target": ex.label} for ex in examples[:5]]
    batch = collate(features(word_tok, rows, ModelConfig()), word_tok.pad_token_id)
    assert not any(k.startswith("explain_") for k in batch)
    trainer = TwoTaskTrainer(model=model, args=Seq2SeqTrainingArguments(str(tmp_path), report_to=[]))
    torch.testing.assert_close(trainer.compute_loss(model, dict(batch)), model(**batch).loss)


@pytest.mark.parametrize("causal", [False, True])
def test_teacher_forced_validation_equals_greedy_decoding(word_tok, examples, tmp_path, causal):
    """One forward pass judges each validation example exactly as greedy decoding does, at every evaluation."""
    from attrdistill.config import TrainConfig
    from attrdistill.distill.trainer import train
    from tests.test_causal import tiny_llama
    rows = [{"source": "predict: " + ex.input, "target": ex.label} for ex in examples[:24]]
    cfg = ModelConfig(train=TrainConfig(learning_rate=3e-3, batch_size=8, max_steps=60, eval_steps=10))
    curves = []
    for forced in (False, True):
        model = tiny_llama(len(word_tok)) if causal else tiny_t5(len(word_tok))
        out = tmp_path / f"forced{forced}"
        train(model, word_tok, rows, rows, cfg, out, teacher_forced=forced)
        history = json.loads((out / "log_history.json").read_text())
        curves.append([h["eval_accuracy"] for h in history if "eval_accuracy" in h])
    assert len(curves[0]) == 6 and curves[0] == curves[1]
    assert max(curves[0]) > 0, "the tiny model never got an example right: the comparison says nothing"


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="the tensorboard package is not installed")
def test_report_to_tensorboard_writes_event_files(word_tok, examples, tmp_path):
    from attrdistill.config import TrainConfig
    from attrdistill.distill.trainer import train
    rows = [{"source": "predict: " + ex.input, "target": ex.label} for ex in examples[:8]]
    cfg = ModelConfig(train=TrainConfig(batch_size=4, max_steps=4, eval_steps=2))
    train(tiny_t5(len(word_tok)), word_tok, rows, rows, cfg, tmp_path, report_to=["tensorboard"])
    assert list(tmp_path.rglob("events.out.tfevents.*")), "no TensorBoard event file written"


def test_report_to_changes_no_fingerprint():
    from attrdistill.config import load_config
    from attrdistill.pipeline.plan import plan
    from attrdistill.pipeline.runner import fingerprints
    plain, tracked = load_config(), load_config(overrides=["report_to=[tensorboard]"])
    assert tracked.report_to == ["tensorboard"]
    assert fingerprints(plan(Path("run"), plain)) == fingerprints(plan(Path("run"), tracked))
