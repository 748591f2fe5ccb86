"""A student you can ship: a run's student as a standalone model folder with a model card.

    export(Path("runs/default"), Path("my-student"))                  # the verdict's best student
    export(Path("runs/default"), Path("kd-1"), variant="kd", seed=1)   # or a named one

The folder holds what transformers' Auto classes load (weights, config, tokenizer, a generation config for
greedy decoding as the run evaluated it), `attrdistill.json` (the prompt format and lengths, read by
`attrdistill predict`), the run's config and a README.md model card: the task, the teacher, what the
student learned from, its test accuracy and the variant's over seeds with a 95% interval, and how to
remake and use it. By default the variant is the one the report's verdict chose on validation and the
seed its best on validation (never on test).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from attrdistill.config import RunConfig, dump_config, load_config
from attrdistill.errors import ConfigError
from attrdistill.evaluate.analysis import paired_gain
from attrdistill.pipeline.layout import Layout, student_key
from attrdistill.registry.methods import REGISTRY
from attrdistill.registry.variants import OBJECTIVES, RATIONALES, STANDARD, TERMS, parse_variant

SETTINGS_FILE = "attrdistill.json"   # what `attrdistill predict` reads beside the weights
CARD = "README.md"


def chosen(run: Path, variant: str | None = None, seed: int | None = None) -> tuple[str, int, RunConfig, dict]:
    """(variant, seed, the run's config, its metrics) of the student to export; one line for what is missing."""
    lay = Layout(run)
    if not lay.config.is_file():
        raise ConfigError(f"{run}: not a run directory (no config.yaml); make one with `attrdistill run`")
    metrics_file = run / "metrics.json"
    if not metrics_file.is_file():
        raise ConfigError(f"{metrics_file}: no such file; finish the run (`attrdistill report {run}`) first")
    cfg = load_config(lay.config)
    metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    students = metrics.get("students", {})
    variant = variant or metrics.get("verdict", {}).get("best")
    if variant not in students:
        raise ConfigError(f"--student {variant}: no such student in {run} (it has {', '.join(students) or 'none'})")
    per_seed = {int(s): a for s, a in students[variant]["per_seed"].items()}
    if seed is None:   # its best seed on validation, where validation was measured; else the first
        valid = {int(s): a for s, a in (students[variant].get("valid") or {}).get("per_seed", {}).items()}
        seed = max(valid, key=lambda s: (valid[s], -s)) if valid else min(per_seed)
    if seed not in per_seed:
        raise ConfigError(f"--seed {seed}: {variant} has no such seed in {run} (seeds {sorted(per_seed)})")
    if not (lay.model(student_key(variant, seed)) / "config.json").is_file():
        raise ConfigError(f"{lay.model(student_key(variant, seed))}: the student's model is missing; rerun "
                          f"`attrdistill distill {run}`")
    return variant, seed, cfg, metrics


def learned_from(variant: str, k: int) -> str:
    """What a variant's students learn from, in words, from the registries' docs."""
    v = parse_variant(variant)
    if variant == STANDARD:
        return "the gold labels alone (label-only training)"
    parts = [OBJECTIVES[v.objective].doc] if v.objective != "label" else ["the gold labels"]
    if v.rationale in RATIONALES:
        parts.append(f"rationales to generate beside the label: {RATIONALES[v.rationale].doc}")
    elif v.rationale in REGISTRY:
        parts.append(f"rationales to generate beside the label: the teacher's top-{v.k or k} words by "
                     f"{v.rationale} attribution")
    if v.term:
        parts.append(f"{TERMS[v.term].doc} (guided by {v.guide})")
    return "; ".join(parts)


def export(run: Path, out: Path, variant: str | None = None, seed: int | None = None) -> Path:
    """Write the student `variant`/`seed` of `run` (default: as the module's doc says) to the folder `out`."""
    variant, seed, cfg, metrics = chosen(run, variant, seed)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out}: exists and is not an empty folder; name a new one")
    lay = Layout(run)
    source = lay.model(student_key(variant, seed))
    shutil.copytree(source, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns("training_args.bin"))
    _generation_config(out, cfg)
    settings = settings_of(cfg, variant, seed, _causal(out))
    (out / SETTINGS_FILE).write_text(json.dumps(settings, indent=1) + "\n", encoding="utf-8")
    (out / "attrdistill_config.yaml").write_text(dump_config(cfg), encoding="utf-8")
    (out / CARD).write_text(card(run, cfg, metrics, variant, seed, settings), encoding="utf-8")
    return out


def settings_of(cfg: RunConfig, variant: str, seed: int, causal: bool) -> dict[str, Any]:
    """How a student is prompted and decoded (attrdistill.json): its prefixes, lengths and output format."""
    from attrdistill.modeling.features import CAUSAL_SEPARATOR  # loads torch: here, not when planning
    rationale = parse_variant(variant).rationale is not None
    two_task = rationale and cfg.distill.format == "two_task"
    return {"variant": variant, "seed": seed, "task": cfg.data.source, "causal": causal,
            "predict_prefix": cfg.data.predict_prefix, "separator": CAUSAL_SEPARATOR if causal else "",
            "explain_prefix": cfg.data.explain_prefix if two_task else None,
            "format": cfg.distill.format if rationale and not two_task else None,
            "max_input_length": cfg.student.max_input_length, "max_new_tokens": cfg.eval.max_new_tokens}


def _causal(folder: Path) -> bool:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    return not config.get("is_encoder_decoder", False)


def _generation_config(folder: Path, cfg: RunConfig) -> None:
    """Greedy decoding as the run evaluated the student (eval.max_new_tokens, one beam, no sampling)."""
    path = folder / "generation_config.json"
    gen = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    gen.update({"max_new_tokens": cfg.eval.max_new_tokens, "num_beams": 1, "do_sample": False})
    for key in ("temperature", "top_p", "top_k"):   # sampling settings would only warn under do_sample false
        gen.pop(key, None)
    path.write_text(json.dumps(gen, indent=1) + "\n", encoding="utf-8")


def _pct(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:.1f}%"


def card(run: Path, cfg: RunConfig, metrics: dict[str, Any], variant: str, seed: int,
         settings: dict[str, Any]) -> str:
    """The model card (README.md) of an exported student."""
    s = metrics["students"][variant]
    accs = [s["per_seed"][k] for k in sorted(s["per_seed"], key=int)]
    mean, low, high = paired_gain(accs, [0.0] * len(accs))   # the interval of the mean itself
    spread = (f"{_pct(mean)} ± {_pct(s['std'])}, 95% interval [{_pct(low)}, {_pct(high)}]" if len(accs) > 1
              else f"{_pct(mean)} (one seed: no spread or interval)")
    teacher = cfg.teacher.gguf_file or cfg.teacher.model or f"a {cfg.teacher.architecture} built from scratch"
    trained = "used as given" if not cfg.teacher.finetune else "fine-tuned on the task's teacher split"
    layout = (f"`{settings['predict_prefix']}` + input + a newline; the model continues with the label and its "
              "end-of-sequence token. In a `text-generation` pipeline give `return_full_text=False` and, where "
              "the tokenizer ends a text with an end-of-sequence token, `add_special_tokens=False` (the student "
              "never saw one after its prompt); `attrdistill predict` encodes exactly as the run did"
              if settings["causal"] else f"`{settings['predict_prefix']}` + input")
    explain = (f"\nIts rationale: the prompt `{settings['explain_prefix']}` + input." if settings["explain_prefix"]
               else "")
    pipeline_tag = "text-generation" if settings["causal"] else "text2text-generation"
    auto = "AutoModelForCausalLM" if settings["causal"] else "AutoModelForSeq2SeqLM"
    chosen_how = ("the verdict's best student (chosen on validation)" if metrics.get("verdict", {}).get("best") ==
                  variant else "chosen by name")
    return f"""---
library_name: transformers
pipeline_tag: {pipeline_tag}
tags: [attrdistill, knowledge-distillation]
---

# {cfg.name}: student `{variant}`, seed {seed}

A student distilled with attrdistill {metrics.get("version", "")} from the run `{run}`; {chosen_how}.

- **Task:** `data.source: {cfg.data.source}`; {metrics.get("n_test", "?")} test examples, judged as the run
  judges them (exact match; CQA by choice, SVAMP by value).
- **Teacher:** {teacher}, {trained}; test accuracy {_pct(metrics["teacher"]["accuracy"])}.
- **What it learned from:** {learned_from(variant, cfg.attribution.k)}.
- **Test accuracy:** this seed {_pct(s["per_seed"][str(seed)])}; the variant over {len(accs)} seed(s):
  {spread}.

## Use

The prompt: {layout}.{explain}

```bash
attrdistill predict DIR --input "your text"   # DIR: this folder
```

```python
from transformers import AutoTokenizer, {auto}
tok = AutoTokenizer.from_pretrained("DIR")
model = {auto}.from_pretrained("DIR")   # greedy decoding: generation_config.json
```

## Remake it

`attrdistill run attrdistill_config.yaml --out RUN` (the run's config, beside this card), then
`attrdistill export RUN --student {variant} --seed {seed} DIR`.

## Config

```yaml
{dump_config(cfg).strip()}
```
"""

