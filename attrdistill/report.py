"""The run report: report.md, a human summary of metrics.json with example rationales."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attrdistill.config import RunConfig
from attrdistill.data.example import read_examples, read_jsonl
from attrdistill.paper import paper_accuracy
from attrdistill.words import words


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def write_report(run: Path, cfg: RunConfig, metrics: dict[str, Any], n_examples: int = 5) -> Path:
    m, a = metrics, metrics["attribution"]
    seeds = cfg.distill.seeds
    lines = [f"# attrdistill run `{cfg.name}`", "",
             f"Test set: {m['n_test']} examples. Accuracy is exact match after greedy decoding, in %.", "",
             "## Accuracy", ""]
    paper = f" | paper ({cfg.paper})" if cfg.paper else ""
    lines += [f"| model | accuracy | std over seeds | seeds{paper} |", "|---" * (4 + bool(paper)) + "|",
              f"| teacher | {_pct(m['teacher']['accuracy'])} | | |" + _paper_cell(cfg, "teacher")]
    for variant, s in m["students"].items():
        lines.append(f"| student: {variant} | {_pct(s['accuracy'])} | {_pct(s['std'])} | {len(seeds)} |"
                     + _paper_cell(cfg, variant))
    standard = m["students"].get("standard")
    if standard:
        lines += ["", "Gain over the label-only student (points): " + ", ".join(
            f"{v} {100 * (s['accuracy'] - standard['accuracy']):+.1f}" for v, s in m["students"].items()
            if v != "standard")]
    lines += ["", "## Rationales", "",
              f"Method `{a['method']}`, top-{a['k']} words of {a['n_examples']} student-train examples.", ""]
    if a["recall_at_k"] is not None:
        lines += [f"Recall@{a['k']} of the task's decisive words: **{_pct(a['recall_at_k'])}%** "
                  f"(random words: {_pct(a['random_recall_at_k'])}%).", ""]
    lines += _examples(run, cfg, n_examples)
    lines += ["", "## Time per stage (seconds)", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k.removesuffix('_s')} | {v:.1f} |" for k, v in m["timing"].items()]
    path = run / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _paper_cell(cfg: RunConfig, variant: str) -> str:
    return f" {_pct(paper_accuracy(cfg.paper, variant))} |" if cfg.paper else ""


def _examples(run: Path, cfg: RunConfig, n: int) -> list[str]:
    examples = read_examples(run / "data" / "student_train.jsonl")[:n]
    by_method = {m: {r["id"]: r for r in read_jsonl(run / "attributions" / f"{m}.jsonl")}
                 for m in dict.fromkeys([cfg.attribution.method, "random"])}
    lines = ["| input | label | " + " | ".join(by_method) + (" | decisive |" if examples[0].decisive else " |"),
             "|---" * (2 + len(by_method) + bool(examples[0].decisive)) + "|"]
    for ex in examples:
        cells = [ex.input, ex.label] + [by_method[m][ex.id]["rationale"] for m in by_method]
        if ex.decisive:
            cells.append(", ".join(words(ex.input)[i] for i in ex.decisive))
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", "<br>") for c in cells) + " |")
    return lines
