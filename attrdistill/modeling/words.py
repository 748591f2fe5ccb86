"""Words: how a text splits into the words a rationale is made of, and sub-word -> word scores.

A word is a run of letters/digits (with inner apostrophes) or a single punctuation mark, located
by character span. Tokens of any tokenizer (SentencePiece, byte-BPE, word-level) are mapped to
words through their character offsets, so rationales are comparable across tokenizers.

    spans = word_spans("The boss, surely.")      # [(0, 3), (4, 8), (8, 9), (10, 16), (16, 17)]
    word_scores = aggregate(token_scores, token_word, n_words, "sum")
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # torch is imported where it is used: the data readers and the CLI's help need no torch
    import torch

from attrdistill.errors import ConfigError

WORD_RE = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")


# Function words a user may exclude from rationales (attribution.stop_words: [english]).
ENGLISH_STOP_WORDS = frozenset("""
a an the and or but if then so than that this these those there here of in on at to from by with for about as
into onto over under up down out off is are was were be been being am do does did done have has had having
it its he she they them his her their him we us our you your i me my mine not no nor can could will would
shall should may might must what which who whom whose when where why how all any both each few more most other
some such only own same too very just also s t
""".split())


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the words of `text`, in order."""
    return [m.span() for m in WORD_RE.finditer(text)]


def words(text: str) -> list[str]:
    return [text[a:b] for a, b in word_spans(text)]


def is_punctuation(word: str) -> bool:
    return not any(ch.isalnum() for ch in word)


def token_to_word(offsets: list[tuple[int, int]], spans: list[tuple[int, int]], shift: int = 0) -> list[int]:
    """Word index of each token, -1 for tokens outside every word (special tokens, prefix, spaces).

    `offsets` are the tokens' character spans in the encoded string; `shift` is where the text
    starts in that string (the length of a task prefix), so prefix tokens map to -1. A token
    that covers parts of two words belongs to the first.
    """
    import torch
    if not offsets:
        return []
    off = torch.tensor(offsets, dtype=torch.long).reshape(-1, 2) - shift
    start, end = off[:, 0], off[:, 1]
    if not spans:
        return [-1] * len(offsets)
    sp = torch.tensor(spans, dtype=torch.long)
    # The first word that ends after the token starts; vectorised: attribution maps every token of every input.
    w = torch.searchsorted(sp[:, 1].contiguous(), start.contiguous(), right=True)
    inside = w < len(spans)
    # Overlap rather than containment: byte-BPE and SentencePiece tokens may carry the space before a word.
    overlaps = inside & (sp[w.clamp(max=len(spans) - 1), 0] < end)
    valid = overlaps & (end > start) & (end > 0)
    return torch.where(valid, w, torch.full_like(w, -1)).tolist()


def aggregate(token_scores: torch.Tensor, token_word: torch.Tensor, n_words: int, how: str = "sum") -> torch.Tensor:
    """Word scores from token scores (1-D each); tokens with word index -1 are dropped."""
    import torch
    keep = token_word >= 0
    idx, vals = token_word[keep].long(), token_scores[keep].float()
    if how == "max":
        out = torch.full((n_words,), float("-inf")).scatter_reduce(0, idx, vals, "amax")
        return torch.where(torch.isinf(out), torch.zeros_like(out), out)
    out = torch.zeros(n_words).index_add(0, idx, vals)
    if how == "mean":
        out = out / torch.zeros(n_words).index_add(0, idx, torch.ones_like(vals)).clamp(min=1)
    elif how != "sum":
        raise ConfigError(f"aggregation: expected sum, max or mean, got {how!r}")
    return out
