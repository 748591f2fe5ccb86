"""The run report: report.md and a self-contained report.html, rendered from the same sections.

    write_report(run, cfg, metrics)   # RUN/report.md, RUN/report.html, figures in RUN/report_files/

`sections()` gathers what the report says (accuracy per model beside the paper's, training
curves, the analyses of metrics["analyses"], rationale heat-maps, time per stage) as blocks:
paragraphs, notes, tables, figures and heat-maps. `markdown()` and `html()` only render them, so
the two files agree. Figures are PNG files, linked from the markdown and embedded as data URIs in
the HTML (it needs no network); what lacks its input becomes a one-line note instead.
"""

from __future__ import annotations

import base64
import html as _html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Union

from attrdistill.config import RunConfig
from attrdistill.distill.rows import student_pool
from attrdistill.evaluate.analysis import paired_gain
from attrdistill.modeling.words import words
from attrdistill.pipeline.layout import TEACHER, TRAIN, Layout, attribution_methods, student_key
from attrdistill.pipeline.records import attribution_rows
from attrdistill.registry.methods import REGISTRY
from attrdistill.registry.variants import STANDARD, TERMS, parse_variant
from attrdistill.report import heatmap, plots
from attrdistill.report.metrics import TIE, baselines, choose
from attrdistill.report.paper import paper_accuracy


class Note(str):
    """A one-line remark, e.g. what was left out and why."""


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Figure:
    path: Path      # a PNG under RUN/report_files
    caption: str


@dataclass
class Heat:
    caption: str
    words: list[str]
    scores: list[float]
    top: list[int]
    truth: list[int] = field(default_factory=list)


Block = Union[str, Table, Figure, Heat]   # str: a paragraph; `code` and **bold** marks as in markdown


@dataclass
class Section:
    title: str
    blocks: list[Block]


def write_report(run: Path, cfg: RunConfig, metrics: dict[str, Any], n_examples: int = 5) -> Path:
    """Write RUN/report.md and RUN/report.html (figures in RUN/report_files/); returns report.md's path."""
    lay = Layout(run)
    for old in lay.figures.glob("*.png"):   # a figure whose input has gone must not linger
        old.unlink()
    parts = sections(run, cfg, metrics, n_examples)
    lay.report_md.write_text(markdown(f"attrdistill run `{cfg.name}`", parts), encoding="utf-8")
    lay.report_html.write_text(html(f"attrdistill run: {cfg.name}", parts), encoding="utf-8")
    return lay.report_md


# ---- what the report says --------------------------------------------------------------------

def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def _dec(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _pm(mean: float | None, std: float | None) -> str:
    return "n/a" if mean is None else _pct(mean) + ("" if std is None else f" ± {_pct(std)}")


def _points(x: float | None, base: float | None) -> str:
    return "" if x is None or base is None else f"{100 * (x - base):+.1f}"


def _paired_gain(student: dict[str, Any], base: dict[str, Any] | None) -> str:
    """The gain of `student` over `base` in points, and its 95% interval over the seeds both have (two or more)."""
    if base is None:
        return ""
    text = _points(student["accuracy"], base["accuracy"])
    mine, theirs = student.get("per_seed") or {}, base.get("per_seed") or {}
    seeds = [s for s in mine if s in theirs]
    if len(seeds) >= 2:
        _, low, high = paired_gain([mine[s] for s in seeds], [theirs[s] for s in seeds])
        text += f" [{100 * low:+.1f}, {100 * high:+.1f}]"
    return text


def _figure(run: Path, name: str, draw: Callable[[Path], Path | None], caption: str, missing: str) -> Block:
    """The figure `draw` writes to RUN/report_files/<name>.png, or a note when it has nothing to draw."""
    path = Layout(run).figures / f"{name}.png"
    return Figure(path, caption) if draw(path) is not None else Note(missing)


def sections(run: Path, cfg: RunConfig, metrics: dict[str, Any], n_examples: int = 5) -> list[Section]:
    """What the report says, in order; draws the figures into RUN/report_files/ on the way."""
    an = metrics.get("analyses") or {}
    out = [_verdict(metrics["verdict"], metrics["students"])] if metrics.get("verdict") else []
    out += [_accuracy(run, cfg, metrics, an.get("teacher_gap")), _curves(run, cfg, metrics)]
    if an.get("methods"):
        out.append(_methods(an["methods"], len(cfg.distill.seeds), metrics["students"]))
    if an.get("k_sweep"):
        out.append(_k_sweep(run, an["k_sweep"], len(cfg.distill.seeds)))
    if an.get("faithfulness"):
        out.append(_faithfulness(run, an["faithfulness"]))
    if an.get("human_agreement"):
        out.append(Section("Agreement with human highlights", [
            "Rationale words against the human-highlighted words, in %.",
            Table(["method", "precision", "recall", "F1", "macro F1", "AUPRC", "n"],
                  [[m, _pct(v.get("precision")), _pct(v.get("recall")), _pct(v.get("f1")), _pct(v.get("macro_f1")),
                    _pct(v.get("auprc")), str(v.get("n", "n/a"))] for m, v in an["human_agreement"].items()])]))
    if an.get("answer_overlap"):
        out.append(Section("Rationales and the answer", [
            "How much the rationales overlap the answer's words, in %.",
            Table(["method", "answer overlap"], [[m, _pct(v)] for m, v in an["answer_overlap"].items()])]))
    if an.get("prediction_overlap"):
        out.append(Section("Do the students get the same examples right?", [
            "Test examples student a gets right (wrong), and how often student b does too (makes the same mistake).",
            Table(["student a", "student b", "a right", "b also right (%)", "a wrong", "b same mistake (%)"],
                  [[r["a"], r["b"], str(r.get("n_a_right", "n/a")), _pct(r.get("right_also_right")),
                    str(r.get("n_a_wrong", "n/a")), _pct(r.get("wrong_same_wrong"))]
                   for r in an["prediction_overlap"]])]))
    return out + [_rationales(run, cfg, metrics, n_examples), _timing(run, metrics.get("timing") or {})]


def _interval(v: dict[str, Any], seeds: int) -> str:
    return f"95% interval over {seeds} paired seeds: {100 * v['low']:+.1f} to {100 * v['high']:+.1f}"


def _verdict(v: dict[str, Any], students: dict[str, dict]) -> Section:
    """The answer first: which student is best (chosen on validation), by how much over standard and kd on test,
    against what spread; the student best on test where it is another; an example."""
    head = f"**Best student: `{v['best']}`, {_pm(v['accuracy'], v['std'] if v['seeds'] > 1 else None)}% on test"
    if v.get("gain") is None:
        head += "**" + (" (the label-only student is best)." if v["best"] == STANDARD else ".")
    else:
        head += f", {100 * v['gain']:+.1f} points over `{STANDARD}`**"
        head += (f" ({_interval(v, v['seeds'])})." if v.get("low") is not None else
                 " with one seed: no interval. A student's seed-to-seed spread can exceed such a gap (10-20 points on "
                 "the built-in task at a few hundred examples); set `distill.seeds` to five seeds or more before "
                 "trusting it.")
    for base, g in (v.get("over") or {}).items():
        if base != STANDARD:
            head += (f" Over `{base}`: {100 * g['gain']:+.1f} points ("
                     + (_interval(g, v["seeds"]) if g.get("low") is not None else "one seed: no interval") + ").")
    blocks: list[Block] = [head]
    seeds = f"the {v['seeds']} seeds" if v["seeds"] > 1 else "its one seed"
    if v.get("chosen_on") == "validation":
        blocks.append(f"Chosen on validation: the highest mean validation accuracy over {seeds} "
                      f"({_pm(v['valid_accuracy'], v['valid_std'] if v['seeds'] > 1 else None)}%); test played no "
                      "part in the choice, so the test figures above are not inflated by it.")
    elif v.get("chosen_on") == "test":
        blocks.append(Note("Chosen on test, as no validation accuracy was found for "   # a note is plain text
                           + ", ".join(v.get("no_valid") or [])
                           + ": the best of several test accuracies overstates what that student would score, "
                           "and its interval is too narrow."))
    if v.get("tied"):
        names = [f"`{x}`" for x in [v["best"], *v["tied"]]]
        on = "Test" if v.get("chosen_on") == "test" else "Validation"
        blocks.append(f"{on} ties within {100 * TIE:.1f} point between {', '.join(names[:-1])} and {names[-1]}: "
                      f"the simpler variant (fewer parts), `{v['best']}`, is chosen.")
    other = v.get("best_on_test")
    if other and other != v["best"] and other in students:
        valid = (students[other].get("valid") or {}).get("accuracy")
        blocks.append(Note(f"Best on test: {other} ({_pct(students[other]['accuracy'])}% on test"
                           + (f", {_pct(valid)}% on validation" if valid is not None else "")
                           + "), not the verdict: picking the highest of several test accuracies overstates it."))
    if v.get("still_rising"):
        blocks.append(Note("Still improving when training stopped (the last fifth of evaluations beat the best "
                           "before them by over 2 points): " + ", ".join(v["still_rising"])
                           + "; a longer schedule (student.train.max_steps) may change the order."))
    ex = v.get("example")
    if ex and ex["rationales"]:
        blocks += [f"What each student was taught, on student-train example `{ex['id']}` (label: `{ex['label']}`): "
                   f"\"{ex['input']}\"",
                   Table(["student", "rationale"],
                         [[name + _guided(name), text] for name, text in ex["rationales"].items()])]
    return Section("Verdict", blocks)


def _guided(variant: str) -> str:
    """' (what its words are)' for a student with a loss term, whose shown words guide it rather than its output."""
    term = parse_variant(variant).term
    return f" ({TERMS[term].shown})" if term and TERMS[term].shown else ""


def _accuracy(run: Path, cfg: RunConfig, m: dict[str, Any], gap: dict[str, float] | None) -> Section:
    students, seeds = m["students"], [str(s) for s in cfg.distill.seeds]
    paper_base = paper_accuracy(cfg.paper, "standard")
    f1 = any(s.get("rationale_f1") is not None for s in students.values())
    valid = any(s.get("valid") for s in students.values())
    # The gain every practitioner asks for (over label-only training) and, where kd ran, over plain logit KD.
    compared = baselines(students) or [STANDARD]
    header = ["model", "accuracy", "std", "seeds", "per seed"]
    header += (["valid", "valid per seed (step kept)"] if valid else []) + [f"vs {b}" for b in compared]
    header += (["rationale F1"] if f1 else []) + ([f"paper ({cfg.paper})", "paper vs standard"] if cfg.paper else [])
    teacher_valid = [_pct(m["teacher"].get("best_valid_accuracy")), ""] if valid else []
    rows = [["teacher", _pct(m["teacher"]["accuracy"]), "", "", "", *teacher_valid, *("" for _ in compared)]
            + ([""] if f1 else []) + ([_pct(paper_accuracy(cfg.paper, "teacher")), ""] if cfg.paper else [])]
    for variant, s in students.items():
        per_seed = s.get("per_seed") or {}
        one_seed = len(per_seed or seeds) < 2   # no spread and no interval from one seed: shown empty, not 0.0
        row = [f"student: {variant}", _pct(s["accuracy"]), "" if one_seed else _pct(s.get("std")),
               str(len(per_seed) or len(seeds)),
               ", ".join(_pct(v) for v in per_seed.values())]
        if valid:
            row += _valid_cells(s.get("valid"), one_seed)
        row += ["" if variant == b else _paired_gain(s, students.get(b)) for b in compared]
        if f1:
            row.append("" if s.get("rationale_f1") is None else f"{s['rationale_f1']:.2f}")
        if cfg.paper:
            paper = paper_accuracy(cfg.paper, variant)
            row += [_pct(paper), "" if variant == "standard" else _points(paper, paper_base)]
        rows.append(row)
    chart = {"teacher": (m["teacher"]["accuracy"], None, paper_accuracy(cfg.paper, "teacher"))}
    chart.update({v: (s["accuracy"], s.get("std"), paper_accuracy(cfg.paper, v)) for v, s in students.items()})
    seen = m.get("student_examples") or {}
    subset = (f"Students learned from {seen.get('seen')} of the {seen.get('of')} student-train examples "
              "(distill.student_limit, a shuffle seeded by data.seed). " if seen.get("limit") else "")
    if seen.get("teacher_labelled") is not None:
        subset += (f"Of the student-train examples, {seen['teacher_labelled']} are data.transfer_file's inputs with "
                   "the teacher's greedy outputs as their labels. ")
    if seen.get("file"):
        subset += f"The student-train examples are data.student_train_file's ({seen['file']}), not the teacher's. "
    legend = (f"{subset}Test set: {m.get('n_test', 'n/a')} examples. Accuracy is exact match after greedy decoding, "
              "in %; std and per-seed values over the student seeds; 'vs standard' is the gain over the label-only "
              "student in points ('vs kd' over the logit-KD student), with its 95% t-interval over the paired seeds "
              "where there are two or more")
    if valid:
        legend += ("; 'valid': the validation accuracy of the checkpoint training kept (its best), mean ± std over "
                   "seeds, and per seed with that checkpoint's step (the verdict chooses on it)")
    if f1:
        n_test = m.get("n_test")
        scored = sorted({s.get("rationale_n", n_test) for s in students.values() if s.get("rationale_f1") is not None})
        on = "the test inputs" if scored == [n_test] else f"the first {', '.join(map(str, scored))} test inputs"
        legend += (f"; 'rationale F1': word F1 of the rationales a student generates for {on} against "
                   "those it would have been taught (if it cannot produce them, they cannot help it)")
    blocks: list[Block] = [
        legend + ".", Table(header, rows),
        _figure(run, "accuracy", lambda p: plots.accuracy(chart, p),
                "Test accuracy per model, ± std over seeds" + ("; diamonds: the paper's." if cfg.paper else "."),
                "No accuracy chart: no models.")]
    if gap:
        blocks += ["Gap to the teacher, in points:",
                   Table(["student", "teacher gap"], [[v, _pct(g)] for v, g in gap.items()])]
    return Section("Accuracy", blocks)


def _valid_cells(v: dict[str, Any] | None, one_seed: bool) -> list[str]:
    """The 'valid' and 'valid per seed (step kept)' cells of a student."""
    if not v:
        return ["n/a", ""]
    steps = v.get("kept_step") or {}
    return [_pm(v["accuracy"], None if one_seed else v.get("std")),
            ", ".join(_pct(acc) + ("" if steps.get(seed) is None else f" ({steps[seed]})")
                      for seed, acc in (v.get("per_seed") or {}).items())]


def _history(path: Path) -> list[dict] | None:
    try:
        history = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return history if isinstance(history, list) else None


def _curves(run: Path, cfg: RunConfig, m: dict[str, Any]) -> Section:
    lay = Layout(run)
    keys = {"teacher": [TEACHER]}
    keys.update({v: [student_key(v, s) for s in cfg.distill.seeds] for v in m["students"]})
    histories = {name: [h for k in ks if (h := _history(lay.history(k))) is not None]
                 for name, ks in keys.items()}
    histories = {name: hs for name, hs in histories.items() if hs}
    return Section("Training", [_figure(
        run, "curves", lambda p: plots.curves(histories, p),
        "Training loss (left) and validation accuracy (right) per model, one line per seed.",
        "No training curves: no log_history.json with losses under teacher/ or students/.")])


def _methods(methods: dict[str, dict], n_seeds: int, students: dict[str, dict]) -> Section:
    def std(v: dict[str, Any]) -> float | None:
        return v.get("student_std") if n_seeds > 1 else None   # one seed: no spread to show
    rows = [[name, _pct(v.get("recall_at_k")), _dec(v.get("comprehensiveness")), _dec(v.get("sufficiency")),
             _pm(v.get("student_accuracy"), std(v))] for name, v in methods.items()]
    blocks: list[Block] = [
        "One row per attribution method: recall@k of the task's decisive words (%), faithfulness to the teacher "
        "(comprehensiveness: drop in p(target) without the rationale, higher is better; sufficiency: drop with "
        "only the rationale, lower is better) and the test accuracy (%) of the student distilled with its "
        "rationales, mean ± std over seeds.",
        Table(["method", "recall@k", "comprehensiveness", "sufficiency", "student accuracy"], rows)]
    scored = {name: v["student_accuracy"] for name, v in methods.items() if v.get("student_accuracy") is not None}
    valid = {name: students[name]["valid"]["accuracy"] for name in scored if (students.get(name) or {}).get("valid")}
    if scored and len(valid) == len(scored):   # as the verdict: chosen on validation, its test accuracy shown
        best = choose(valid)[0]
        blocks.append(f"Best student: **{best}** ({_pm(scored[best], std(methods[best]))} on test; chosen on "
                      f"validation, {_pct(valid[best])}).")
    elif scored:
        best = max(scored, key=scored.get)
        blocks.append(f"Best student: **{best}** ({_pm(scored[best], std(methods[best]))}; chosen on test: no "
                      "validation accuracy).")
    return Section("Which attribution method to distil with", blocks)


def _k_sweep(run: Path, sweep: dict[str, Any], n_seeds: int) -> Section:
    method, points = sweep.get("method", "saliency"), sweep.get("points") or []
    return Section("Accuracy against k", [
        f"Students distilled with the top-k `{method}` words for each k (test accuracy, %).",
        _figure(run, "k_sweep", lambda p: plots.k_sweep(points, method, p),
                "Student test accuracy against k, ± std over seeds.", "No k-sweep plot: no points with an accuracy."),
        Table(["k", "accuracy", "std"], [[str(p["k"]), _pct(p.get("accuracy")),
                                          _pct(p.get("std")) if n_seeds > 1 else ""] for p in points])])


def _faithfulness(run: Path, faith: dict[str, dict]) -> Section:
    return Section("Faithfulness", [
        "How much the teacher's mean log-probability of its target tokens drops when the rationale words are "
        "removed (comprehensiveness, higher is better) or are all that is kept (sufficiency, lower is better), "
        "averaged over the removed shares of words (AOPC).",
        _figure(run, "faithfulness", lambda p: plots.faithfulness(faith, p),
                "Comprehensiveness and sufficiency per attribution method.", "No faithfulness plot: no values."),
        Table(["method", "comprehensiveness", "sufficiency", "n"],
              [[name, _dec(v.get("comprehensiveness")), _dec(v.get("sufficiency")), str(v.get("n", "n/a"))]
               for name, v in faith.items()])])


def _attribution_methods(run: Path, cfg: RunConfig) -> list[str]:
    """The methods the plan attributed whose rows are there: the configured method first, the controls last (files
    an older config left in the folder are not this run's)."""
    planned = attribution_methods(cfg)
    seeded = [m for m in planned if REGISTRY[m].seeded]
    order = [cfg.attribution.method] + [m for m in planned if m not in seeded] + seeded
    return [m for m in dict.fromkeys(order) if Layout(run).attributions(m).is_file()]


def _rationales(run: Path, cfg: RunConfig, m: dict[str, Any], n: int) -> Section:
    a = m.get("attribution") or {}
    blocks: list[Block] = []
    if a:
        blocks.append(f"Method `{a['method']}`, top-{a['k']} words of {a['n_examples']} student-train examples.")
        if a.get("recall_at_k") is not None:
            blocks.append(f"Recall@{a['k']} of the task's decisive words: **{_pct(a['recall_at_k'])}%** "
                          f"(random words: {_pct(a.get('random_recall_at_k'))}%).")
    train = Layout(run).split(TRAIN)
    methods = _attribution_methods(run, cfg)
    if not train.is_file() or not methods:
        blocks.append(Note("No examples: data/student_train.jsonl or attributions/ is missing."))
        return Section("Rationales", blocks)
    examples = student_pool(run, cfg)[:n]   # the examples the teacher attributed (distill.student_limit)
    rows = {meth: {r.id: r for r in attribution_rows(run, meth)} for meth in methods}
    decisive = any(ex.decisive for ex in examples)
    shaded = [meth for meth in methods if not REGISTRY[meth].seeded] or methods   # random scores are noise to look at
    table = Table(["input", "label"] + methods + (["decisive"] if decisive else []), [])
    heat: list[Block] = []
    for ex in examples:
        truth = ex.decisive or []
        taught = [r.rationale if (r := rows[meth].get(ex.id)) else "n/a" for meth in methods]
        table.rows.append([ex.input, ex.label] + taught
                          + ([", ".join(words(ex.input)[i] for i in truth)] if decisive else []))
        for meth in shaded:
            row = rows[meth].get(ex.id)
            if row is None:
                continue
            heat.append(Heat(f"{ex.id} · {meth} · gold: {ex.label} · explained: {row.target}",
                             row.words, row.scores, row.top, truth))
    legend = ("Word shade: attribution score relative to the example's highest; **bold underlined**: the top-k "
              "rationale words" + ("; dashed box: the task's decisive words." if decisive else "."))
    return Section("Rationales", blocks + [table, "Heat-maps of the word scores. " + legend] + heat)


def _timing(run: Path, timing: dict[str, float]) -> Section:
    precision = _precision(run)
    if not timing:
        return Section("Time per stage", [Note("No timings."), *precision])
    total = sum(timing.values()) or 1.0
    rows = [[k.removesuffix("_s"), f"{v:.1f}", f"{100 * v / total:.0f}"] for k, v in timing.items()]
    return Section("Time per stage", [Table(["stage", "seconds", "share (%)"],
                                            rows + [["total", f"{sum(timing.values()):.1f}", "100"]]), *precision])


def _precision(run: Path) -> list[Block]:
    """The compute dtype each role ran in, as environment.json recorded it (`dtype: auto` resolved)."""
    try:
        dtypes = json.loads(Layout(run).environment.read_text(encoding="utf-8")).get("dtype") or {}
    except (OSError, ValueError):
        return []
    return [f"Compute dtype: {', '.join(f'{role} {d}' for role, d in dtypes.items())}."] if dtypes else []


# ---- markdown ---------------------------------------------------------------------------------

def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def _md_word(word: str) -> str:
    return re.sub(r"([\\`*_\[\]<>|#])", r"\\\1", word)


def markdown(title: str, parts: list[Section]) -> str:
    """report.md: figures as links to report_files/, heat-maps as text with the top-k words in bold."""
    lines = [f"# {title}", ""]
    for sec in parts:
        lines += [f"## {sec.title}", ""]
        for b in sec.blocks:
            if isinstance(b, Note):
                lines.append(f"_{b}_")
            elif isinstance(b, str):
                lines.append(b)
            elif isinstance(b, Table):
                lines += ["| " + " | ".join(map(_md_cell, b.header)) + " |", "|---" * len(b.header) + "|"]
                lines += ["| " + " | ".join(map(_md_cell, r)) + " |" for r in b.rows]
            elif isinstance(b, Figure):
                lines.append(f"![{b.caption}]({b.path.parent.name}/{b.path.name})")
            else:
                top = set(b.top)
                lines += [f"{b.caption}  ", "> " + " ".join(f"**{_md_word(w)}**" if i in top else _md_word(w)
                                                           for i, w in enumerate(b.words))]
            lines.append("")
    return "\n".join(lines)


# ---- HTML ---------------------------------------------------------------------------------------

STYLE = """
body { max-width: 64rem; padding: 0 1.5rem; line-height: 1.45; }
h1 { font-size: 1.7rem; margin-bottom: 0.3rem; }
h2 { font-size: 1.3rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; margin-top: 2.2rem; }
nav { font-size: 0.9rem; } nav a { margin-right: 0.9rem; color: #1d4ed8; text-decoration: none; white-space: nowrap; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.6rem 0 1rem; font-size: 0.92rem; }
th, td { padding: 0.3rem 0.7rem; border-bottom: 1px solid #e5e5e5; text-align: left; vertical-align: top; }
th { background: #f4f4f5; border-bottom: 2px solid #ccc; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafafa; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption, .note { color: #555; font-size: 0.9rem; }
.note { font-style: italic; }
.example { margin: 0.6rem 0; padding: 0.2rem 0.8rem; border-left: 3px solid #dc2626; background: #fcfcfc; }
.example .heat { margin: 0.2rem 0 0.4rem; }
code { background: #f4f4f5; padding: 0 0.2rem; border-radius: 0.2rem; }
"""
_NUMBER = re.compile(r"^(n/a|[+-]?\d[\d., ]*( ± [\d.]+)?)$")


def _inline(text: str) -> str:
    """Escaped text with markdown's `code` and **bold** marks as HTML."""
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", _html.escape(text))
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _td(cell: str) -> str:
    return f'<td class="num">{_html.escape(cell)}</td>' if _NUMBER.match(cell) else f"<td>{_html.escape(cell)}</td>"


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _html_block(b: Block) -> str:
    if isinstance(b, Note):
        return f'<p class="note">{_html.escape(b)}</p>'
    if isinstance(b, str):
        return f"<p>{_inline(b)}</p>"
    if isinstance(b, Table):
        head = "".join(f"<th>{_html.escape(h)}</th>" for h in b.header)
        body = "".join("<tr>" + "".join(map(_td, r)) + "</tr>" for r in b.rows)
        return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    if isinstance(b, Figure):
        data = base64.b64encode(b.path.read_bytes()).decode("ascii")
        alt = _html.escape(b.caption)
        return (f'<figure><img src="data:image/png;base64,{data}" alt="{alt}">'
                f"<figcaption>{alt}</figcaption></figure>")
    return (f'<div class="example"><p class="meta">{_html.escape(b.caption)}</p>'
            f"{heatmap.html_words(b.words, b.scores, b.top, b.truth)}</div>")


def html(title: str, parts: list[Section]) -> str:
    """report.html: one self-contained page (inline CSS, figures as data URIs, every text escaped)."""
    nav = "<nav>" + " ".join(f'<a href="#{_slug(s.title)}">{_html.escape(s.title)}</a>' for s in parts) + "</nav>"
    body = [nav] + [f'<section id="{_slug(s.title)}"><h2>{_html.escape(s.title)}</h2>\n'
                    + "\n".join(map(_html_block, s.blocks)) + "</section>" for s in parts]
    return heatmap.html_page(body, title=title, style=STYLE)
