"""Attribution methods: one registry. A method is one entry of REGISTRY; config, docs and dispatch read it.

    entry("occlusion").kind             # "word"
    entry("saliency").function()        # attrdistill.attribution.gradients.saliency, imported on this call
    method_names()                      # ("saliency", ..., "random"): attribution.method's choices

To add a method, write its score function in a module of its own (e.g. attrdistill/attribution/mine.py)
with the calling convention of its kind, and add one entry below (plus a test of what it computes):

- "token": `fn(model, batch, cfg) -> (batch, input_len) float32 token scores`, 0 on padding; `batch` holds
  input_ids, attention_mask and labels (see `attribution.gradients`). Word scores aggregate them
  (attribution.aggregation), so the cache keeps token scores.
- "word": `fn(model, feats, n_words, pad_id, batch_size, quantity) -> one tensor of word scores per example`;
  `feats` are `features.encode` rows with token_word (see `attribution.occlusion`).
- "seeded": `fn(examples, n_words, seed) -> one list of word scores per example`: no model, no target, the
  same scores for the same run seed (the random-words control).

`steps` names the function that gives, beside the scores, per-target-token ("step") scores, which
`attribution.order: aligned` needs; without it the method is refused under that order. Token kind:
`fn(model, batch, cfg) -> (token scores, (batch, target_len, input_len) step scores)` (gradients.py builds
each method's from its per-step reduction); word kind: `fn(model, feats, n_words, pad_id, batch_size,
quantity) -> (word scores, a (target_len, n_words) tensor per example)`.

`fields` are the attribution.* fields a method's scores depend on beyond those every model-based method's
shard key covers (target, quantity, order: aligned, teacher_wrong): they enter the shard cache key, so a
changed value recomputes and an unchanged one reuses the cache.

Config validation (attribution.method, analysis.methods, distill.variants, order: aligned), the doc of
attribution.method (`attrdistill config`, `--help`), the plan, the report and the dispatch of the attribution
engine read this table, always the live one: a method registered at run time is seen by all of them.
Functions are named as "module:function" and imported only when called, so this module -- and with it
`attrdistill.config` and the CLI's help -- imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

from attrdistill.errors import ConfigError
from attrdistill.registry import imported

Kind = Literal["token", "word", "seeded"]


@dataclass(frozen=True)
class AttributionMethod:
    """One attribution method: what it is, how it is called, and what its scores depend on."""

    doc: str                        # one line, no parentheses: the doc of attribution.method lists "name (doc)"
    kind: Kind                      # the calling convention of `scores` (see the module doc)
    scores: str                     # "module:function" computing its scores
    steps: str | None = None        # "module:function" also giving per-target-token scores (order: aligned)
    fields: tuple[str, ...] = ()    # attribution.* fields its scores depend on (enter the shard key)
    logit: str = "logit"            # what it measures under quantity 'logit' (occlusion: log_prob, as it always has)

    @property
    def aligned(self) -> bool:
        """Whether it gives the per-target-token scores that attribution.order: aligned needs."""
        return self.steps is not None

    @property
    def seeded(self) -> bool:
        """Seeded scores, no model: target, quantity, order and teacher_wrong do not change them, the seed does."""
        return self.kind == "seeded"

    def explained(self, quantity: str) -> str:
        """What it measures under attribution.quantity `quantity`."""
        return self.logit if quantity == "logit" else quantity

    def function(self, steps: bool = False) -> Callable[..., Any]:
        """Its score function (with `steps`: the one that also gives step scores), imported now."""
        path = self.steps if steps else self.scores
        if path is None:   # callers check `aligned` first; this is a bug, not a config to fix
            raise ValueError("this method has no `steps` function: it gives no per-target-token scores")
        return imported(path)


_GRADIENTS = "attrdistill.attribution.gradients"
_OCCLUSION = "attrdistill.attribution.occlusion"

# name -> entry; the order is that of every list of methods (choices, docs, benchmarks).
REGISTRY: dict[str, AttributionMethod] = {
    "saliency": AttributionMethod(
        doc="the paper's: L1 norm of the gradient of the mean target logit w.r.t. each input token's embedding",
        kind="token", scores=f"{_GRADIENTS}:saliency", steps=f"{_GRADIENTS}:saliency_with_steps"),
    "saliency_stepwise": AttributionMethod(
        doc="per target token the norm of its logit's gradient, l1 or l2 by attribution.norm, then the mean",
        kind="token", scores=f"{_GRADIENTS}:saliency_stepwise", steps=f"{_GRADIENTS}:saliency_stepwise_with_steps",
        fields=("norm",)),
    "input_x_gradient": AttributionMethod(
        doc="|embedding . gradient| of each input token",
        kind="token", scores=f"{_GRADIENTS}:input_x_gradient", steps=f"{_GRADIENTS}:input_x_gradient_with_steps"),
    "integrated_gradients": AttributionMethod(
        doc="|sum over dims| of integrated gradients on the path from a baseline embedding, see ig_*",
        kind="token", scores=f"{_GRADIENTS}:integrated_gradients", fields=("ig_steps", "ig_baseline")),
    "occlusion": AttributionMethod(
        doc="the drop in the target's log-probability when the word is deleted, one forward per word",
        kind="word", scores=f"{_OCCLUSION}:occlusion", steps=f"{_OCCLUSION}:occlusion_steps", logit="log_prob"),
    "random": AttributionMethod(
        doc="seeded uniform word scores: the control",
        kind="seeded", scores="attrdistill.attribution.engine:random_word_scores"),
}


def entry(name: str) -> AttributionMethod:
    """The entry of method `name`; a ConfigError naming the choices when there is none."""
    if name not in REGISTRY:
        raise ConfigError(f"attribution.method: unknown method {name!r}; expected one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def method_names() -> tuple[str, ...]:
    """Every method's name, in registry order."""
    return tuple(REGISTRY)


def aligned_names() -> tuple[str, ...]:
    """The methods that give per-target-token scores (attribution.order: aligned)."""
    return tuple(name for name, m in REGISTRY.items() if m.aligned)


def methods_doc() -> str:
    """The doc of attribution.method: every method with its one line."""
    return "Attribution method: " + "; ".join(f"{name} ({m.doc})" for name, m in REGISTRY.items()) + "."


def control() -> str:
    """The control method every run scores beside the others (the seeded one: random words)."""
    return next(name for name, m in REGISTRY.items() if m.seeded)
