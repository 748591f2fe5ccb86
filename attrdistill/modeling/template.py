"""Input templates: how an input is built from an example's fields, and which of its words are the format's.

    t = Template("Premise: {premise}\\nHypothesis: {hypothesis}")
    text = t.fill({"premise": "A dog runs.", "hypothesis": "An animal moves."})
    t.scaffold(text)        # [0, 1, 6, 7]: the words "Premise", ":", "Hypothesis", ":"

A source that builds its inputs from several fields (e-SNLI's "Premise: ...", CQA's "Answer Choices:" and
choice markers, a user's `data.input_template`) does it with a Template, and the same Template later tells
the words of its scaffold from the example's own: the filled fields are content, every word outside them
scaffold. Scaffold words are never rationale words, a loss term's guide puts no mass on them, and the
analyses leave them out (their scores stay in the attribution rows, marked). The spans are found again by
matching the template against the input, so runs made before templates existed keep their data and teacher.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field

from attrdistill.errors import ConfigError
from attrdistill.modeling.words import word_spans


@dataclass(frozen=True)
class Template:
    """A format string with named fields only, e.g. "Premise: {premise}\\nHypothesis: {hypothesis}"."""

    pattern: str
    fields: tuple[str, ...] = field(init=False)
    _regex: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            parts = list(string.Formatter().parse(self.pattern))
        except ValueError as e:
            raise ConfigError(f"template {self.pattern!r}: {e} (write a literal brace as {{{{ or }}}})") from None
        names = [name for _, name, _, _ in parts if name is not None]
        bad = [name for _, name, spec, conv in parts if name is not None
               and (not name.isidentifier() or spec or conv)]
        if bad or not names:
            raise ConfigError(f"template {self.pattern!r}: expected named fields like {{premise}} (no "
                              f"positions, attributes, conversions or format specs); got "
                              f"{', '.join(repr('{' + b + '}') for b in bad) if bad else 'no field'}")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigError(f"template {self.pattern!r}: the field(s) {', '.join(repeated)} occur more than "
                              "once; name each field once")
        regex = "".join(re.escape(literal) + (f"(?P<{name}>.*?)" if name is not None else "")
                        for literal, name, _, _ in parts)
        object.__setattr__(self, "fields", tuple(names))
        object.__setattr__(self, "_regex", re.compile(regex, re.DOTALL))

    def fill(self, values: dict[str, str]) -> str:
        """The input: the template with each field replaced by its value (every field must be given)."""
        return self.pattern.format_map(values)

    def content_spans(self, text: str) -> list[tuple[int, int]] | None:
        """Character spans of the fields' values in `text` (in template order), or None if `text` does not
        follow the template. A value that contains the text after it ("\\nHypothesis: ") ends at its first
        occurrence."""
        m = self._regex.fullmatch(text)
        return None if m is None else [m.span(name) for name in self.fields]

    def scaffold(self, text: str) -> list[int] | None:
        """Word indices (`words.word_spans`) of the words of `text` outside every field, or None if `text`
        does not follow the template. A word that touches a field's value is content."""
        content = self.content_spans(text)
        if content is None:
            return None
        return [i for i, (a, b) in enumerate(word_spans(text)) if not any(a < d and c < b for c, d in content)]

    @property
    def has_scaffold(self) -> bool:
        """Whether the template puts any word of its own into an input."""
        return bool(word_spans(" ".join(literal for literal, _, _, _ in string.Formatter().parse(self.pattern))))
