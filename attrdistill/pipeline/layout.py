"""A run directory's layout: every path in it and every unit key, in one place.

    lay = Layout(run)
    lay.split("student_train")              # RUN/data/student_train.jsonl
    lay.attributions("saliency", "test")    # RUN/attributions/test/saliency/rows.jsonl
    student_key("kd", 0)                    # "students/kd/seed0": a unit key is its folder under RUN
    student_variants(cfg)                   # which students a config trains (distill.variants and the k sweep)

Unit keys are folders relative to the run directory, so a key and its path never disagree; they are part
of every fingerprint, so they never change (runs made before stay valid). Which units a config has (its
methods, students and models) is read from the registries here, torch-free, for the plan, the metrics and
the report alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from attrdistill.config import RunConfig
from attrdistill.data.example import TRANSFER, Example, read_examples
from attrdistill.registry.methods import REGISTRY, control
from attrdistill.registry.variants import parse_variant

DATA, TEACHER, ANALYSES, REPORT = "data", "teacher", "analyses", "report"
MODEL, HISTORY = "model", "log_history.json"   # what a unit that trains a model writes in its folder
TRAIN = "student_train"   # the split students learn from (attributions and teacher signals are made on it)


def attribution_key(method: str, split: str = TRAIN) -> str:
    """attributions/<method> (student_train) or attributions/<split>/<method>."""
    return f"attributions/{method}" if split == TRAIN else f"attributions/{split}/{method}"


def student_key(variant: str, seed: int) -> str:
    return f"students/{variant}/seed{seed}"


def prediction_key(model: str) -> str:
    return f"predictions/{model}"


@dataclass(frozen=True)
class Layout:
    """Where a run directory keeps everything."""

    root: Path

    def unit(self, key: str) -> Path:
        return self.root / key

    def split(self, name: str) -> Path:
        return self.root / DATA / f"{name}.jsonl"

    @property
    def tokenizer(self) -> Path:
        """The task's word-level tokenizer (from-scratch models)."""
        return self.root / DATA / "tokenizer"

    def model(self, key: str = TEACHER) -> Path:
        """The saved model of a unit that trains one (the teacher, a student)."""
        return self.root / key / MODEL

    def attributions(self, method: str, split: str = TRAIN) -> Path:
        return self.root / attribution_key(method, split) / "rows.jsonl"

    def signal(self, name: str) -> Path:
        """A teacher signal's rows (registry.signals)."""
        return self.root / name / f"{TRAIN}.jsonl"

    def predictions(self, model: str) -> Path:
        return self.root / prediction_key(model) / "test.jsonl"

    def history(self, key: str) -> Path:
        """The training log of a unit that trains a model."""
        return self.root / key / HISTORY

    transfer_labels = property(lambda self: self.root / TRANSFER / "rows.jsonl")   # the teacher-labelled inputs
    attribution_cache = property(lambda self: self.root / "attribution_cache")
    kd_cache = property(lambda self: self.root / "kd_cache")
    config = property(lambda self: self.root / "config.yaml")
    environment = property(lambda self: self.root / "environment.json")
    log = property(lambda self: self.root / "log.txt")
    metrics = property(lambda self: self.root / "metrics.json")
    report_md = property(lambda self: self.root / "report.md")
    report_html = property(lambda self: self.root / "report.html")
    figures = property(lambda self: self.root / "report_files")


# ---- which units a config has -------------------------------------------------------------------------

def attribution_methods(cfg: RunConfig) -> list[str]:
    """Every method the attribute stage scores: the configured one, the control (random words), the variants'
    rationale sources and guides, and analysis.methods."""
    named = [m for v in cfg.distill.variants for m in (parse_variant(v).rationale, parse_variant(v).guide)]
    return list(dict.fromkeys([cfg.attribution.method, control()] + [m for m in named if m in REGISTRY]
                              + cfg.analysis.methods))


def student_variants(cfg: RunConfig) -> list[str]:
    """distill.variants plus the k sweep's students, named '<method>@k<k>'."""
    sweep = [f"{cfg.attribution.method}@k{k}" for k in cfg.analysis.k_sweep if k != cfg.attribution.k]
    return list(dict.fromkeys(cfg.distill.variants + sweep))


def student_methods(cfg: RunConfig) -> list[str]:
    """The attribution methods whose rationales some student learns: the test split is attributed with them too,
    so that evaluation can say how well each student reproduces the rationale it was taught."""
    return list(dict.fromkeys(m for v in student_variants(cfg) if (m := parse_variant(v).rationale) in REGISTRY))


def models(cfg: RunConfig) -> dict[str, tuple[str, str | None]]:
    """name -> (unit key, student variant or None) of every trained model: the teacher, then '<variant>-seed<n>'."""
    out: dict[str, tuple[str, str | None]] = {"teacher": (TEACHER, None)}
    for variant in student_variants(cfg):
        for seed in cfg.distill.seeds:
            out[f"{variant}-seed{seed}"] = (student_key(variant, seed), variant)
    return out


def load_split(run: Path, split: str) -> list[Example]:
    """One split of the run's data (RUN/data/<split>.jsonl)."""
    return read_examples(Layout(run).split(split))
