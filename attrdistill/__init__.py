"""attrdistill: attribution-guided knowledge distillation.

    import attrdistill
    rows = attrdistill.attribute(model, tok, texts, targets, method="saliency")   # word scores of any model
    metrics = attrdistill.run(overrides=["distill.seeds=[0,1]"])                  # a whole run, as `attrdistill run`
    loss = attrdistill.KDLoss(alpha=0.5, temperature=2.0)(target_logits, ce, batch)   # the losses, for your loop

A fine-tuned teacher marks the input words that drive its answer (gradient saliency); students learn from
those words, as rationales to generate or by matching their own saliency to the teacher's. The names below
are imported when first used, so `import attrdistill` (and the CLI's help) loads no torch. The package's
folders are its roles (README.md, Layout); `attrdistill/api.py` documents the Python interface.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> the module that defines it: the public Python interface.
_EXPORTS = {
    "attribute": "attrdistill.api", "run": "attrdistill.api",
    "load_config": "attrdistill.config", "RunConfig": "attrdistill.config",
    "sparse_divergence": "attrdistill.distill.kd", "kd_loss": "attrdistill.distill.kd",
    "KDLoss": "attrdistill.distill.kd",
    "token_targets": "attrdistill.distill.matching", "student_saliency": "attrdistill.distill.matching",
    "match_divergence": "attrdistill.distill.matching", "AttributionMatching": "attrdistill.distill.matching",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'attrdistill' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
