"""A student that starts from the fine-tuned teacher with blocks dropped (`student.init: teacher`)."""

from __future__ import annotations

import json

import pytest
import torch

from attrdistill.cli import main
from attrdistill.config import ConfigError, ModelConfig, load_config
from attrdistill.models import keep_blocks, load_model, load_trained
from tests.test_causal import TINY, tiny_llama


def test_init_teacher_takes_the_teachers_kept_blocks(word_tok, tmp_path):
    teacher = tiny_llama(len(word_tok), seed=4, layers=4)
    teacher.save_pretrained(tmp_path / "teacher")
    student = load_model(ModelConfig(init="teacher", keep_blocks=[0, 3]), word_tok, seed=9,
                         teacher=tmp_path / "teacher")
    assert len(student.model.layers) == student.config.num_hidden_layers == 2
    assert [layer.self_attn.layer_idx for layer in student.model.layers] == [0, 1]
    want = teacher.state_dict()
    for new, old in enumerate([0, 3]):
        for name, value in student.model.layers[new].state_dict().items():
            assert torch.equal(value, want[f"model.layers.{old}.{name}"]), name
    assert torch.equal(student.lm_head.weight, teacher.lm_head.weight)   # the seed changes nothing: no new weights


def test_keep_blocks_refuses_what_it_cannot_keep(word_tok):
    with pytest.raises(ValueError, match=r"keep_blocks: expected increasing block indices in 0\.\.1"):
        keep_blocks(tiny_llama(len(word_tok), layers=2), [0, 2])
    from tests.conftest import tiny_t5
    with pytest.raises(ValueError, match="a T5 must keep block 0"):
        keep_blocks(tiny_t5(len(word_tok)), [1])


@pytest.mark.parametrize("override,message", [
    ("teacher.init=teacher", "teacher.init: expected one of model"),
    ("student.keep_blocks=[2, 1]", "student.keep_blocks: expected block indices >= 0 in increasing order"),
    ("student.keep_every=2", "student.keep_every / keep_blocks: drop blocks of given weights"),
])
def test_config_refuses_a_start_it_cannot_make(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[override])


def test_init_teacher_with_a_model_of_its_own_is_refused():
    with pytest.raises(ConfigError, match="student.init: teacher starts from the teacher's weights"):
        load_config(overrides=["student.init=teacher", "student.tokenizer=../shared/tokenizers/t5"])


def test_run_with_students_cut_from_the_teacher(tmp_path):
    run = tmp_path / "run"
    sets = [s for s in TINY if not s.startswith("distill.variants")] + [
        "teacher.architecture=llama", "teacher.num_layers=3", "student.init=teacher", "student.keep_blocks=[0, 2]",
        "distill.variants=[standard, kd]"]
    assert main(["-q", "run", "--out", str(run), *[x for s in sets for x in ("--set", s)]]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert set(m["students"]) == {"standard", "kd"} and all(0 <= s["accuracy"] <= 1 for s in m["students"].values())
    student, _ = load_trained(run / "students" / "kd" / "seed0" / "model")
    teacher, _ = load_trained(run / "teacher" / "model")
    assert student.config.num_hidden_layers == 2 and teacher.config.num_hidden_layers == 3
    assert student.config.hidden_size == teacher.config.hidden_size == 32
