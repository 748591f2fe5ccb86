"""The attribution methods' registry: one entry is a whole method (config, docs, dispatch, cache key), the
registry is what config and attribution list, it imports no torch, and the built-in methods' keys are as ever."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing

import pytest
import torch

from attrdistill import config
from attrdistill.attribution.engine import attribute, cache_key, scoring_params
from attrdistill.config import AttributionConfig, ConfigError, load_config
from attrdistill.data.example import Example
from attrdistill.registry import methods
from attrdistill.registry.methods import REGISTRY, AttributionMethod
from tests.conftest import tiny_t5

PREFIX = "predict: "


def test_config_and_attribution_list_the_registry():
    choices = typing.get_args(config.Method)[1]   # the attribution.method field's choices
    assert choices.names() == methods.method_names() == tuple(REGISTRY)
    assert methods.aligned_names() == ("saliency", "saliency_stepwise", "input_x_gradient", "occlusion")
    doc = {key: d for key, _, d in config.field_docs()}["attribution.method"]
    assert doc == methods.methods_doc() and all(f"{name} ({m.doc})" in doc for name, m in REGISTRY.items())


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_entry_is_well_formed(name):
    m = REGISTRY[name]
    assert m.kind in ("token", "word", "seeded") and "(" not in m.doc
    assert set(m.fields) <= {f.name for f in dataclasses.fields(AttributionConfig)}
    assert callable(m.function()) and (not m.aligned or callable(m.function(steps=True)))


def test_registry_and_config_import_no_torch():
    code = ("import sys, attrdistill.config, attrdistill.registry.methods, attrdistill.registry.variants, "
            "attrdistill.registry.signals, attrdistill.pipeline.plan, attrdistill.pipeline.layout, "
            "attrdistill.pipeline.records; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_method_names_the_choices():
    with pytest.raises(ConfigError, match="unknown method 'nope'; expected one of saliency, .*random"):
        methods.entry("nope")
    with pytest.raises(ConfigError, match="attribution.method: expected one of saliency, .*random, got 'nope'"):
        load_config(None, ["attribution.method=nope"])


# ---- the built-in methods' shard keys, pinned as computed before the registry existed --------------------

KEY_EXAMPLES = [Example(id=f"e{i}", input=f"a word {i} here", label="yes") for i in range(3)]
CHANGED = {"quantity": "margin", "order": "aligned", "teacher_wrong": "drop", "target": "prediction", "norm": "l2",
           "ig_steps": 7, "ig_baseline": "zero", "mass": 0.5, "shard_size": 5}
PINNED = {  # method: (key at the defaults, key with CHANGED)
    "saliency": ("b7a0ae5a65151c38", "9f2743de00161dfb"),
    "saliency_stepwise": ("2158dc9a4ff51c38", "d9453837a2312bde"),
    "input_x_gradient": ("d0ef68cb35688d12", "01a2b9d14eeb01e4"),
    "integrated_gradients": ("de21af135da4564b", "0ada6efc5ce1951f"),
    "occlusion": ("d16c280c477c1b04", "55fea335432508e5"),
    "random": ("6cfc54fb56bcec51", "3a0ab10a37e7c7f9"),
}


@pytest.mark.parametrize("name", list(PINNED))
def test_builtin_cache_keys_are_unchanged(name):
    keys = tuple(cache_key(KEY_EXAMPLES, name, cfg, "p: ", 100, 20, 3, "mk")
                 for cfg in (AttributionConfig(), AttributionConfig(**CHANGED)))
    assert keys == PINNED[name], "a changed key makes every cached attribution stale"


# ---- a new method is one entry ----------------------------------------------------------------------------

def toy_tokens(model, batch, cfg):
    """Token kind: earlier input tokens score higher."""
    n = batch["input_ids"].shape[1]
    return (n - torch.arange(n, dtype=torch.float32)) * batch["attention_mask"].float()


def toy_words(model, feats, n_words, pad_id, batch_size, quantity):
    """Word kind: earlier words score higher."""
    return [torch.arange(n, 0, -1, dtype=torch.float32) for n in n_words]


def toy_seeded(examples, n_words, seed):
    """Seeded kind: earlier words score higher, whatever the seed."""
    return [[float(n - w) for w in range(n)] for n in n_words]


@pytest.mark.parametrize("kind, function", [("token", "toy_tokens"), ("word", "toy_words"), ("seeded", "toy_seeded")])
def test_one_entry_is_a_whole_method(monkeypatch, word_tok, examples, kind, function):
    toy = AttributionMethod(doc="the first words", kind=kind, scores=f"{__name__}:{function}", fields=("norm",))
    monkeypatch.setitem(REGISTRY, "toy", toy)
    # Config: a valid choice wherever a method is named, documented, and refused where it cannot work.
    cfg = load_config(None, ["attribution.method=toy", "analysis.methods=[toy]", "distill.variants=[standard, toy]",
                             "attribution.k=3", "attribution.aggregation=max", "attribution.skip_punctuation=false"])
    assert cfg.attribution.method == "toy" and "toy (the first words)" in methods.methods_doc()
    if kind != "seeded":   # a seeded control keeps score order under aligned; the others need step scores
        with pytest.raises(ConfigError, match="aligned needs per-target-token scores, which toy does not give"):
            load_config(None, ["attribution.method=toy", "attribution.order=aligned"])
    # Attribution: its scores, its words.
    rows = attribute(examples[:3], "toy", tiny_t5(len(word_tok)), word_tok, cfg.attribution, PREFIX)
    assert [r.top for r in rows] == [[0, 1, 2]] * 3
    assert rows[0].rationale == ", ".join(rows[0].words[:3])
    # Cache key: its fields enter it.
    assert scoring_params("toy", cfg.attribution) == {"norm": "l1"}
    l2 = dataclasses.replace(cfg.attribution, norm="l2")
    assert cache_key(examples, "toy", cfg.attribution) != cache_key(examples, "toy", l2)


def test_a_method_registered_at_run_time_is_seen_by_validation_the_plan_and_the_engine(monkeypatch, tmp_path):
    """No import-time copy of the method list: the variant parser, the plan and the engine read the live registry."""
    from attrdistill.pipeline.plan import plan
    from attrdistill.registry.variants import parse_variant
    monkeypatch.setitem(REGISTRY, "toy", AttributionMethod(doc="the first words", kind="seeded",
                                                           scores=f"{__name__}:toy_seeded"))
    cfg = load_config(None, ["distill.variants=[standard, toy@k2, match:toy]"])
    assert parse_variant("match:toy").guide == "toy" and parse_variant("toy@k2").k == 2
    units = {u.key: u for u in plan(tmp_path, cfg)}
    assert "attributions/toy" in units and "attributions/test/toy" in units
    assert "attributions/toy" in units["students/match:toy/seed0"].deps
    rows = attribute([Example("a", "one two three", "x")], "toy", None, None, cfg.attribution)
    assert rows[0].scores == [3.0, 2.0, 1.0]
