"""A student that starts from the fine-tuned teacher with blocks dropped (`student.init: teacher`)."""

from __future__ import annotations

import json

import pytest
import torch

from attrdistill.cli import main
from attrdistill.config import ConfigError, ModelConfig, load_config
from attrdistill.modeling.models import load_model, load_trained
from attrdistill.modeling.pruning import block_influence, calibration_batches, keep_blocks, keep_influential
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


def _silence(block: torch.nn.Module) -> None:
    """Zero the projections a block adds to the residual stream: its output is then its input."""
    for name, weight in block.named_parameters():
        if name.endswith(("o_proj.weight", "down_proj.weight", ".o.weight", ".wo.weight")):
            weight.data.zero_()


def _pairs(examples):
    return [(ex.input, ex.label) for ex in examples]


def test_influence_keeps_the_blocks_that_change_their_input(word_tok, examples):
    model = tiny_llama(len(word_tok), seed=2, layers=4)
    for i in (0, 2):
        _silence(model.model.layers[i])
    batches = calibration_batches(model, word_tok, _pairs(examples), ModelConfig())
    [influence] = block_influence(model, batches)
    assert influence[0] == pytest.approx(0, abs=1e-6) and influence[2] == pytest.approx(0, abs=1e-6)
    assert min(influence[1], influence[3]) > 1e-3
    ids = batches[0]["input_ids"]
    full = model(input_ids=ids, attention_mask=batches[0]["attention_mask"]).logits
    keep_influential(model, 2, batches)   # two of four, and not 0 and 2 as keep_every would
    assert [layer.self_attn.layer_idx for layer in model.model.layers] == [0, 1]
    assert model.config.num_hidden_layers == 2
    # The dropped blocks did nothing, so the smaller model computes what the full one did.
    torch.testing.assert_close(model(input_ids=ids, attention_mask=batches[0]["attention_mask"]).logits, full,
                               atol=1e-5, rtol=1e-5)


def test_influence_on_a_t5_ranks_both_stacks_and_keeps_block_0(word_tok, examples):
    from tests.conftest import tiny_t5
    model = tiny_t5(len(word_tok), seed=1)
    _silence(model.encoder.block[0])
    batches = calibration_batches(model, word_tok, _pairs(examples), ModelConfig())
    encoder, decoder = block_influence(model, batches)
    assert len(encoder) == len(decoder) == 2
    assert encoder[0] == pytest.approx(0, abs=1e-6) and encoder[1] > 1e-3
    keep_influential(model, 2, batches)   # block 0 holds the position bias: kept though it does least
    assert len(model.encoder.block) == len(model.decoder.block) == 1
    assert model.encoder.block[0].layer[0].SelfAttention.has_relative_attention_bias


@pytest.mark.parametrize("override,message", [
    ("teacher.init=teacher", "teacher.init: expected one of model"),
    ("student.keep_blocks=[2, 1]", "student.keep_blocks: expected block indices >= 0 in increasing order"),
    ("student.keep_every=2", "student.keep_every / keep_blocks: drop blocks of given weights"),
    ("student.keep_by=influence", "student.keep_by: influence chooses keep_every's share of the blocks"),
])
def test_config_refuses_a_start_it_cannot_make(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[override])


def test_init_teacher_with_a_model_of_its_own_is_refused():
    with pytest.raises(ConfigError, match="student.init: teacher starts from the teacher's weights"):
        load_config(overrides=["student.init=teacher", "student.tokenizer=../shared/tokenizers/t5"])


@pytest.mark.parametrize("keep", [["student.keep_blocks=[0, 2]"],
                                  ["student.keep_every=2", "student.keep_by=influence"]])
def test_run_with_students_cut_from_the_teacher(tmp_path, keep):
    run = tmp_path / "run"
    sets = [s for s in TINY if not s.startswith("distill.variants")] + [
        "teacher.architecture=llama", "teacher.num_layers=3", "student.init=teacher", *keep,
        "distill.variants=[standard, kd]"]
    assert main(["-q", "run", "--out", str(run), *[x for s in sets for x in ("--set", s)]]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert set(m["students"]) == {"standard", "kd"} and all(0 <= s["accuracy"] <= 1 for s in m["students"].values())
    student, _ = load_trained(run / "students" / "kd" / "seed0" / "model")
    teacher, _ = load_trained(run / "teacher" / "model")
    assert student.config.num_hidden_layers == 2 and teacher.config.num_hidden_layers == 3
    assert student.config.hidden_size == teacher.config.hidden_size == 32
