"""LoRA teachers (teacher.lora): adapters trained through peft, merged into the saved teacher; a target module the
model lacks, or LoRA where nothing trains, refused with one line."""

from __future__ import annotations

import json

import pytest
import torch

from attrdistill.cli import main
from attrdistill.config import LoraConfig, load_config
from attrdistill.errors import ConfigError
from attrdistill.modeling.lora import with_adapters
from tests.conftest import tiny_llama, tiny_t5
from tests.test_cli import TINY, _sets


def test_a_lora_teacher_is_saved_merged_with_only_its_target_modules_changed(tmp_path, shared):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(shared / "tokenizers" / "t5")
    given = tmp_path / "t5"
    tiny_t5(len(tok), seed=4).save_pretrained(given)
    tok.save_pretrained(given)
    run = tmp_path / "run"
    sets = [o for o in TINY if not o.startswith("distill.variants")] + [
        f"teacher.model={given}", "teacher.lora.rank=4", "teacher.lora.target_modules=[q, v]",
        "teacher.train.learning_rate=0.05", "distill.variants=[standard]"]
    assert main(["-q", "run", "--out", str(run), *_sets(sets)]) == 0
    saved = run / "teacher" / "model"
    assert not (saved / "adapter_config.json").exists(), "saved merged: a plain model"
    merged = AutoModelForSeq2SeqLM.from_pretrained(saved).state_dict()
    before = AutoModelForSeq2SeqLM.from_pretrained(given).state_dict()
    changed = {k for k in before if not torch.equal(before[k], merged[k])}
    assert changed and all(k.endswith((".q.weight", ".v.weight")) for k in changed), sorted(changed)[:4]
    result = json.loads((run / "teacher" / "DONE.json").read_text())["result"]
    total = sum(v.numel() for v in before.values())
    assert 0 < result["lora_trainable_parameters"] < total / 10
    assert json.loads((run / "metrics.json").read_text())["teacher"]["accuracy"] >= 0


def test_a_target_module_the_model_lacks_is_refused_naming_the_field(word_tok):
    with pytest.raises(ConfigError, match="teacher.lora.target_modules: 'q_proj' is not a linear layer of the "
                                          "teacher \\(its linear layers: .*\\bq\\b"):
        with_adapters(tiny_t5(len(word_tok)), LoraConfig(rank=2, target_modules=["q_proj"]))
    with pytest.raises(ConfigError, match="student.lora.rank: LoRA is for the teacher"):
        load_config(None, ["student.lora.rank=4"])
    with pytest.raises(ConfigError, match="teacher.lora.rank: a given teacher"):
        load_config(None, ["teacher.lora.rank=4", "teacher.model=x", "teacher.finetune=false"])


def test_a_causal_lora_model_trains_through_the_label_loss(word_tok, examples):
    """label_loss runs a peft model's inner transformer (whose base has last_hidden_state), adapters included."""
    from attrdistill.config import ModelConfig
    from attrdistill.distill.label import label_loss
    from attrdistill.distill.trainer import collate_train, features
    model = with_adapters(tiny_llama(len(word_tok)), LoraConfig(rank=2, alpha=4.0))
    rows = [{"source": "predict: " + ex.input, "target": ex.label} for ex in examples[:4]]
    batch = collate_train(features(word_tok, rows, ModelConfig(), True), word_tok.pad_token_id)
    loss, _ = label_loss(model, batch)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert grads and all("lora_" in n for n in grads) and any(g is not None and g.abs().sum() > 0
                                                            for g in grads.values())
