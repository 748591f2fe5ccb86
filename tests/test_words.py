"""Sub-word -> word mapping and aggregation on SentencePiece, byte-BPE and word-level tokenizers."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from attrdistill.modeling.models import build_word_tokenizer
from attrdistill.modeling.words import aggregate, token_to_word, word_spans, words

TEXT = "The unbelievably talkative boss, surprisingly, didn't mention photosynthesis."
PREFIX = "predict: "


def byte_bpe() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["the boss said a word", "mention the talk", "predict: the boss"] * 20
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "</s>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>")


def make_tokenizer(kind: str, shared):
    if kind == "sentencepiece":
        return AutoTokenizer.from_pretrained(shared / "tokenizers" / "t5")
    return byte_bpe() if kind == "byte-bpe" else build_word_tokenizer([PREFIX + TEXT])


def test_word_spans():
    assert words("The boss, surely. Don't") == ["The", "boss", ",", "surely", ".", "Don't"]
    assert word_spans("a  b") == [(0, 1), (3, 4)]


@pytest.mark.parametrize("kind", ["sentencepiece", "byte-bpe", "word-level"])
def test_every_word_gets_its_own_tokens(kind, shared):
    tok = make_tokenizer(kind, shared)
    enc = tok(PREFIX + TEXT, return_offsets_mapping=True)
    spans = word_spans(TEXT)
    tw = token_to_word(enc["offset_mapping"], spans, shift=len(PREFIX))
    pieces = tok.convert_ids_to_tokens(enc["input_ids"])
    # Prefix and special tokens belong to no word; every word of the text owns at least one token.
    n_prefix = len(tok(PREFIX, add_special_tokens=False)["input_ids"])
    assert all(w == -1 for w in tw[:n_prefix]), (kind, pieces)
    assert sorted(set(tw) - {-1}) == list(range(len(spans))), (kind, list(zip(pieces, tw)))
    owned = [w for w in tw if w >= 0]
    assert owned == sorted(owned), "tokens map to words in reading order"
    # Reassembling a word's tokens gives back that word (modulo the tokenizer's space markers).
    for w, (a, b) in enumerate(spans):
        ids = [enc["input_ids"][i] for i, x in enumerate(tw) if x == w]
        assert tok.decode(ids).replace(" ", "").strip() == TEXT[a:b].replace(" ", ""), (kind, w)


@pytest.mark.parametrize("kind", ["sentencepiece", "byte-bpe", "word-level"])
def test_aggregation_sum_max_mean(kind, shared):
    tok = make_tokenizer(kind, shared)
    enc = tok(PREFIX + TEXT, return_offsets_mapping=True)
    spans = word_spans(TEXT)
    tw = torch.tensor(token_to_word(enc["offset_mapping"], spans, shift=len(PREFIX)))
    scores = torch.arange(1, len(tw) + 1, dtype=torch.float)
    total = aggregate(scores, tw, len(spans), "sum")
    high = aggregate(scores, tw, len(spans), "max")
    mean = aggregate(scores, tw, len(spans), "mean")
    for w in range(len(spans)):
        mine = scores[tw == w]
        assert total[w] == mine.sum() and high[w] == mine.max() and mean[w] == pytest.approx(float(mine.mean()))
    assert total.sum() == scores[tw >= 0].sum(), "scores of prefix and special tokens are dropped"


def test_aggregation_rejects_unknown_mode():
    with pytest.raises(ValueError, match="sum, max or mean"):
        aggregate(torch.ones(2), torch.tensor([0, 1]), 2, "median")
