"""Registries: the only place a name is dispatched. Torch-free, so config, docs and the plan read them cheaply.

    from attrdistill.registry import methods, signals, variants
    methods.entry("occlusion").kind            # an attribution method (methods.py)
    variants.parse_variant("kd+saliency@k3")   # what a student learns from (variants.py)
    signals.SIGNALS["teacher_logits"]          # what the teacher hands its students (signals.py)

An entry names the code that computes it as "module:name", imported only when called (`imported`), so
adding one never makes this package import torch. A new method, objective, loss term, rationale source
or teacher signal is one entry here plus its code (docs/extending.md).
"""

from __future__ import annotations

import importlib
from typing import Any


def imported(path: str) -> Any:
    """The object a registry entry names by "module:name" (imported on this call)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)
