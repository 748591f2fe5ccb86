"""Human highlights as word indices: character spans or a quoted span of text -> `attrdistill.words` indices.

    words_in_spans("Two women hug.", [(4, 9)])                   # [1]
    span_word_indices(text, "their supplies come", 0, len(question))   # CoS-E span inside the question

Indices always refer to `words(text)` of the whole text a loader formats (the model input), so a
span that sits in one part of it (the question of CQA, the hypothesis of an NLI pair) is searched
in that part only, via `start`/`end`. Nothing here raises on odd spans: unfound gives [].
"""

from __future__ import annotations

import re

from attrdistill.modeling.words import is_punctuation, word_spans

_WORD_CHAR = re.compile(r"\w")


def words_in_spans(text: str, char_spans: list[tuple[int, int]], alnum_only: bool = False) -> list[int]:
    """Sorted indices of the words of `text` that overlap any of `char_spans` ([start, end) offsets).

    alnum_only drops punctuation words, for highlights made of whole tokens like `lunch.`.
    """
    spans = [(a, b) for a, b in char_spans if b > a]
    out = []
    for i, (a, b) in enumerate(word_spans(text)):
        if any(a < e and s < b for s, e in spans) and not (alnum_only and is_punctuation(text[a:b])):
            out.append(i)
    return out


def _cuts_word(text: str, pos: int) -> bool:
    """Whether offset `pos` falls inside a run of word characters (so a match starting/ending there is partial)."""
    return 0 < pos < len(text) and bool(_WORD_CHAR.match(text[pos - 1])) and bool(_WORD_CHAR.match(text[pos]))


def find_span(text: str, span: str, start: int = 0, end: int | None = None) -> tuple[int, int] | None:
    """[start, end) of the first occurrence of `span` in text[start:end], ignoring case and how much whitespace.

    A match on word boundaries is preferred over one inside a word (so "cat" finds "a cat", not "concat").
    """
    pieces = span.split()
    if not pieces:
        return None
    # Spans are often typed or lower-cased copies whose spacing differs from the text ("tree.  Three" vs "tree. three").
    pattern = re.compile(r"\s+".join(re.escape(p) for p in pieces), re.IGNORECASE)
    end = len(text) if end is None else end
    first = None
    for m in pattern.finditer(text, start, end):
        if not _cuts_word(text, m.start()) and not _cuts_word(text, m.end()):
            return m.span()
        first = first or m.span()
    return first


def span_word_indices(text: str, span: str, start: int = 0, end: int | None = None) -> list[int]:
    """Sorted word indices (into `words(text)`) of a quoted span located inside text[start:end].

    Tries, in order: the span as a substring (case-insensitive, any spacing); the span's alphanumeric
    words as a contiguous word sequence (covering the punctuation between them); then each of its
    alphanumeric words wherever it occurs in the region. Empty or unfound spans give [].
    """
    end = len(text) if end is None else end
    found = find_span(text, span, start, end)
    if found is not None:
        return words_in_spans(text, [found])

    spans = word_spans(text)
    region = [i for i, (a, b) in enumerate(spans) if a >= start and b <= end and not is_punctuation(text[a:b])]
    target = [w.lower() for w in (span[a:b] for a, b in word_spans(span)) if not is_punctuation(w)]
    if not target or not region:
        return []
    lowered = [text[spans[i][0]:spans[i][1]].lower() for i in region]
    n = len(target)
    for k in range(len(lowered) - n + 1):
        if lowered[k:k + n] == target:
            return list(range(region[k], region[k + n - 1] + 1))
    wanted = set(target)
    return [i for i, w in zip(region, lowered) if w in wanted]
