"""Config: defaults in one place, YAML round trip, overrides, and clear errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from attrdistill.config import ConfigError, RunConfig, check_environment, dump_config, field_docs, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_packaged_default_yaml_is_the_dataclass_defaults():
    text = (ROOT / "attrdistill" / "configs" / "default.yaml").read_text()
    assert text == dump_config(RunConfig()), "regenerate it: attrdistill config > attrdistill/configs/default.yaml"
    assert load_config(ROOT / "configs" / "default.yaml") == RunConfig()


@pytest.mark.parametrize("path", sorted((ROOT / "configs").rglob("*.yaml")), ids=lambda p: p.name)
def test_every_config_file_resolves_anywhere_and_its_environment_is_checked(path, monkeypatch, tmp_path):
    # On load nothing outside the config is looked at: offline, without its models or GGUF file, it resolves.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert isinstance(load_config(path), RunConfig)
    # Paper configs name hub models; online they pass the run's checks (offline and not cached, they would not).
    monkeypatch.delenv("HF_HUB_OFFLINE")
    # A GGUF file is the user's own download (the config's comments say how); a stand-in file takes its place.
    raw = yaml.safe_load(path.read_text())
    stand_in = tmp_path / "model.gguf"
    stand_in.write_bytes(b"GGUF")
    overrides = [f"{role}.gguf_file={stand_in}" for role in ("teacher", "student")
                 if (raw.get(role) or {}).get("gguf_file")]
    check_environment(load_config(path, overrides))
    if overrides:
        with pytest.raises(ConfigError, match="gguf_file: .* is not a file"):
            check_environment(load_config(path, [o.replace(str(stand_in), str(tmp_path / "no.gguf"))
                                                 for o in overrides]))


def test_every_field_is_documented():
    docs = field_docs()
    assert len(docs) > 40
    assert all(doc for _, _, doc in docs), [k for k, _, d in docs if not d]


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: mine\nteacher:\n  train:\n    max_steps: 7\nattribution: {k: 3}\n")
    cfg = load_config(path, ["distill.seeds=[0, 1, 2]", "teacher.train.learning_rate=1e-4"])
    assert (cfg.name, cfg.teacher.train.max_steps, cfg.attribution.k) == ("mine", 7, 3)
    assert cfg.distill.seeds == [0, 1, 2] and cfg.teacher.train.learning_rate == 1e-4
    assert cfg.teacher.d_model == RunConfig().teacher.d_model, "unset fields keep their defaults"
    assert cfg.student.train.max_steps == RunConfig().student.train.max_steps
    assert load_config(None, ["teacher.train.learning_rate=1"]).teacher.train.learning_rate == 1.0


@pytest.mark.parametrize("override, message", [
    ("teacher.d_modl=3", "did you mean 'teacher.d_model'"),
    ("atribution.k=3", "did you mean 'attribution'"),
    ("attribution.k=0", "attribution.k: expected a value > 0"),
    ("attribution.k=two", "attribution.k: expected int"),
    ("distill.rationale_weight=-0.5", "distill.rationale_weight: expected a value >= 0"),
    ("teacher.train.learning_rate=0", "teacher.train.learning_rate: expected a value > 0"),
    ("distill.variants=[standard, magic]", "variant 'magic': unknown part 'magic'"),
    ("attribution.aggregation=median", "attribution.aggregation: expected one of sum, max, mean"),
    ("teacher.gradient_checkpointing=3", "expected bool"),
    ("teacher=3", "teacher: expected a mapping"),
    ("nokeyvalue", "expected key=value"),
])
def test_bad_values_name_the_field(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_config(None, [override])


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("teacher: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line 2, column 1: not valid YAML: expected ',' or '\]'"):
        load_config(bad)
    bad.write_text("name: x\nteacher:\n  model: a\x07b\n")   # a character YAML refuses: no mark, a position
    with pytest.raises(ConfigError, match=r"bad.yaml: line 3, column 11: not valid YAML: special characters are "
                                          r"not allowed \(character '\\x07'\)$"):
        load_config(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("distill:\n  seedz: [1]\n")
    with pytest.raises(ConfigError, match=r"wrong.yaml: unknown config key 'distill.seedz'"):
        load_config(wrong)


def test_choices_and_ranges_are_the_fields_types():
    import typing

    from attrdistill import config
    from attrdistill.registry.methods import method_names
    assert typing.get_args(config.Method)[1].names() == method_names(), \
        "the config's method choices are the attribution registry's"
    hints = typing.get_type_hints(config.AttributionConfig, include_extras=True)
    assert typing.get_args(hints["order"]) == ("score", "position", "aligned")
    with pytest.raises(ConfigError, match=r"eval.batch_size: expected a value > 0, got -3"):
        load_config(None, ["eval.batch_size=-3"])
    with pytest.raises(ConfigError, match=r"distill.match_weight: expected a value >= 0, got -1"):
        load_config(None, ["distill.match_weight=-1"])
    with pytest.raises(ConfigError, match=r"data.train_split: expected one of train, valid, got 'test'"):
        load_config(None, ["data.train_split=test"])
    assert load_config(None, ["teacher.train.max_steps=0", "data.limit=0"]).teacher.train.max_steps == 0


def test_block_counts_are_read_without_weights(tmp_path):
    """keep_blocks is checked against a pretrained model's config.json or GGUF header; where neither tells, the
    loader's own check (pruning.keep_blocks) stays."""
    from attrdistill.modeling.blocks import Blocks, read_config_json, read_gguf
    from tests.test_bad_input import _gguf
    config = tmp_path / "config.json"
    config.write_text('{"is_encoder_decoder": true, "num_layers": 8, "num_decoder_layers": 6}')
    assert read_config_json(config) == Blocks(6, True, f"{config}: num_layers / num_decoder_layers")
    config.write_text('{"is_encoder_decoder": true, "encoder_layers": 6}')   # BART: not T5-style, not known
    assert read_config_json(config) is None
    config.write_text('{"n_layer": 12}')
    assert read_config_json(config) == Blocks(12, False, f"{config}: n_layer")
    assert read_config_json(tmp_path / "none.json") is None
    _gguf(tmp_path / "m.gguf", 30)
    assert read_gguf(tmp_path / "m.gguf") == Blocks(30, False, f"{tmp_path / 'm.gguf'}: llama.block_count")
    (tmp_path / "stand-in.gguf").write_bytes(b"GGUF")
    assert read_gguf(tmp_path / "stand-in.gguf") is None
    assert Blocks(30, False, "x").pruned([], 3, "teacher").count == 10
    assert Blocks(6, True).kept_problem([0, 5]) is None and "block 0" in Blocks(6, True).kept_problem([1, 5])


def test_keep_blocks_the_model_has_pass_the_checks(tmp_path, monkeypatch):
    from tests.test_bad_input import _gguf
    (tmp_path / "llama").mkdir()
    (tmp_path / "llama" / "config.json").write_text('{"num_hidden_layers": 4}')
    _gguf(tmp_path / "m.gguf", 5)
    check_environment(load_config(None, [f"student.model={tmp_path / 'llama'}", "student.keep_blocks=[0, 3]"]))
    check_environment(load_config(None, [f"teacher.gguf_file={tmp_path / 'm.gguf'}", "teacher.keep_every=2",
                                         "student.init=teacher", "student.keep_blocks=[0, 2]"]))
    with pytest.raises(ConfigError, match=r"0\.\.2, got \[0, 3\]: the teacher .* has 3 blocks \(5 of "):
        check_environment(load_config(None, [f"teacher.gguf_file={tmp_path / 'm.gguf'}", "teacher.keep_every=2",
                                             "student.init=teacher", "student.keep_blocks=[0, 3]"]))
    # Offline, a hub model not in the cache is refused by name; its blocks are not known, so not checked here.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = load_config(None, ["student.model=someone/not-cached", "student.keep_blocks=[0, 99]"])
    with pytest.raises(ConfigError, match="student.model: .*HF_HUB_OFFLINE=1"):
        check_environment(cfg)
    check_environment(cfg, ["finetune"])   # the teacher's stage does not read the student
