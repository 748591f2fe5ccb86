"""Saliency against its definition, slowly (attribution.reference), batch invariance, random words, top-k and recall."""

from __future__ import annotations

import torch

from attrdistill.attribution.engine import attribute
from attrdistill.attribution.gradients import saliency
from attrdistill.attribution.reference import stepwise_saliency
from attrdistill.attribution.select import recall_at_k, top_k
from attrdistill.config import AttributionConfig
from attrdistill.data.example import Example
from attrdistill.modeling.features import collate, encode
from attrdistill.pipeline.records import AttributionRow
from tests.conftest import tiny_t5


def _batch(tok, examples, prefix="predict: "):
    feats = encode(tok, [prefix + ex.input for ex in examples], [ex.label for ex in examples], 128, 32)
    return feats, collate(feats, tok.pad_token_id)


def test_saliency_equals_per_token_reference(word_tok, examples):
    model = tiny_t5(len(word_tok))
    feats, batch = _batch(word_tok, examples[:4])
    fast = saliency(model, batch)
    assert all(p.grad is None for p in model.parameters()), "parameters must stay frozen"
    assert all(p.requires_grad for p in model.parameters()), "requires_grad is restored afterwards"
    for row, f in enumerate(feats):
        ref = stepwise_saliency(model, f["input_ids"], f["labels"])
        n = len(f["input_ids"])
        torch.testing.assert_close(fast[row, :n], ref, atol=1e-5, rtol=1e-5)
        assert torch.all(fast[row, n:] == 0), "padding must get no score"


def test_saliency_on_the_t5_sentencepiece_tokenizer(shared, examples):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(shared / "tokenizers" / "t5")
    model = tiny_t5(len(tok))
    feats, batch = _batch(tok, examples[:2])
    fast = saliency(model, batch)
    ref = stepwise_saliency(model, feats[1]["input_ids"], feats[1]["labels"])
    torch.testing.assert_close(fast[1, :len(ref)], ref, atol=1e-5, rtol=1e-5)


def test_batch_invariance_with_mixed_lengths(word_tok, examples):
    model = tiny_t5(len(word_tok), seed=1)
    lengths = [len(ex.input) for ex in examples]
    assert len(set(lengths)) > 1, "the batch must mix lengths for this test to mean anything"
    _, batch = _batch(word_tok, examples)
    together = saliency(model, batch)
    for i, ex in enumerate(examples):
        feats, alone_batch = _batch(word_tok, [ex])
        alone = saliency(model, alone_batch)[0]
        torch.testing.assert_close(together[i, :len(alone)], alone, atol=1e-5, rtol=1e-4)


def test_attribute_rows_and_random_is_seeded(word_tok, examples):
    model = tiny_t5(len(word_tok))
    cfg = AttributionConfig(k=3, batch_size=5)
    rows = attribute(examples, "saliency", model, word_tok, cfg, prefix="predict: ")
    assert [r.id for r in rows] == [ex.id for ex in examples]
    for r, ex in zip(rows, examples):
        assert len(r.words) == len(r.scores) and len(r.top) == 3
        assert r.rationale == ", ".join(r.words[i] for i in r.top)
        assert all(r.words[i].isalnum() for i in r.top), "punctuation is skipped"
        assert "predict" not in r.words, "the task prefix is never a rationale word"
    a = attribute(examples, "random", None, None, cfg, seed=7)
    b = attribute(examples, "random", None, None, cfg, seed=7)
    c = attribute(examples, "random", None, None, cfg, seed=8)
    assert [r.top for r in a] == [r.top for r in b]
    assert [r.top for r in a] != [r.top for r in c]


def test_top_k_orders_and_filters():
    words = ["The", "boss", ",", "surely", "left", "."]
    scores = torch.tensor([0.1, 0.9, 5.0, 0.5, 0.7, 3.0])
    assert top_k(words, scores, 3) == [1, 4, 3]
    assert top_k(words, scores, 3, order="position") == [1, 3, 4]
    assert top_k(words, scores, 2, skip_punctuation=False) == [2, 5]


def test_recall_at_k_known_values():
    examples = [Example("a", "x", "y", decisive=[1, 2]), Example("b", "x", "y", decisive=[0, 4]),
                Example("c", "x", "y")]
    rows = [AttributionRow(ex.id, "y", ["w"] * 7, [0.0] * 7, top, "")
            for ex, top in zip(examples, [[1, 2, 3], [4, 5, 6], [0]])]
    assert recall_at_k(rows, examples) == 0.75
    assert recall_at_k(rows[2:], examples[2:]) is None
