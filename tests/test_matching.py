"""Attribution matching: the teacher's token distribution, the student's saliency, and the loss's gradient
(a double backward) against finite differences."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from attrdistill.attribution.gradients import saliency
from attrdistill.config import ModelConfig, TrainConfig
from attrdistill.distill.matching import match_divergence, pad_targets, student_saliency, token_targets
from attrdistill.distill.trainer import collate_train, features, train
from attrdistill.modeling.features import collate
from attrdistill.modeling.words import words
from attrdistill.pipeline.layout import HISTORY
from tests.conftest import tiny_llama, tiny_t5

PREFIX = "predict: "


def _rows(examples, scores=None):
    """Train rows with word scores to match (`scores`: one list per example; 1 on every word without)."""
    scores = scores or [[1.0] * len(words(ex.input)) for ex in examples]
    return [{"source": PREFIX + ex.input, "target": ex.label,
             "match": {"input": ex.input, "prefix": PREFIX, "scores": sc}} for ex, sc in zip(examples, scores)]


def _batch(tok, examples, scores):
    return collate_train(features(tok, _rows(examples, scores), ModelConfig()), tok.pad_token_id)


def test_token_targets_spread_each_words_score_over_its_tokens(word_tok, examples):
    ex = examples[0]
    n = len(words(ex.input))
    scores = [float(i % 3) - 0.5 for i in range(n)]   # negative scores count as 0
    (t,) = token_targets(word_tok, [PREFIX + ex.input], [ex.input], [scores], PREFIX, 128)
    assert sum(t) == pytest.approx(1.0)
    positive = [max(0.0, s) for s in scores]
    # The word-level tokenizer: one token per word, after the prefix's tokens, then </s>.
    n_prefix = len(t) - n - 1
    assert t[:n_prefix] == [0.0] * n_prefix and t[-1] == 0.0
    assert t[n_prefix:-1] == pytest.approx([p / sum(positive) for p in positive])


def test_match_divergence_is_the_kl_from_the_teachers_distribution():
    s = torch.tensor([[1.0, 3.0, 0.0, 4.0], [2.0, 2.0, 2.0, 2.0]])
    p = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])   # the second row has no teacher mass
    q = s[0] / s[0].sum()
    want = 0.5 * (torch.log(torch.tensor(0.5)) - q[0].log()) + 0.5 * (torch.log(torch.tensor(0.5)) - q[1].log())
    torch.testing.assert_close(match_divergence(s, p), want)


def test_student_saliency_is_the_papers_saliency_of_the_student(word_tok, examples):
    model = tiny_t5(len(word_tok), seed=3)
    batch = _batch(word_tok, examples[:4], [[1.0] * len(words(ex.input)) for ex in examples[:4]])
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
    out, sal = student_saliency(model, inputs)
    torch.testing.assert_close(sal.detach(), saliency(model, inputs), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out.loss, model(**inputs).loss)


def _rms_norm_in_its_own_dtype(self, hidden_states):
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


def _agrees_with_finite_differences(model, loss, params: dict[str, tuple[int, int]], h: float = 1e-5) -> None:
    """The backward of `loss()` at each named weight entry against central differences (float64)."""
    named = dict(model.named_parameters())
    model.zero_grad()
    loss().backward()
    for name, idx in params.items():
        w = named[name]
        analytic = float(w.grad[idx])
        with torch.no_grad():
            w[idx] += h
        up = loss().item()
        with torch.no_grad():
            w[idx] -= 2 * h
        down = loss().item()
        with torch.no_grad():
            w[idx] += h
        numeric = (up - down) / (2 * h)
        assert abs(analytic) > 1e-6, f"{name}: a zero gradient would prove nothing"
        assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-9), name


def test_the_match_loss_gradient_agrees_with_finite_differences(word_tok, examples, monkeypatch):
    """d/dθ KL(p || q(θ)) through the student's saliency needs the second backward. In float64 with central
    differences, h = 1e-5: truncation ~h^2 and rounding ~1e-16/h, both far below the bound. T5's RMS norm
    computes its variance in float32 whatever the dtype (1e-7 noise: a 1e-2 error at this h), so here
    it keeps float64."""
    from transformers.models.t5.modeling_t5 import T5LayerNorm
    monkeypatch.setattr(T5LayerNorm, "forward", _rms_norm_in_its_own_dtype)
    model = tiny_t5(len(word_tok), seed=4).double()
    exs = examples[:3]
    batch = _batch(word_tok, exs, [[float(i % 4) for i in range(len(words(ex.input)))] for ex in exs])
    targets = batch.pop("match_targets").double()
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}

    def loss() -> torch.Tensor:
        _, sal = student_saliency(model, inputs)
        return match_divergence(sal, targets)

    params = {"encoder.block.0.layer.1.DenseReluDense.wi_0.weight": (3, 5), "shared.weight": (7, 2),
              "decoder.block.1.layer.0.SelfAttention.q.weight": (1, 1),
              "encoder.block.1.layer.0.SelfAttention.k.weight": (2, 3)}
    _agrees_with_finite_differences(model, loss, params)


TERM_CALLS: list[dict] = []


class ToyTerm:
    """A toy loss term: the student's plain forward plus weight x (a feature that is 1 per row whose guide is the
    teacher's scores of every word of the row's input), recording what it was given."""

    def __init__(self, weight: float) -> None:
        self.weight = weight

    @staticmethod
    def features(tokenizer, sources, guides, max_input_length):
        return [{"toy_whole": float(src == g.prefix + g.input and len(g.scores) == len(words(g.input)))}
                for src, g in zip(sources, guides)]

    @staticmethod
    def collate(features, width):
        return {"toy_whole": torch.tensor([f["toy_whole"] for f in features])}

    def __call__(self, model, inputs, tensors):
        TERM_CALLS.append({"weight": self.weight, "tensors": sorted(tensors), "inputs": sorted(inputs)})
        return model(**inputs), self.weight * tensors["toy_whole"].mean()


def test_one_entry_is_a_whole_loss_term(monkeypatch, tmp_path):
    """A new loss term is one registry.variants.TERMS entry: config accepts '<term>:<method>', the plan gives its
    students that method's attributions and fingerprints its setting, its rows carry the teacher's word scores, the
    trainer adds its loss to the label's."""
    import json

    from attrdistill.cli import main
    from attrdistill.registry.variants import TERMS, Term, parse_variant, variants_doc
    from tests.test_kd import TINY
    monkeypatch.setitem(TERMS, "toy", Term("toy: a constant per row", ("match_weight",), f"{__name__}:ToyTerm"))
    assert "toy:<guide>: toy: a constant" in variants_doc()
    assert (parse_variant("kd+toy:occlusion").term, parse_variant("kd+toy:occlusion").guide) == ("toy", "occlusion")
    TERM_CALLS.clear()
    run = tmp_path / "run"
    sets = TINY[:-1] + ["distill.variants=[standard,toy:occlusion]", "distill.match_weight=2.0"]
    assert main(["-q", "run", "--out", str(run), *[x for o in sets for x in ("--set", o)]]) == 0
    assert (run / "attributions" / "occlusion" / "DONE.json").is_file(), "the plan attributes with its method"
    assert TERM_CALLS and {c["weight"] for c in TERM_CALLS} == {2.0}
    assert TERM_CALLS[0]["tensors"] == ["toy_whole"] and TERM_CALLS[0]["inputs"] == ["attention_mask", "input_ids",
                                                                                      "labels"]
    history = {v: [h["loss"] for h in json.loads((run / "students" / v / "seed0" / "log_history.json").read_text())
                   if "loss" in h] for v in ("standard", "toy:occlusion")}
    # Same seed, data and start, and a term with no gradient: every logged loss is the standard one + 2 x 1.
    assert history["toy:occlusion"] == pytest.approx([x + 2.0 for x in history["standard"]], rel=1e-5)
    before = {v: (run / "students" / v / "seed0" / "DONE.json").read_text() for v in ("standard", "toy:occlusion")}
    sets[-1] = "distill.match_weight=0.5"
    assert main(["-q", "run", "--out", str(run), *[x for o in sets for x in ("--set", o)]]) == 0
    after = {v: (run / "students" / v / "seed0" / "DONE.json").read_text() for v in before}
    assert [v for v in before if before[v] != after[v]] == ["toy:occlusion"], "its setting retrains it alone"


# ---- decoder-only students --------------------------------------------------------------------------

def _causal_batch(tok, examples, scores, padding_side="right"):
    """Train features of causal rows with the teacher's word scores, collated on `padding_side`."""
    feats = features(tok, _rows(examples, scores), ModelConfig(), causal=True)
    batch = collate(feats, tok.pad_token_id, padding_side=padding_side)
    batch["match_targets"] = pad_targets(feats, batch["input_ids"].shape[1], padding_side)
    return batch


def _varied(examples):
    """The examples with targets of one and two words: rows of a batch end at different positions."""
    return [dataclasses.replace(ex, label=ex.label.split()[0]) if i % 2 else ex for i, ex in enumerate(examples)]


def _scores(examples):
    return [[float((3 * i) % 5) for i in range(len(words(ex.input)))] for ex in examples]


def test_causal_student_saliency_is_the_engines_saliency(word_tok, examples):
    """A decoder-only student is matched on the teacher's definition: its own saliency equals what the attribution
    engine scores for the same model and inputs, and its loss is the full-logits cross-entropy."""
    from attrdistill.attribution.engine import score
    from attrdistill.config import AttributionConfig
    model = tiny_llama(len(word_tok), seed=2)
    exs = _varied(examples[:5])
    batch = _causal_batch(word_tok, exs, _scores(exs))
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
    out, sal = student_saliency(model, inputs)
    records = score(exs, "saliency", model, word_tok, AttributionConfig(batch_size=2), PREFIX)
    for r, rec in enumerate(records):
        n = len(rec["token_scores"])
        torch.testing.assert_close(sal[r, :n].detach(), torch.tensor(rec["token_scores"]), atol=1e-5, rtol=1e-5)
        assert float(sal[r, n:].detach().abs().sum()) == 0.0, "target tokens and padding get no saliency"
    torch.testing.assert_close(out.loss, model(**inputs).loss, atol=1e-5, rtol=1e-5)
    assert out.logits.shape[1] == int((inputs["labels"] != -100).sum(-1).max()), "logits at the target tokens only"


def _rms_norm_in_float64(self, hidden_states):
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


def test_the_causal_match_loss_gradient_agrees_with_finite_differences(word_tok, examples, monkeypatch):
    """As for seq2seq, in float64 with central differences (h = 1e-5); Llama's RMS norm computes in float32
    whatever the dtype, so here it keeps float64."""
    from transformers.models.llama.modeling_llama import LlamaRMSNorm
    monkeypatch.setattr(LlamaRMSNorm, "forward", _rms_norm_in_float64)
    model = tiny_llama(len(word_tok), seed=4).double()
    exs = _varied(examples[:3])
    batch = _causal_batch(word_tok, exs, _scores(exs))
    targets = batch.pop("match_targets").double()

    def loss() -> torch.Tensor:
        _, sal = student_saliency(model, batch)
        return match_divergence(sal, targets)

    params = {"model.layers.0.mlp.up_proj.weight": (3, 5), "model.embed_tokens.weight": (7, 2),
              "model.layers.1.self_attn.q_proj.weight": (1, 1), "model.layers.0.self_attn.k_proj.weight": (2, 3)}
    _agrees_with_finite_differences(model, loss, params)


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_the_causal_match_loss_of_a_row_is_the_same_alone_and_in_a_padded_batch(word_tok, examples, padding_side):
    model = tiny_llama(len(word_tok), seed=5)
    exs = _varied(sorted(examples[:4], key=lambda ex: len(words(ex.input))))   # rows of several lengths: padding
    scores = _scores(exs)
    batch = _causal_batch(word_tok, exs, scores, padding_side)
    assert (batch["attention_mask"] == 0).any(), "some row is padded"
    targets = batch.pop("match_targets")
    out, sal = student_saliency(model, batch)
    for r, ex in enumerate(exs):
        alone = _causal_batch(word_tok, [ex], [scores[r]])
        alone_targets = alone.pop("match_targets")
        out1, sal1 = student_saliency(model, alone)
        real = batch["attention_mask"][r].bool()
        torch.testing.assert_close(sal[r][real], sal1[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(match_divergence(sal[r:r + 1], targets[r:r + 1]),
                                   match_divergence(sal1, alone_targets), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(out.logits[r, :out1.logits.shape[1]], out1.logits[0], atol=1e-4, rtol=1e-4)


def test_saliency_agreement_is_zero_kl_for_the_models_own_view_and_full_mass_on_its_top_token(word_tok, examples):
    """Measured against the model's own normalised saliency, the KL is 0; against all the teacher's mass on the
    model's most salient token, the KL is -log q there and the top-5 tokens hold all of it; a uniform view scores
    log(the row's prompt tokens) on the latter. Rows without teacher mass are left out of every mean."""
    from attrdistill.distill.matching import input_tokens, saliency_agreement
    model = tiny_llama(len(word_tok), seed=6)
    exs = _varied(examples[:4])
    batch = _causal_batch(word_tok, exs, _scores(exs))
    inputs = {k: v for k, v in batch.items() if k != "match_targets"}
    _, sal = student_saliency(model, inputs)
    q = (sal / sal.sum(-1, keepdim=True)).detach()
    own = saliency_agreement(model, [inputs | {"match_targets": q}])
    assert own["n"] == 4 and own["kl"] == pytest.approx(0.0, abs=1e-5)
    assert own["mass_at_top"] == pytest.approx(float(q.topk(5, -1).values.sum(-1).mean()), abs=1e-5)
    top = torch.zeros_like(q).scatter(1, q.argmax(-1, keepdim=True), 1.0)
    top[3] = 0.0   # no teacher mass: not counted
    one = saliency_agreement(model, [inputs | {"match_targets": top}])
    tokens = input_tokens(model, inputs).sum(-1)[:3].float()
    assert one["n"] == 3 and one["mass_at_top"] == pytest.approx(1.0)
    assert one["kl"] == pytest.approx(float(-q.max(-1).values[:3].log().mean()), rel=1e-5)
    assert one["kl_uniform"] == pytest.approx(float(tokens.log().mean()), rel=1e-5)
    assert one["mass_uniform"] == pytest.approx(float((5 / tokens).clamp(max=1).mean()), rel=1e-5)

# ---- guides beyond the teacher's attributions ------------------------------------------------------

def test_data_guides_and_the_random_control_parse_as_guides():
    from attrdistill.registry.variants import parse_variant
    assert [parse_variant(f"match:{g}").guide for g in ("human", "oracle", "random")] == ["human", "oracle", "random"]
    with pytest.raises(ValueError, match="a guide: an attribution method .* or the data's marked words"):
        parse_variant("match:dsbs")   # LLM rationales are text, not marked input words


def test_oracle_guide_puts_its_mass_on_the_decisive_words(tmp_path, examples):
    from attrdistill.config import load_config
    from attrdistill.distill.rows import guide_scores
    scores = guide_scores(tmp_path, load_config(), "oracle", examples[:3])
    for ex in examples[:3]:
        assert [i for i, s in enumerate(scores[ex.id]) if s] == sorted(ex.decisive)
        assert len(scores[ex.id]) == len(words(ex.input))


def test_match_oracle_trains_and_match_human_is_refused_before_work_where_data_lacks_highlights(tmp_path, caplog):
    import json
    import logging

    from attrdistill.cli import main
    from tests.test_kd import TINY
    run = tmp_path / "run"
    sets = TINY[:-1] + ["distill.variants=[standard,match:oracle,match:random]"]
    assert main(["-q", "run", "--out", str(run), *[x for o in sets for x in ("--set", o)]]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert set(m["students"]) == {"standard", "match:oracle", "match:random"}
    assert not (run / "attributions" / "oracle").exists(), "a data guide needs no attribution unit"
    sets[-1] = "distill.variants=[standard,match:human]"
    other = tmp_path / "other"
    with caplog.at_level(logging.ERROR):
        assert main(["-q", "run", "--out", str(other), *[x for o in sets for x in ("--set", o)]]) == 2
    assert "'human' needs human highlights" in caplog.records[-1].getMessage()
    assert not (other / "teacher" / "DONE.json").exists(), "refused before the teacher trains"


# ---- a cheaper schedule: the term on every n-th step --------------------------------------------------

class CountingTerm:
    """A term that adds nothing and counts the steps it is asked for."""

    def __init__(self) -> None:
        self.steps = 0

    def __call__(self, model, inputs, tensors):
        self.steps += 1
        return model(**inputs), tensors["match_targets"].sum() * 0.0


def test_term_every_applies_the_term_on_every_nth_step_only(word_tok, examples, tmp_path):
    rows = _rows(examples[:8])
    valid = [{"source": PREFIX + ex.input, "target": ex.label} for ex in examples[8:]]
    cfg = ModelConfig(train=TrainConfig(max_steps=6, eval_steps=6, batch_size=4, learning_rate=1e-3))
    for every, calls in ((1, 6), (2, 3), (3, 2)):
        term = CountingTerm()
        train(tiny_t5(len(word_tok)), word_tok, rows, valid, cfg, tmp_path / f"every{every}", term=term,
              term_every=every, teacher_forced=True)
        assert term.steps == calls, (every, term.steps)


def test_the_training_log_shows_each_part_of_the_loss(word_tok, examples, tmp_path):
    class Constant:
        def __call__(self, model, inputs, tensors):
            return model(**inputs), tensors["match_targets"].sum() * 0.0 + 0.25

    rows = _rows(examples[:8])
    valid = [{"source": PREFIX + ex.input, "target": ex.label} for ex in examples[8:]]
    cfg = ModelConfig(train=TrainConfig(max_steps=4, eval_steps=2, batch_size=4, learning_rate=1e-3))
    train(tiny_t5(len(word_tok)), word_tok, rows, valid, cfg, tmp_path / "s", term=Constant(), term_every=2,
          teacher_forced=True)
    logged = [e for e in json.loads((tmp_path / "s" / HISTORY).read_text()) if "loss" in e and "step" in e]
    assert [e["step"] for e in logged] == [2, 4]
    for e in logged:
        assert e["loss_term"] == pytest.approx(0.25), "the term as it entered the loss, on the steps it ran"
        assert e["loss_label"] > 0 and "loss_objective" not in e and "loss_rationale" not in e
        # two steps per log, the term on one of them: the logged total is the label's mean plus half the term
        assert e["loss"] == pytest.approx(e["loss_label"] + 0.25 / 2, abs=1e-3)


def test_term_every_enters_the_fingerprints_of_term_students_only_and_only_when_set(tmp_path):
    from attrdistill.config import load_config
    from attrdistill.pipeline.plan import plan
    from attrdistill.pipeline.runner import fingerprints

    def fps(*sets):
        return fingerprints(plan(tmp_path, load_config(None, ["distill.variants=[standard,kd,match:occlusion]",
                                                              *sets])))
    base, one, two = fps(), fps("distill.term_every=1"), fps("distill.term_every=2")
    assert one == base, "the default keeps the fingerprints runs made before the option have"
    changed = {k for k in base if base[k] != two[k]}
    assert "students/match:occlusion/seed0" in changed
    assert not {k for k in changed if k.startswith(("students/standard", "students/kd", "teacher", "attributions"))}
