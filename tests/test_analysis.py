"""Analyses of a run's outputs on hand-made inputs with known answers, and faithfulness on a model whose
target depends on a single input token (so the right comprehensiveness/sufficiency is unambiguous)."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import pytest
import torch

from attrdistill.attribution.engine import attribute
from attrdistill.attribution.gradients import target_log_prob
from attrdistill.config import AttributionConfig
from attrdistill.data.example import Example
from attrdistill.evaluate.analysis import (
    _n_top,
    answer_overlap,
    average_precision,
    faithfulness,
    human_agreement,
    paired_gain,
    prediction_overlap,
    teacher_gap,
)
from attrdistill.modeling.features import collate, encode
from attrdistill.modeling.words import words
from attrdistill.pipeline.records import AttributionRow, Prediction
from tests.conftest import tiny_t5

PREFIX = "predict: "


def _row(ex: Example, top: list[int], scores: list[float] | None = None) -> AttributionRow:
    ws = words(ex.input)
    return AttributionRow(ex.id, ex.label, ws, scores if scores is not None else [0.0] * len(ws), top,
                          ", ".join(ws[i] for i in top))


# ---------------------------------------------------------------- answer overlap

def test_answer_overlap_counts_content_words_only():
    exs = [Example("1", "Anna took the Dark lantern to a cave", "shine dark"),   # top has "Dark": case-insensitive hit
           Example("2", "the banks of the river", "the bank"),                  # "the": stop word; "banks" != "bank"
           Example("3", "the end .", "the .")]                                   # answer has no content word
    rows = [_row(exs[0], [3, 4]), _row(exs[1], [0, 1]), _row(exs[2], [0, 2])]
    assert answer_overlap(rows, exs) == pytest.approx(1 / 3)
    # With no stop words, "the" is a content word and example 2 (and 3) now overlap.
    assert answer_overlap(rows, exs, stop_words=frozenset()) == pytest.approx(1.0)


def test_answer_overlap_rejects_misaligned_rows():
    exs = [Example("1", "a b", "a"), Example("2", "c d", "c")]
    with pytest.raises(ValueError, match="'2'"):
        answer_overlap([_row(exs[0], [0]), _row(Example("x", "c d", "c"), [0])], exs)
    with pytest.raises(ValueError, match="'2'"):
        answer_overlap([_row(exs[0], [0])], exs)


# ---------------------------------------------------------------- prediction overlap

def _pred(i: str, prediction: str, label: str, correct: bool) -> Prediction:
    return Prediction(i, prediction, label, correct)


def test_prediction_overlap_by_hand():
    a = [_pred("1", "x", "x", True), _pred("2", "y", "y", True), _pred("3", "z", "z", True),
         _pred("4", "a , b", "c", False), _pred("5", "d", "e", False), _pred("6", "f", "g", False)]
    b = [_pred("1", "x", "x", True), _pred("2", "y", "y", True), _pred("3", "q", "z", False),
         _pred("4", "a, b", "c", False),    # the same wrong answer up to normalize
         _pred("5", "h", "e", False),       # a different wrong answer
         _pred("6", "g", "g", True)]        # right where A is wrong: not "the same wrong"
    # A right on 1, 2, 3; B also right on 1, 2 -> 2/3.  A wrong on 4, 5, 6; B the same wrong on 4 -> 1/3.
    assert prediction_overlap(a, b) == {"n_a_right": 3, "n_a_wrong": 3, "right_also_right": pytest.approx(2 / 3),
                                        "wrong_same_wrong": pytest.approx(1 / 3)}
    assert prediction_overlap(a[:3], b[:3])["wrong_same_wrong"] is None
    assert prediction_overlap(a[3:], b[3:])["right_also_right"] is None


def test_prediction_overlap_compares_answers_of_single_sequence_outputs():
    a = [_pred("1", "rope, cave, so the answer is low", "wet", False)]
    b = [_pred("1", "lantern, so the answer is low", "wet", False)]
    assert prediction_overlap(a, b)["wrong_same_wrong"] == 1.0


def test_prediction_overlap_names_the_first_mismatching_id():
    a = [_pred("1", "x", "x", True), _pred("2", "y", "y", True), _pred("3", "z", "z", True)]
    b = [a[0], _pred("7", "y", "y", True), _pred("8", "z", "z", True)]
    with pytest.raises(ValueError, match="'2'"):
        prediction_overlap(a, b)
    with pytest.raises(ValueError, match="'3'"):
        prediction_overlap(a, a[:2])


# ---------------------------------------------------------------- human agreement

def test_average_precision_by_hand():
    # Ranking 0(+), 2(-), 3(+), 1(-): precision 1/1 at the first hit, 2/3 at the second.
    assert average_precision([0.9, 0.1, 0.8, 0.3], [True, False, False, True]) == pytest.approx((1 + 2 / 3) / 2)
    # Tied scores are one threshold, whatever the order: all tied -> the base rate.
    assert average_precision([0.5] * 4, [False, False, False, True]) == pytest.approx(0.25)
    assert average_precision([0.5] * 4, [True, False, False, False]) == pytest.approx(0.25)
    assert average_precision([0.1, 0.2], [False, False]) is None


def test_human_agreement_by_hand():
    a = Example("a", "w0 w1 w2 w3", "l", human=[0, 3])
    b = Example("b", "x y , z v", "l", human=[1])
    rows = [_row(a, [0, 2], [0.9, 0.1, 0.8, 0.3]),
            _row(b, [1, 3], [0.1, 0.5, 0.99, 0.5, 0.2]),
            _row(Example("c", "p q", "l"), [0]), _row(Example("d", "p q", "l"), [1])]
    exs = [a, b, Example("c", "p q", "l"), Example("d", "p q", "l", human=[])]   # c, d: no highlights, skipped
    out = human_agreement(rows, exs)
    # Hits: a 1 of 2 picked / 2 human, b 1 of 2 picked / 1 human -> micro P = 2/4, R = 2/3, F1 = 4/7.
    # Per example F1: a 0.5, b 2*(1/2*1)/(3/2) = 2/3 -> macro 7/12.
    # AP: a (1 + 2/3)/2 = 5/6; b without the "," (0.99): y and z tie at 0.5 -> one point, P = 1/2 -> 1/2.
    assert out == {"precision": pytest.approx(0.5), "recall": pytest.approx(2 / 3), "f1": pytest.approx(4 / 7),
                   "macro_f1": pytest.approx(7 / 12), "auprc": pytest.approx((5 / 6 + 1 / 2) / 2), "n": 2}


def test_human_agreement_is_none_without_highlights():
    ex = Example("a", "p q", "l")
    assert human_agreement([_row(ex, [0])], [ex]) is None


# ---------------------------------------------------------------- teacher gap, recall by method

def test_teacher_gap():
    metrics = {"teacher": {"accuracy": 0.8},
               "students": {"standard": {"accuracy": 0.6, "std": 0.01, "per_seed": {}}, "saliency": {"accuracy": 0.7}}}
    assert teacher_gap(metrics) == {"standard": pytest.approx(0.2), "saliency": pytest.approx(0.1)}


def test_paired_gain_is_the_t_interval_of_the_per_seed_differences():
    gain, lo, hi = paired_gain([0.6, 0.7, 0.5], [0.5, 0.5, 0.5])
    # differences 0.1, 0.2, 0.0: mean 0.1, sd 0.1, t(0.975, df=2) = 4.303
    assert gain == pytest.approx(0.1) and hi - gain == pytest.approx(4.303 * 0.1 / 3 ** 0.5)
    assert lo == pytest.approx(2 * gain - hi)
    assert math.isnan(paired_gain([0.6], [0.5])[1])
    with pytest.raises(ValueError, match="pair"):
        paired_gain([0.6, 0.7], [0.5])

def test_n_top_rounds_before_ceil():
    assert [_n_top(0.1, 30), _n_top(0.01, 10), _n_top(0.2, 11), _n_top(1.0, 4), _n_top(0.5, 0)] == [3, 1, 3, 4, 0]


class KeyModel(torch.nn.Module):
    """Predicts `answer` with near certainty iff one of `key_ids` is in the input, else uniformly.

    So log p(answer) is ~0 with a key token and -log(vocab) without: deleting the key word is all that
    matters. It has the interface `gradients.target_logits` uses (input embeddings, shifted labels,
    forward(inputs_embeds, attention_mask, decoder_input_ids).logits).
    """

    def __init__(self, vocab_size: int, key_ids: list[int], answer: list[int]):
        super().__init__()
        self.vocab_size, self.answer = vocab_size, answer
        self.embed = torch.nn.Embedding(vocab_size, 1)
        with torch.no_grad():
            self.embed.weight.zero_()
            self.embed.weight[key_ids] = 1.0

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.embed

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        shifted = torch.zeros_like(labels)
        shifted[:, 1:] = labels[:, :-1].clamp(min=0)
        return shifted

    def forward(self, inputs_embeds, attention_mask, decoder_input_ids):
        present = ((inputs_embeds[..., 0] * attention_mask) > 0.5).any(-1).float()
        steps = decoder_input_ids.shape[1]
        boost = torch.zeros(steps, self.vocab_size)
        for j, t in enumerate(self.answer[:steps]):
            boost[j, t] = 30.0
        return SimpleNamespace(logits=present[:, None, None] * boost)


def _key_setup(tok, ex: Example, key_word: str):
    ws = words(ex.input)
    key = ws.index(key_word)
    answer = tok(text_target=ex.label)["input_ids"]
    return ws, key, answer


def test_faithfulness_with_a_single_decisive_word(word_tok, examples):
    ex = examples[0]
    ws, key, answer = _key_setup(word_tok, ex, words(ex.input)[ex.decisive[0]])
    key_id = word_tok.convert_tokens_to_ids(ws[key])
    ids = encode(word_tok, [PREFIX + ex.input], [ex.label], 512, 128)[0]["input_ids"]
    assert ids.count(key_id) == 1, "the key must be one word of the input for the test to mean anything"
    model = KeyModel(len(word_tok), [key_id], answer)
    drop = math.log(len(word_tok))   # lp_full ~ 0, lp without the key = -log(vocab)

    first = [1.0 if w == key else 0.0 for w in range(len(ws))]
    out = faithfulness(model, word_tok, [ex], [_row(ex, [key], first)], prefix=PREFIX)
    assert out["n"] == 1 and set(out["per_fraction"]) == {0.01, 0.05, 0.10, 0.20}
    assert out["comprehensiveness"] == pytest.approx(drop, abs=1e-4)
    assert out["sufficiency"] == pytest.approx(0.0, abs=1e-4)

    last = [-1.0 if w == key else 0.0 for w in range(len(ws))]   # ranked last: 20% of the words never reach it
    out = faithfulness(model, word_tok, [ex], [_row(ex, [0], last)], prefix=PREFIX)
    assert out["comprehensiveness"] == pytest.approx(0.0, abs=1e-4)
    assert out["sufficiency"] == pytest.approx(drop, abs=1e-4)
    for q in out["per_fraction"].values():
        assert q["comprehensiveness"] == pytest.approx(0.0, abs=1e-4)
        assert q["sufficiency"] == pytest.approx(drop, abs=1e-4)


@pytest.mark.parametrize("key_token", ["predict", "</s>"])
def test_faithfulness_always_keeps_the_prefix_and_eos(word_tok, examples, key_token):
    ex = examples[1]
    ws, _, answer = _key_setup(word_tok, ex, words(ex.input)[0])
    model = KeyModel(len(word_tok), [word_tok.convert_tokens_to_ids(key_token)], answer)
    rows = [_row(ex, [0], [float(-w) for w in range(len(ws))])]
    out = faithfulness(model, word_tok, [ex], rows, prefix=PREFIX, fractions=(0.2, 1.0))
    # Every variant still holds the key token: nothing changes whatever is deleted or kept.
    assert out["comprehensiveness"] == pytest.approx(0.0, abs=1e-6)
    assert out["sufficiency"] == pytest.approx(0.0, abs=1e-6)


def test_faithfulness_deletes_every_token_of_a_word(shared):
    """SentencePiece splits 'lanternfish' into '▁lantern' + 'fish'; the key is the second piece."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(shared / "tokenizers" / "t5")
    ex = Example("s", "Anna packed a lanternfish, then walked to the glacier.", "shine low")
    ws, key, answer = _key_setup(tok, ex, "lanternfish")
    fish = tok.convert_tokens_to_ids("fish")
    assert fish in tok(PREFIX + ex.input)["input_ids"] and tok.convert_tokens_to_ids("▁lantern") != fish
    model = KeyModel(len(tok), [fish], answer)
    scores = [1.0 if w == key else 0.0 for w in range(len(ws))]
    out = faithfulness(model, tok, [ex], [_row(ex, [key], scores)], prefix=PREFIX, fractions=(0.1,))
    assert out["comprehensiveness"] == pytest.approx(math.log(len(tok)), abs=1e-4)
    assert out["sufficiency"] == pytest.approx(0.0, abs=1e-4)


def _lp(model, tok, text: str, label: str) -> float:
    f = encode(tok, [text], [label], 512, 128)[0]
    return float(target_log_prob(model, collate([f], tok.pad_token_id))[0])


def test_faithfulness_on_tiny_t5_matches_deleting_words_from_the_text(word_tok, examples):
    model = tiny_t5(len(word_tok), seed=5)
    exs = examples[:4]
    cfg = AttributionConfig(k=3, batch_size=8)
    for method in ("random", "occlusion"):
        rows = attribute(exs, method, model, word_tok, cfg, prefix=PREFIX, seed=1)
        out = faithfulness(model, word_tok, exs, rows, prefix=PREFIX, batch_size=5)
        assert out["n"] == 4 and math.isfinite(out["comprehensiveness"]) and math.isfinite(out["sufficiency"])
        assert all(math.isfinite(v) for q in out["per_fraction"].values() for v in q.values())

    # One example, one fraction, by hand: with the word-level tokenizer, deleting a word's tokens is
    # deleting the word from the text.
    ex, row = exs[0], rows[0]
    ws = row.words
    candidates = [w for w in range(len(ws)) if ws[w].isalnum()]
    n_top = math.ceil(0.2 * len(candidates) - 1e-9)
    top = set(sorted(candidates, key=lambda w: (-row.scores[w], w))[:n_top])
    full = _lp(model, word_tok, PREFIX + ex.input, ex.label)
    without = _lp(model, word_tok, PREFIX + " ".join(w for i, w in enumerate(ws) if i not in top), ex.label)
    only = _lp(model, word_tok, PREFIX + " ".join(w for i, w in enumerate(ws) if i in top), ex.label)
    out = faithfulness(model, word_tok, [ex], [row], prefix=PREFIX, fractions=(0.2,))
    assert out["comprehensiveness"] == pytest.approx(full - without, abs=1e-5)
    assert out["sufficiency"] == pytest.approx(full - only, abs=1e-5)


def test_faithfulness_checks_its_inputs(word_tok, examples):
    model = tiny_t5(len(word_tok))
    ex = examples[0]
    row = _row(ex, [0])
    with pytest.raises(ValueError, match="scores"):
        faithfulness(model, word_tok, [ex], [dataclasses.replace(row, scores=row.scores[:-1])])
    with pytest.raises(ValueError, match=repr(examples[1].id)):
        faithfulness(model, word_tok, examples[:2], [row, dataclasses.replace(row)])
    with pytest.raises(ValueError, match="fractions"):
        faithfulness(model, word_tok, [ex], [row], fractions=(0.0,))


def test_word_f1_compares_sets_of_words_without_case_or_punctuation():
    from attrdistill.evaluate.analysis import word_f1
    assert word_f1("Lantern, cave", "cave, lantern") == 1.0
    assert word_f1("lantern, sock, cave", "lantern, cave") == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))
    assert word_f1("sock", "lantern") == 0.0 and word_f1("", "") == 1.0 and word_f1("", "cave") == 0.0
