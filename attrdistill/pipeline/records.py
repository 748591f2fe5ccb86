"""The typed rows that cross units, and where a run keeps them.

    row = TrainRow(source="predict: a b", target="yes")           # what a model trains on
    row = TrainRow.from_json({"source": ..., "target": ...})      # the same from JSON; unknown keys are refused
    rows = attribution_rows(run, "saliency")                      # [AttributionRow] of student_train
    preds = predictions(run, "teacher")                           # [Prediction(id, prediction, label, correct)]

A train row is the label task's (source, target); a two-task student's row adds the `explain:` source
and its rationale, a student whose objective reads a teacher signal what that signal carries (under the
signal's field, `registry.signals`: kd's `SparseLogits` of the label's tokens), a student with a loss term
(`registry.variants.TERMS`, e.g. attribution matching) the teacher's word scores of the input (`WordScores`).
An attribution row (`AttributionRow`, made by `attribution.select`) is one example's words, their scores by
one method and its top-k rationale. Where a run keeps them: `layout.py`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attrdistill.data.example import read_jsonl
from attrdistill.errors import DataError
from attrdistill.pipeline.layout import Layout
from attrdistill.registry.signals import SIGNALS, fields
from attrdistill.registry.variants import TERMS


@dataclass(frozen=True)
class SparseLogits:
    """The teacher's top-K tokens per target token: their ids, logits and each position's log-normaliser."""

    ids: list[list[int]]
    logits: list[list[float]]
    log_norm: list[float]

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> SparseLogits:
        return cls(row["ids"], row["logits"], row["log_norm"])

    def without_last(self) -> SparseLogits:
        """All but the last target token's entry (the label's EOS, where a label-first target goes on)."""
        return SparseLogits(self.ids[:-1], self.logits[:-1], self.log_norm[:-1])


@dataclass(frozen=True)
class WordScores:
    """The teacher's scores of an input's words, and where that input sits in a train row's source."""

    input: str                                # the input text whose words are scored,
    prefix: str                               # the prompt prefix before it in the row's source,
    scores: list[float] = field(repr=False)   # one score per word (`words.word_spans`)

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> WordScores:
        return cls(row["input"], row.get("prefix", ""), row["scores"])


@dataclass
class TrainRow:
    """One training example of the label task, with what a student's objective adds to it."""

    source: str
    target: str
    explain_source: str | None = None    # two-task students: the explain: prompt ...
    rationale: str | None = None         # ... and the rationale it is trained to generate
    # a teacher signal's field -> what it carries (kd students: the teacher's sparse logits of the label's tokens)
    signals: dict[str, Any] = field(default_factory=dict)
    terms: dict[str, WordScores] = field(default_factory=dict)   # a loss term's name -> the scores guiding it

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> TrainRow:
        """A row from its JSON form ({"source", "target"} and the optional fields; a signal's value under its
        field, e.g. "kd", and a term's scores under the term's name, nested)."""
        known = {f.name for f in dataclasses.fields(cls)} - {"signals", "terms"}
        unknown = set(row) - known - set(fields()) - set(TERMS)
        if unknown or not {"source", "target"} <= set(row):
            optional = sorted(known - {"source", "target"}) + list(fields()) + list(TERMS)
            raise DataError(f"train row: expected the fields source, target and optionally {', '.join(optional)}; "
                            f"got {', '.join(sorted(row))}")
        return cls(row["source"], row["target"], row.get("explain_source"), row.get("rationale"),
                   {f: SIGNALS[name].from_json(row[f]) for f, name in fields().items() if row.get(f) is not None},
                   {t: WordScores.from_json(row[t]) for t in TERMS if row.get(t) is not None})


@dataclass
class AttributionRow:
    """One example's words scored by one attribution method, and the rationale chosen from them."""

    id: str
    target: str                   # the output the scores explain (the gold label, or the teacher's answer)
    words: list[str]              # the input's words (`words.word_spans`)
    scores: list[float]           # one score per word
    top: list[int]                # the rationale's word indices, in rationale order
    rationale: str                # those words joined by ", "
    step_scores: list[list[float]] | None = None   # attribution.order aligned: per target token, word scores
    teacher_correct: bool | None = None            # attribution.teacher_wrong drop: wrong ones have no rationale
    scaffold: list[int] | None = None              # the input format's words (modeling/template.py): never in `top`

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> AttributionRow:
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names[:6] if n not in row]
        unknown = sorted(set(row) - set(names))
        if missing or unknown:
            raise DataError(f"attribution row {row.get('id', '?')}: expected the fields {', '.join(names)} (the "
                            f"last three optional); missing {', '.join(missing) or 'none'}, "
                            f"unknown {', '.join(unknown) or 'none'}")
        return cls(**{**row, "id": str(row["id"])})

    def to_json(self) -> dict[str, Any]:
        """Its JSON form; the optional fields only when set."""
        return {k: v for k, v in dataclasses.asdict(self).items()
                if v is not None or k not in ("step_scores", "teacher_correct", "scaffold")}


@dataclass(frozen=True)
class Prediction:
    """One model's greedy output for one test example, and whether it counts as right."""

    id: str
    prediction: str
    label: str
    correct: bool

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Prediction:
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in row]
        if missing:
            raise DataError(f"prediction row {row.get('id', '?')}: missing {', '.join(missing)}")
        return cls(str(row["id"]), row["prediction"], row["label"], bool(row["correct"]))


def as_train_rows(rows: list[TrainRow] | list[dict[str, Any]]) -> list[TrainRow]:
    """Rows as TrainRow (dict rows, e.g. from JSON or a test, are read with `TrainRow.from_json`)."""
    return [r if isinstance(r, TrainRow) else TrainRow.from_json(r) for r in rows]


def predictions(run: Path, model: str) -> list[Prediction]:
    """A model's test predictions ('teacher', '<variant>-seed<n>'), as the evaluate unit wrote them."""
    return [Prediction.from_json(r) for r in read_jsonl(Layout(run).predictions(model))]


def attribution_rows(run: Path, method: str, split: str = "student_train") -> list[AttributionRow]:
    """One method's attribution rows of a split, as the attribute unit wrote them."""
    return [AttributionRow.from_json(r) for r in read_jsonl(Layout(run).attributions(method, split))]
