"""Student variants: what a student learns from, as one registry of rationale sources and one of objectives.

    parse_variant("kd+saliency@k3")   # Variant(objective="kd", rationale="saliency", k=3)
    parse_variant("standard")         # Variant(objective="label", rationale=None, k=None)

A variant names at most one objective and at most one rationale source, joined by '+':

- objective (OBJECTIVES): `label` (implicit: cross-entropy on the gold label), `kd` (the label's
  cross-entropy mixed with a divergence to the teacher's token distributions, see `kd.py`) or
  `seqkd` (the gold label replaced by the teacher's greedy output: sequence-level KD, Kim & Rush 2016).
- rationale source (RATIONALES, or any attribution method's name, optionally '@k<k>'): the words the
  student learns to generate beside the label (`explain:` task, or the single-sequence target).
- loss term (TERMS), `<term>:<guide>`: a term added to the loss from the student's own forward, guided by
  word scores: the teacher's by an attribution method (`match:occlusion`; `match:random` is the control), or
  the words the data marks (`match:human`, `match:oracle`: 1 on each marked word); `match:<guide>` is
  attribution matching, the student's own saliency pulled toward those scores (`matching.py`), for
  seq2seq and decoder-only students alike, across model families. Combines with the others.

A new objective, term or source is one entry here (plus what it computes, in its own module); config
validation, the docs of `distill.variants`, the plan, the trainer and the report read these tables. An
objective's entry names the teacher signal its students read (`reads`, an entry of `registry.signals`: the
teacher's cached logits or outputs), the distill settings that change them and the loss that replaces the
label's cross-entropy (`loss`, built from those settings): the plan gives its students those dependencies and
fingerprints, `distill.rows.train_rows` and the trainer apply it, all without a branch on its name.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

from attrdistill.errors import ConfigError, DataError
from attrdistill.modeling.words import words
from attrdistill.registry import imported
from attrdistill.registry.methods import method_names


@dataclass(frozen=True)
class Objective:
    """What a student is trained to output for the label, what of the teacher's it reads, and its loss."""

    doc: str
    reads: str | None = None          # the teacher signal its students read (registry.signals.SIGNALS)
    settings: tuple[str, ...] = ()    # the distill.* fields that change its students (and build its loss)
    # "module:name" called with the settings' values -> loss(target logits, label CE, batch) replacing the CE
    loss: str | None = None
    baseline: bool = False            # a baseline every student is compared with in the report ('vs kd')

    def loss_function(self, distill: Any) -> Callable[..., Any] | None:
        """Its loss term built from the `distill` config's settings (imported now), or None: the label's CE."""
        return None if self.loss is None else _built(self.loss, self.settings, distill)


def _built(ref: str, settings: tuple[str, ...], distill: Any) -> Any:
    """The "module:name" a registry entry names, called with the values of its distill.* settings."""
    return imported(ref)(*[getattr(distill, f) for f in settings])


OBJECTIVES: dict[str, Objective] = {
    "label": Objective("cross-entropy on the gold label (implicit: a variant without an objective uses it)"),
    "kd": Objective("(1 - distill.kd_alpha) CE + kd_alpha T^2 D(p_teacher^T || p_student^T) on the label tokens, from "
                    "the teacher's cached top-K logits (same vocabulary needed)", "teacher_logits",
                    ("kd_alpha", "kd_temperature", "kd_divergence", "kd_beta"), "attrdistill.distill.kd:KDLoss",
                    baseline=True),
    "seqkd": Objective("cross-entropy on the teacher's greedy output instead of the gold label (sequence-level KD)",
                       "teacher_outputs"),
}


@dataclass(frozen=True)
class Term:
    """A loss term from the student's own forward, guided by the teacher's word scores by one attribution method.

    Its `impl` ("module:name") is a class with `features(tokenizer, sources, guides, max_input_length)` (per row,
    the features its batches carry, keys starting with the term's name), `collate(features, width)` (those
    features as batch tensors) and, built from the settings' values, `__call__(model, inputs, tensors)` ->
    (the model's outputs with the label loss, the term's loss), which replaces the student's plain forward.
    """

    doc: str
    settings: tuple[str, ...]   # the distill.* fields that change its students (and build it)
    impl: str
    shown: str = ""             # how the report names the words that guide it (its students generate none)

    def implementation(self) -> Any:
        return imported(self.impl)

    def build(self, distill: Any) -> Any:
        """The term's loss, built from the `distill` config's settings."""
        return _built(self.impl, self.settings, distill)


TERMS: dict[str, Term] = {
    "match": Term("adds distill.match_weight * KL(word scores of <guide> || the student's own saliency) to the label "
                  "loss (attribution matching, a double backward); <guide> is an attribution method (the teacher's "
                  "scores; random: the control) or human / oracle (1 on the words the data marks)", ("match_weight",),
                  "attrdistill.distill.matching:AttributionMatching", "words its saliency is pulled toward"),
}

STANDARD = "standard"   # the label-only student: every other is compared with it


@dataclass(frozen=True)
class RationaleSource:
    """A rationale source the data gives (attribution methods, the teacher's top-k words, are sources too)."""

    doc: str
    text: Callable[[Any, int], str]   # (example, data seed) -> its rationale; DataError where the data lacks it
    reference: bool = False           # the task's true words: listed beside the attribution methods, recall 1
    # (example) -> the indices of the words it marks: then it also guides a loss term ('match:human'), as a
    # word score of 1 on each marked word and 0 elsewhere; DataError where the data lacks them
    words: Callable[[Any], list[int]] | None = None


@dataclass(frozen=True)
class Variant:
    objective: str = "label"
    rationale: str | None = None   # a RATIONALES key or an attribution method
    k: int | None = None           # '@k<k>': another rationale length than attribution.k
    term: str | None = None        # '<term>:<method>': a TERMS entry ...
    guide: str | None = None       # ... and what guides it: an attribution method's word scores, or data_guides()

    @property
    def reads(self) -> str | None:
        """The teacher's unit this variant's objective reads (teacher_logits, teacher_outputs), if any."""
        return OBJECTIVES[self.objective].reads

    def term_settings(self, distill: Any) -> Any:
        """Its loss term's settings as its students' fingerprint holds them (a single one bare: the form of runs
        made before there were terms, whose students stay valid), or None."""
        if self.term is None:
            return None
        values = [getattr(distill, f) for f in TERMS[self.term].settings]
        return values[0] if len(values) == 1 else values


def parse_variant(name: str, methods: tuple[str, ...] | None = None) -> Variant:
    """'kd+saliency@k3' -> Variant('kd', 'saliency', 3); ValueError naming the part that is not known."""
    if methods is None:
        methods = method_names()   # the live registry: a method registered at run time is known at once
    if name == STANDARD:
        return Variant()
    objective, rationale, k, term, guide = "label", None, None, None, None
    for part in name.split("+"):
        head, colon, tail = part.partition(":")
        if colon:
            if head not in TERMS or tail not in (*methods, *data_guides()) or term is not None:
                raise ConfigError(f"variant {name!r}: '{part}' should be one <term>:<guide> with a term of "
                                  f"{', '.join(TERMS)} and a guide: an attribution method ({', '.join(methods)}) or "
                                  f"the data's marked words ({', '.join(data_guides())})")
            term, guide = head, tail
            continue
        if part in OBJECTIVES and part != "label":
            if objective != "label":
                raise ConfigError(f"variant {name!r}: two objectives ({objective}, {part}); a variant has one")
            objective = part
            continue
        base, at, tail = part.partition("@k")
        if at and not (tail.isdigit() and int(tail) > 0 and base in methods):
            raise ConfigError(f"variant {name!r}: '{part}' should be <method>@k<k> with k > 0")
        if base not in RATIONALES and base not in methods:
            known = ", ".join([STANDARD, *[o for o in OBJECTIVES if o != "label"], *[f"{t}:<method>" for t in TERMS],
                               *RATIONALES, *methods])
            raise ConfigError(f"variant {name!r}: unknown part {part!r}; expected '+'-joined parts of {known}")
        if rationale is not None:
            raise ConfigError(f"variant {name!r}: two rationale sources ({rationale}, {base}); a variant has one")
        rationale, k = base, int(tail) if at else None
    return Variant(objective, rationale, k, term, guide)


def _decisive(ex: Any) -> list[int]:
    if not ex.decisive:
        raise DataError("distill.variants: 'oracle' needs ground-truth decisive words, which this data lacks "
                        "(own data: name their column in data.decisive_field)")
    return list(ex.decisive)


def _shuffled(ex: Any, seed: int) -> list[int]:
    order = _decisive(ex)
    random.Random(f"{seed}:{ex.id}").shuffle(order)   # per example, so independent of data order
    return order


def _indices_text(ex: Any, indices: list[int]) -> str:
    return ", ".join(words(ex.input)[i] for i in indices)


def _highlighted(ex: Any) -> list[int]:
    if ex.human is None:
        raise DataError("distill.variants: 'human' needs human highlights (CoS-E on cqa, the e-SNLI CSV files, "
                        "data.human_field of own data), which this data lacks")
    return list(ex.human)


def _dsbs(ex: Any) -> str:
    if ex.rationale is None:
        raise DataError("distill.variants: 'dsbs' needs the data's LLM rationales, which this data lacks")
    return ex.rationale


# name -> entry; the data-given rationale sources.
RATIONALES: dict[str, RationaleSource] = {
    "oracle": RationaleSource("the task's true decisive words, in label order (builtin task, or data with "
                              "highlights)", lambda ex, seed: _indices_text(ex, _decisive(ex)), reference=True,
                              words=_decisive),
    "oracle_shuffled": RationaleSource("the same words in a seeded random order per example (a control: word "
                                       "choice without order)",
                                       lambda ex, seed: _indices_text(ex, _shuffled(ex, seed))),
    "dsbs": RationaleSource("the data's LLM (PaLM) rationales: Distilling Step-by-Step", lambda ex, seed: _dsbs(ex)),
    "human": RationaleSource("the data's human highlights: CoS-E spans on cqa, e-SNLI marks",
                             lambda ex, seed: _indices_text(ex, _highlighted(ex)), words=_highlighted),
}


def given_rationales(source: str, examples: list[Any], seed: int) -> dict[str, str]:
    """id -> rationale text of a data-given source (oracle, oracle_shuffled, dsbs, human)."""
    return {ex.id: RATIONALES[source].text(ex, seed) for ex in examples}


def data_guides() -> tuple[str, ...]:
    """The rationale sources that can guide a loss term: those that mark words of the input (oracle, human)."""
    return tuple(name for name, source in RATIONALES.items() if source.words is not None)


def data_reads(variant: str) -> str | None:
    """What of the data a variant reads beyond inputs and labels (its rationale source's or data guide's), or None."""
    v = parse_variant(variant)
    if v.rationale in RATIONALES:
        return f"the {v.rationale} rationales"
    return f"the {v.guide} words" if v.guide in data_guides() else None


def check_available(variant: str, examples: list[Any]) -> None:
    """DataError before any work when the data lacks what a variant's rationale source or data guide reads."""
    v = parse_variant(variant)
    if v.rationale in RATIONALES:
        for ex in examples:
            RATIONALES[v.rationale].text(ex, 0)
    if v.guide in data_guides():
        for ex in examples:
            RATIONALES[v.guide].words(ex)


def variants_doc() -> str:
    """The doc of `distill.variants`, from the two registries."""
    objectives = "; ".join([f"{k}: {v.doc}" for k, v in OBJECTIVES.items() if k != "label"]
                           + [f"{k}:<guide>: {v.doc}" for k, v in TERMS.items()])
    sources = "; ".join(f"{k}: {v.doc}" for k, v in RATIONALES.items())
    return ("Students to train. 'standard' = label only. A variant is an optional objective and an optional "
            "rationale source joined by '+', e.g. kd, saliency, kd+saliency, saliency@k3. Objectives: "
            f"{objectives}. Rationale sources: any attribution method's name (the teacher's top-k words by it, e.g. "
            f"saliency, the paper's), random (k random input words); {sources}.")
