"""Use a distilled student: its labels (and, for a rationale student, its rationales) for new inputs.

    predict_inputs(Path("my-student"), ["Premise: ...\\nHypothesis: ..."])   # [{"input", "label"[, "rationale"]}]
    attrdistill predict my-student --input "a text"                          # or a run: its best student
    attrdistill predict runs/default --file inputs.jsonl --out predictions.jsonl

A target is a folder written by `attrdistill export` (its attrdistill.json says the prompt format) or a run
directory (the student `export` would choose). Decoding is greedy and batched by length, as the run's
evaluation decodes, so an exported student reproduces the run's test predictions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from attrdistill.data.example import read_jsonl_lines
from attrdistill.errors import ConfigError, DataError
from attrdistill.ship.export import SETTINGS_FILE, chosen, settings_of


def load(target: Path) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, settings) of an exported student folder, or of a run's chosen student."""
    from attrdistill.modeling.models import load_trained
    from attrdistill.pipeline.layout import Layout, student_key
    if (target / SETTINGS_FILE).is_file():
        settings = json.loads((target / SETTINGS_FILE).read_text(encoding="utf-8"))
        model, tok = load_trained(target)
        return model, tok, settings
    if Layout(target).config.is_file():
        variant, seed, cfg, _ = chosen(target)
        model, tok = load_trained(Layout(target).model(student_key(variant, seed)), cfg.student.dtype)
        return model, tok, settings_of(cfg, variant, seed, not model.config.is_encoder_decoder)
    raise ConfigError(f"{target}: neither an exported student (no {SETTINGS_FILE}) nor a run directory (no "
                      "config.yaml)")


def predict_inputs(target: Path, inputs: Sequence[str], batch_size: int = 32) -> list[dict[str, str]]:
    """Per input: the student's label and, for a rationale student, its rationale."""
    from attrdistill.evaluate.answers import answer_of, rationale_of
    from attrdistill.evaluate.predict import predict
    empty = next((i for i, text in enumerate(inputs) if not text.strip()), None)
    if empty is not None:
        raise DataError(f"input {empty + 1} is empty")
    model, tok, st = load(target)
    outputs = predict(model, tok, [st["predict_prefix"] + x for x in inputs], batch_size, st["max_new_tokens"],
                      st["max_input_length"])
    rows = []
    if st.get("explain_prefix"):   # two tasks: the rationale has its own prompt
        rationales = predict(model, tok, [st["explain_prefix"] + x for x in inputs], batch_size,
                             st["max_new_tokens"], st["max_input_length"])
        rows = [{"input": x, "label": o, "rationale": r} for x, o, r in zip(inputs, outputs, rationales)]
    elif st.get("format"):   # one sequence holds the rationale and the label
        rows = [{"input": x, "label": answer_of(o), "rationale": rationale_of(o)} for x, o in zip(inputs, outputs)]
    else:
        rows = [{"input": x, "label": o} for x, o in zip(inputs, outputs)]
    return rows


def read_inputs(path: Path, field: str = "input") -> list[str]:
    """The `field` of each row of a .jsonl file (or each non-blank line of a .txt file); bad rows refused with
    file and line before any model loads."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".txt":
        texts = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        texts = []
        for n, row in read_jsonl_lines(path):
            value = row.get(field)
            if not isinstance(value, str) or not value.strip():
                raise DataError(f"{path}:{n}: expected a non-empty text in the field {field!r}")
            texts.append(value)
    if not texts:
        raise DataError(f"{path}: no inputs (the file is empty)")
    return texts
