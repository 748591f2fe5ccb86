"""The two-task loss: L = L_label + lambda * L_rationale, computed as the paper defines it."""

from __future__ import annotations

import pytest
import torch
from transformers import Seq2SeqTrainingArguments

from attrdistill.config import ModelConfig
from attrdistill.features import collate
from attrdistill.training import TwoTaskTrainer, features
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
