"""Rationale selection options: aligned order and its step scores, the explained quantity, adaptive length
(mass), dropping the teacher's wrong examples, unchanged cache keys at the defaults, and bad values."""

from __future__ import annotations

import pytest
import torch

import attrdistill.attribution.engine as attribution
from attrdistill.attribution.engine import attribute, cache_key, score, scoring_params
from attrdistill.attribution.gradients import saliency, target_logits
from attrdistill.attribution.select import rationale_at, select, top_k, word_scores
from attrdistill.config import AttributionConfig, ConfigError, load_config
from attrdistill.data.example import Example
from attrdistill.evaluate.predict import predict
from attrdistill.modeling.features import collate, encode
from attrdistill.modeling.words import word_spans
from attrdistill.pipeline.store import fingerprint
from attrdistill.registry.methods import REGISTRY, method_names
from tests.conftest import tiny_t5

PREFIX = "predict: "


def _one(f):
    return {"input_ids": torch.tensor([f["input_ids"]]),
            "attention_mask": torch.ones(1, len(f["input_ids"]), dtype=torch.long),
            "labels": torch.tensor([f["labels"]])}


def _full_logits(model, emb, batch):
    return model(inputs_embeds=emb, attention_mask=batch["attention_mask"],
                 decoder_input_ids=model.prepare_decoder_input_ids_from_labels(labels=batch["labels"])).logits


# ---- aligned order --------------------------------------------------------------------------------

WORDS = ["Anna", "took", "the", "lantern", "to", "the", "cave", "."]


def test_aligned_takes_each_target_tokens_best_word_then_fills_by_score():
    overall = torch.tensor([0.5, 0.9, 0.1, 0.4, 0.05, 0.1, 0.3, 2.0])
    steps = torch.tensor([[0.0, 0.2, 0.0, 0.8, 0.0, 0.0, 0.1, 9.0],    # token 1 -> lantern (punctuation skipped)
                          [0.0, 0.1, 0.0, 0.9, 0.0, 0.0, 0.7, 0.0]])   # token 2 -> lantern taken: cave
    assert top_k(WORDS, overall, 4, order="aligned", steps=steps) == [3, 6, 1, 0]
    assert top_k(WORDS, overall, 1, order="aligned", steps=steps) == [3]
    assert top_k(WORDS, overall, 4) == [1, 0, 3, 6], "score order as ever"
    assert top_k(WORDS, overall, 3, order="aligned", steps=torch.zeros(0, 8)) == [1, 0, 3], "no steps: score order"
    with pytest.raises(ValueError, match="aligned"):
        top_k(WORDS, overall, 3, order="aligned")


def test_select_and_rationale_at_honour_aligned_order():
    ex = Example("e", " ".join(WORDS[:-1]) + ".", "shine dark")
    assert [ex.input[a:b] for a, b in word_spans(ex.input)] == WORDS
    token_word = [-1, 0, 1, 2, 3, 4, 5, 6, 7, -1]   # 'predict:' and </s> belong to no word
    record = {"id": "e", "target": ex.label, "token_word": token_word,
              "token_scores": [1.0, 0.5, 0.9, 0.1, 0.4, 0.05, 0.1, 0.3, 0.0, 7.0],
              "word_scores": None,
              "step_token_scores": [[0.0, 0.0, 0.2, 0.0, 0.8, 0.0, 0.0, 0.1, 0.0, 5.0],
                                    [0.0, 0.0, 0.1, 0.0, 0.9, 0.0, 0.0, 0.7, 0.0, 0.0]]}
    cfg = AttributionConfig(k=3, order="aligned")
    (row,) = select([record], [ex], cfg)
    assert row.top == [3, 6, 1] and row.rationale == "lantern, cave, took"
    assert row.step_scores[1] == [0.0, 0.1, 0.0, 0.9, 0.0, 0.0, 0.7, 0.0]
    assert rationale_at(row, 2, cfg) == "lantern, cave" and rationale_at(row, 4, cfg) == "lantern, cave, took, Anna"
    (plain,) = select([record], [ex], AttributionConfig(k=3))
    assert plain.top == [1, 0, 3] and plain.step_scores is None


def _reference_steps(model, f, reduce):
    """The obvious way: one example, one backward per target token j of its gold logit."""
    one = _one(f)
    out = []
    for j in range(len(f["labels"])):
        emb = model.get_input_embeddings()(one["input_ids"]).detach().requires_grad_(True)
        _full_logits(model, emb, one)[0, j, f["labels"][j]].backward()
        out.append(reduce(emb.grad[0], emb[0].detach()))
    return torch.stack(out)


REDUCE = {"saliency": lambda g, e: g.abs().sum(-1),
          "input_x_gradient": lambda g, e: (g * e).sum(-1).abs(),
          "saliency_stepwise": lambda g, e: g.norm(p=2, dim=-1)}


@pytest.mark.parametrize("method", list(REDUCE))
def test_aligned_step_scores_equal_a_per_token_reference(word_tok, examples, method):
    model = tiny_t5(len(word_tok), seed=1)
    cfg = AttributionConfig(order="aligned", norm="l2", batch_size=4)
    records = score(examples[:4], method, model, word_tok, cfg, PREFIX)
    plain = score(examples[:4], method, model, word_tok, AttributionConfig(norm="l2", batch_size=4), PREFIX)
    feats = encode(word_tok, [PREFIX + ex.input for ex in examples[:4]], [ex.label for ex in examples[:4]], 128, 32)
    for rec, base, f, ex in zip(records, plain, feats, examples):
        ref = _reference_steps(model, f, REDUCE[method])
        assert f["labels"][-1] == word_tok.eos_token_id
        # One step per label word: </s> is skipped.
        assert len(rec["step_token_scores"]) == len(ex.label.split()) == len(f["labels"]) - 1
        torch.testing.assert_close(torch.tensor(rec["step_token_scores"]), ref[:-1], atol=1e-5, rtol=1e-5)
        assert rec["token_scores"] == base["token_scores"], "the overall scores are the method's own"


def test_aligned_occlusion_steps_are_per_token_log_prob_drops(word_tok, examples):
    model = tiny_t5(len(word_tok), seed=3)
    ex = examples[0]
    (rec,) = score([ex], "occlusion", model, word_tok, AttributionConfig(order="aligned"), PREFIX)
    (plain,) = score([ex], "occlusion", model, word_tok, AttributionConfig(), PREFIX)
    assert rec["word_scores"] == plain["word_scores"]

    def per_token(text):
        f = encode(word_tok, [PREFIX + text], [ex.label], 128, 32)[0]
        emb = model.get_input_embeddings()(torch.tensor([f["input_ids"]]))
        with torch.no_grad():
            lp = _full_logits(model, emb, _one(f)).log_softmax(-1)[0]
        return lp[torch.arange(len(f["labels"])), torch.tensor(f["labels"])]

    full = per_token(ex.input)
    steps = torch.tensor(rec["step_word_scores"])
    assert steps.shape == (len(ex.label.split()), len(word_spans(ex.input)))
    for w in (0, 4, steps.shape[1] - 2):
        a, b = word_spans(ex.input)[w]
        drop = full - per_token(ex.input[:a] + ex.input[b:])
        torch.testing.assert_close(steps[:, w], drop[:-1], atol=1e-5, rtol=1e-5)


def test_random_control_under_aligned_order_stays_random_words(examples):
    a = attribute(examples, "random", None, None, AttributionConfig(k=3, order="aligned"), seed=7)
    b = attribute(examples, "random", None, None, AttributionConfig(k=3), seed=7)
    assert [r.top for r in a] == [r.top for r in b]
    assert all(r.step_scores == [] for r in a)
    assert rationale_at(a[0], 2, AttributionConfig(order="aligned")) == rationale_at(b[0], 2, AttributionConfig())


def test_aligned_refuses_methods_without_step_scores(word_tok, examples):
    with pytest.raises(ValueError, match="attribution.order.*occlusion"):
        score(examples[:1], "integrated_gradients", tiny_t5(len(word_tok)), word_tok,
              AttributionConfig(order="aligned"), PREFIX)


# ---- quantity ---------------------------------------------------------------------------------------

def test_log_prob_and_margin_equal_hand_computations(word_tok, examples):
    model = tiny_t5(len(word_tok), seed=2)
    feats = encode(word_tok, [PREFIX + ex.input for ex in examples[:4]], [ex.label for ex in examples[:4]], 128, 32)
    batch = collate(feats, word_tok.pad_token_id)
    emb = model.get_input_embeddings()(batch["input_ids"])
    with torch.no_grad():
        full = _full_logits(model, emb, batch)
        got = {q: target_logits(model, emb, batch, quantity=q) for q in ("logit", "log_prob", "margin")}
    mask = batch["labels"] != -100
    for r, f in enumerate(feats):
        for j, gold in enumerate(f["labels"]):
            z = full[r, j]
            others = torch.cat([z[:gold], z[gold + 1:]])
            want = {"logit": z[gold], "log_prob": z[gold] - torch.logsumexp(z, -1), "margin": z[gold] - others.max()}
            for q, value in want.items():
                assert float(got[q][r, j]) == pytest.approx(float(value), abs=1e-5), (q, r, j)
    for q in got:
        assert torch.all(got[q][~mask] == 0), "padding is 0"


def test_saliency_of_the_margin_is_the_gradient_of_the_mean_margin(word_tok, examples):
    model = tiny_t5(len(word_tok), seed=2)
    f = encode(word_tok, [PREFIX + examples[1].input], [examples[1].label], 128, 32)[0]
    one = _one(f)
    fast = saliency(model, one, AttributionConfig(quantity="margin"))[0]
    emb = model.get_input_embeddings()(one["input_ids"]).detach().requires_grad_(True)
    z = _full_logits(model, emb, one)[0]
    labels = torch.tensor(f["labels"])
    gold = z[torch.arange(len(labels)), labels]
    others = z.scatter(-1, labels.unsqueeze(-1), float("-inf")).max(-1).values
    (gold - others).mean().backward()
    torch.testing.assert_close(fast, emb.grad[0].abs().sum(-1), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(fast, saliency(model, one)[0]), "the margin explains something else than the logit"


def test_occlusion_measures_the_margin_under_quantity_margin(word_tok, examples):
    model = tiny_t5(len(word_tok), seed=3)
    ex = examples[0]
    (rec,) = score([ex], "occlusion", model, word_tok, AttributionConfig(quantity="margin"), PREFIX)
    (as_log_prob,) = score([ex], "occlusion", model, word_tok, AttributionConfig(quantity="log_prob"), PREFIX)
    (plain,) = score([ex], "occlusion", model, word_tok, AttributionConfig(), PREFIX)
    assert as_log_prob["word_scores"] == plain["word_scores"], "occlusion's logit is its log-probability"

    def mean_margin(text):
        f = encode(word_tok, [PREFIX + text], [ex.label], 128, 32)[0]
        with torch.no_grad():
            return float(target_logits(model, model.get_input_embeddings()(torch.tensor([f["input_ids"]])), _one(f),
                                       quantity="margin").mean())

    a, b = word_spans(ex.input)[3]
    assert rec["word_scores"][3] == pytest.approx(mean_margin(ex.input) - mean_margin(ex.input[:a] + ex.input[b:]),
                                                  abs=1e-5)


# ---- mass -------------------------------------------------------------------------------------------

def test_mass_keeps_the_fewest_leading_words_that_reach_the_share():
    words = ["a1", "b2", "c3", "d4", "e5", ","]
    scores = torch.tensor([4.0, 3.0, 2.0, 1.0, -5.0, 100.0])   # total non-negative mass of candidates: 10
    assert top_k(words, scores, 4, mass=0.4) == [0]
    assert top_k(words, scores, 4, mass=0.41) == [0, 1]
    assert top_k(words, scores, 4, mass=0.7) == [0, 1]
    assert top_k(words, scores, 4, mass=0.9) == [0, 1, 2]
    assert top_k(words, scores, 4, mass=0.95) == [0, 1, 2, 3]
    assert top_k(words, scores, 3, mass=1.0) == [0, 1, 2], "capped at k"
    assert top_k(words, scores, 4, mass=0.0) == [0, 1, 2, 3], "0 = off"
    assert top_k(words, scores, 4, mass=0.01) == [0], "at least one word"
    assert top_k(words, torch.tensor([-1.0, -2.0, -3.0, -4.0, -5.0, 0.0]), 3, mass=0.5) == [0], "no mass: one word"
    assert top_k(words, scores, 4, order="position", mass=0.7) == [0, 1]
    assert top_k(words, torch.tensor([1.0, 3.0, 4.0, 2.0, 0.0, 0.0]), 4, order="position", mass=0.6) == [1, 2], \
        "position order keeps the best-scored words, then sorts them"
    steps = torch.tensor([[0.0, 0.0, 0.0, 1.0, 0.0, 0.0]])
    assert top_k(words, scores, 4, order="aligned", steps=steps, mass=0.6) == [3, 0, 1], "aligned: leading words"


# ---- teacher_wrong ------------------------------------------------------------------------------------

def test_teacher_wrong_drop_empties_exactly_the_wrong_examples(word_tok, examples, monkeypatch):
    model = tiny_t5(len(word_tok), seed=4)
    sources = [PREFIX + ex.input for ex in examples]
    # The real path first: teacher_correct is evaluate.predict's exact match (an untrained model: all wrong).
    rows = attribute(examples[:3], "saliency", model, word_tok, AttributionConfig(teacher_wrong="drop"), PREFIX,
                     max_target_length=6)
    preds = predict(model, word_tok, sources[:3], max_new_tokens=6)
    assert [r.teacher_correct for r in rows] == [p == ex.label for p, ex in zip(preds, examples)]
    # A teacher right on every other example.
    right = {PREFIX + ex.input: ex.label for ex in examples[::2]}
    monkeypatch.setattr(attribution, "predict",
                        lambda model, tok, srcs, *a, **kw: [right.get(s, "wrong guess") for s in srcs])
    cfg = AttributionConfig(k=3, teacher_wrong="drop")
    dropped = attribute(examples, "saliency", model, word_tok, cfg, PREFIX)
    kept = attribute(examples, "saliency", model, word_tok, AttributionConfig(k=3), PREFIX)
    for i, (d, k) in enumerate(zip(dropped, kept)):
        assert d.teacher_correct == (i % 2 == 0) and k.teacher_correct is None
        if i % 2:
            assert d.rationale == "" and d.top == [] and rationale_at(d, 5, cfg) == ""
        else:
            assert (d.rationale, d.top, d.scores) == (k.rationale, k.top, k.scores)
            assert rationale_at(d, 2, cfg) == rationale_at(k, 2, AttributionConfig())


# ---- defaults keep keys and rows ---------------------------------------------------------------------

def _old_key(examples, method, cfg, prefix="", max_input_length=512, max_target_length=128, seed=0, model_key=""):
    """The shard key as it was before these options existed."""
    params = {f: getattr(cfg, f) for f in REGISTRY[method].fields}
    return fingerprint(method, params, cfg.target if method != "random" else None, prefix, max_input_length,
                       max_target_length, seed if method == "random" else None, model_key, cfg.shard_size,
                       [(ex.id, ex.input, ex.label) for ex in examples])


@pytest.mark.parametrize("method", method_names())
def test_defaults_keep_the_cache_key(examples, method):
    cfg = AttributionConfig()
    assert not {"quantity", "steps", "teacher_wrong", "mass", "order"} & set(scoring_params(method, cfg))
    assert cache_key(examples, method, cfg, PREFIX, model_key="m") == _old_key(examples, method, cfg, PREFIX,
                                                                                 model_key="m")
    # Selection-only settings never change it; scoring ones do (but not for random words).
    assert cache_key(examples, method, AttributionConfig(mass=0.5, order="position"), PREFIX) == cache_key(
        examples, method, cfg, PREFIX)
    for change in ({"order": "aligned"}, {"quantity": "margin"}, {"teacher_wrong": "drop"}):
        same = cache_key(examples, method, AttributionConfig(**change), PREFIX) == cache_key(examples, method, cfg,
                                                                                                PREFIX)
        assert same == (method == "random"), (method, change)
    occlusion_log_prob = cache_key(examples, method, AttributionConfig(quantity="log_prob"), PREFIX)
    assert (occlusion_log_prob == cache_key(examples, method, cfg, PREFIX)) == (method in ("occlusion", "random"))


def test_defaults_add_no_keys_to_records_or_rows(word_tok, examples):
    model = tiny_t5(len(word_tok))
    for method in ("saliency", "occlusion"):
        records = score(examples[:2], method, model, word_tok, AttributionConfig(), PREFIX)
        assert all(set(r) == {"id", "target", "token_word", "token_scores", "word_scores"} for r in records)
        rows = select(records, examples[:2], AttributionConfig())
        assert all(set(r.to_json()) == {"id", "target", "words", "scores", "top", "rationale"} for r in rows)


# ---- bad values -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, message", [
    (["attribution.order=aligned", "attribution.method=integrated_gradients"],
     "attribution.order: .*integrated_gradients.*saliency, saliency_stepwise, input_x_gradient, occlusion"),
    (["attribution.order=aligned", "attribution.method=random"], "attribution.order: .*random"),
    (["attribution.order=aligned", "distill.variants=[standard, random, integrated_gradients]"],
     "attribution.order: .*integrated_gradients"),
    (["attribution.order=aligned", "analysis.methods=[integrated_gradients]"], "attribution.order: .*integrated"),
    (["attribution.order=sideways"], "attribution.order: expected one of score, position, aligned"),
    (["attribution.quantity=prob"], "attribution.quantity: expected one of logit, log_prob, margin"),
    (["attribution.teacher_wrong=hide"], "attribution.teacher_wrong: expected one of keep, drop"),
    (["attribution.mass=1.5"], "attribution.mass: expected 0"),
    (["attribution.mass=-0.1"], "attribution.mass: expected 0"),
    (["attribution.mass=much"], "attribution.mass: expected float"),
])
def test_bad_values_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_good_values_load():
    cfg = load_config(None, ["attribution.order=aligned", "attribution.method=occlusion", "attribution.mass=1",
                             "attribution.quantity=margin", "attribution.teacher_wrong=drop"])
    assert (cfg.attribution.order, cfg.attribution.mass, cfg.attribution.quantity) == ("aligned", 1.0, "margin")
    assert load_config(None, []).attribution == AttributionConfig()


def test_aligned_step_scores_of_a_decoder_only_model(word_tok, examples):
    """Causal layout: target token j is predicted at position prompt_len + j - 1; only prompt tokens are scored."""
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(word_tok), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         pad_token_id=0, eos_token_id=1, bos_token_id=None,
                                         tie_word_embeddings=False)).eval()
    records = score(examples[:3], "saliency", model, word_tok, AttributionConfig(order="aligned", batch_size=3), PREFIX)
    feats = encode(word_tok, [PREFIX + ex.input for ex in examples[:3]], [ex.label for ex in examples[:3]], 128, 32,
                   causal=True)
    for rec, f, ex in zip(records, feats, examples):
        p, ids = f["prompt_length"], torch.tensor([f["input_ids"]])
        assert len(rec["step_token_scores"]) == len(ex.label.split())
        for j, step in enumerate(rec["step_token_scores"]):
            emb = model.get_input_embeddings()(ids).detach().requires_grad_(True)
            logits = model(inputs_embeds=emb, attention_mask=torch.ones_like(ids)).logits
            logits[0, p + j - 1, f["input_ids"][p + j]].backward()
            ref = emb.grad[0].abs().sum(-1) * (torch.arange(ids.shape[1]) < p)
            torch.testing.assert_close(torch.tensor(step), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", ["saliency", "input_x_gradient", "occlusion"])
def test_aligned_margin_scores_are_batch_invariant(word_tok, examples, method):
    """Step scores and the margin's full-vocabulary path leak nothing between padded rows (bound: test_methods)."""
    model = tiny_t5(len(word_tok), seed=1)
    cfg = AttributionConfig(order="aligned", quantity="margin")
    alone = [score([ex], method, model, word_tok, cfg, PREFIX)[0] for ex in examples[:6]]
    together = score(examples[:6], method, model, word_tok, AttributionConfig(order="aligned", quantity="margin",
                                                                              batch_size=6), PREFIX)
    key = "step_word_scores" if method == "occlusion" else "step_token_scores"
    for a, t, ex in zip(alone, together, examples):
        torch.testing.assert_close(torch.tensor(t[key]), torch.tensor(a[key]), atol=1e-5, rtol=1e-4)
        n = len(word_spans(ex.input))
        torch.testing.assert_close(word_scores(t, n), word_scores(a, n), atol=1e-5, rtol=1e-4)
