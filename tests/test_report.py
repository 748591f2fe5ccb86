"""The run report as a reader sees it: report.md, and report.html rendered by headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from attrdistill.config import load_config
from attrdistill.data import write_jsonl
from attrdistill.data.example import Example
from attrdistill.modeling.words import words
from attrdistill.pipeline.layout import (
    TEACHER,
    Layout,
    attribution_key,
    attribution_methods,
    prediction_key,
    student_key,
)
from attrdistill.pipeline.runner import Unit
from attrdistill.registry.variants import OBJECTIVES, STANDARD
from attrdistill.report.document import write_report
from attrdistill.report.metrics import choose, collect_metrics, parts

INPUTS = ["Lucy packed a ladder and Leo walked to the reef.", "Ben took the tent, and Omar walked to the summit.",
          "Grace left a pear at home; the wind was cold.", "Tom carried the brush to the desert.",
          "Anna packed a needle & walked to the valley.", "Maria walked to the studio."]

ANALYSES = {
    "k_sweep": {"method": "saliency", "points": [{"k": 1, "accuracy": 0.52, "std": 0.03},
                                                 {"k": 3, "accuracy": 0.58, "std": 0.05},
                                                 {"k": 5, "accuracy": 0.55, "std": 0.04}]},
    "answer_overlap": {"saliency": 0.68, "random": 0.21},
    "prediction_overlap": [{"a": "saliency", "b": "standard", "n_a_right": 120, "n_a_wrong": 80,
                            "right_also_right": 0.8, "wrong_same_wrong": 0.3}],
    "teacher_gap": {"standard": 0.12, "saliency": 0.10},
    "faithfulness": {"saliency": {"comprehensiveness": 0.4, "sufficiency": 0.1, "n": 300},
                     "random": {"comprehensiveness": 0.05, "sufficiency": 0.35, "n": 300}},
    "human_agreement": {"saliency": {"precision": 0.3, "recall": 0.4, "f1": 0.34, "macro_f1": 0.33,
                                     "auprc": 0.5, "n": 300}},
    "methods": {"saliency": {"recall_at_k": 0.88, "comprehensiveness": 0.4, "sufficiency": 0.1,
                             "student_accuracy": 0.6, "student_std": 0.05},
                "oracle": {"recall_at_k": 1.0, "comprehensiveness": None, "sufficiency": None,
                           "student_accuracy": 0.7, "student_std": 0.02},
                "random": {"recall_at_k": 0.16, "comprehensiveness": 0.05, "sufficiency": 0.35,
                           "student_accuracy": None, "student_std": None}},
}


def _metrics(analyses: dict | None = None) -> dict:
    students = {"standard": {"accuracy": 0.55, "std": 0.05, "per_seed": {"0": 0.5, "1": 0.6}},
                "saliency": {"accuracy": 0.6, "std": 0.02, "per_seed": {"0": 0.58, "1": 0.62}},
                "random": {"accuracy": 0.5, "std": 0.0, "per_seed": {"0": 0.5, "1": 0.5}}}
    m = {"teacher": {"accuracy": 0.9, "best_valid_accuracy": 0.92}, "students": students,
         "attribution": {"method": "saliency", "k": 3, "recall_at_k": 0.88, "random_recall_at_k": 0.16,
                         "n_examples": len(INPUTS)},
         "timing": {"data_s": 0.5, "finetune_s": 60.0, "attribute_s": 2.0, "distill_s": 300.0, "evaluate_s": 3.0},
         "n_test": 500, "version": "0.1.0"}
    if analyses is not None:
        m["analyses"] = analyses
    return m


def _history(steps: int, scale: float) -> list[dict]:
    rows = [{"loss": scale / (1 + s / 20), "learning_rate": 1e-3, "epoch": s / 50, "step": s}
            for s in range(10, steps + 1, 10)]
    rows += [{"eval_loss": 0.5, "eval_accuracy": min(1.0, s / steps), "step": s} for s in range(50, steps + 1, 50)]
    return rows + [{"train_runtime": 1.0, "train_loss": 0.3, "step": steps}]


def _fake_run(run: Path, curves: bool = True) -> None:
    """The files a finished run leaves that the report reads (no models: the report never loads one)."""
    examples = [Example(f"s-{i}", text, "reach <wet> & dry" if i == 0 else f"label {i}", decisive=[1, 3])
                for i, text in enumerate(INPUTS)]
    write_jsonl(run / "data" / "student_train.jsonl", examples)
    for method in ("saliency", "random"):
        rows = []
        for ex in examples:
            ws = words(ex.input)
            scores = [((7 * i + len(w)) % 11) / 10 for i, w in enumerate(ws)]
            top = sorted(range(len(ws)), key=lambda i: -scores[i])[:3]
            rows.append({"id": ex.id, "target": ex.label, "words": ws, "scores": scores, "top": top,
                         "rationale": ", ".join(ws[i] for i in top)})
        write_jsonl(Layout(run).attributions(method), rows)
    if curves:
        dirs = [run / "teacher"] + [run / "students" / v / f"seed{s}" for v in ("standard", "saliency") for s in (0, 1)]
        for i, d in enumerate(dirs):
            d.mkdir(parents=True)
            (d / "log_history.json").write_text(json.dumps(_history(200 if i == 0 else 100, 2.0 + i)))
        (run / "students" / "random" / "seed0").mkdir(parents=True)
        (run / "students" / "random" / "seed0" / "log_history.json").write_text("{not json")


def _cfg(*extra: str):
    return load_config(overrides=["name=fake", "attribution.k=3", "distill.seeds=[0, 1]",
                                  "distill.variants=[standard, saliency, random]", *extra])


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def test_html_report_is_self_contained_and_renders_in_chromium(tmp_path):
    run = tmp_path / "run"
    _fake_run(run)
    write_report(run, _cfg("paper=cqa/t5-small"), _metrics(ANALYSES))
    page = (run / "report.html").read_text(encoding="utf-8")
    assert page.count("<table>") >= 10, "accuracy, teacher gap, methods, k, faithfulness, human, answer, overlap, ..."
    images = re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]{200,}"', page)
    assert len(images) == 4, "accuracy, curves, k sweep, faithfulness, all embedded"
    assert "http://" not in page and "https://" not in page and "<link" not in page and "<script" not in page
    assert "reach &lt;wet&gt; &amp; dry" in page and "reach <wet>" not in page, "text is escaped"
    assert page.count('<div class="example">') == 5, "heat-maps of 5 examples, the random method's left out"
    assert 'class="top"' in page and 'truth"' in page, "top-k words and decisive words are marked"
    for name in ("accuracy", "curves", "k_sweep", "faithfulness"):
        assert (run / "report_files" / f"{name}.png").stat().st_size > 5000

    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed, so the report's HTML is not rendered: "
                    "install it with `apt-get install chromium` (Debian/Ubuntu) to run this check")
    shot = tmp_path / "screenshot.png"
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,3000",
                           f"--screenshot={shot}", (run / "report.html").as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert shot.is_file(), f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    if keep := os.environ.get("ATTRDISTILL_REPORT_SCREENSHOT"):
        shutil.copy(shot, keep)
    from matplotlib.image import imread
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (3000, 1200)
    not_white = (pixels < 0.95).any(axis=-1)
    assert pixels.std() > 0.1 and not_white.mean() > 0.05, "the screenshot is blank"
    assert not not_white[:, :40].any() and not not_white[:, -40:].any(), "nothing sticks out of the page's column"


def test_markdown_report_has_the_analyses_and_the_papers_column(tmp_path):
    run = tmp_path / "run"
    _fake_run(run)
    path = write_report(run, _cfg("paper=cqa/t5-small"), _metrics(ANALYSES))
    md = path.read_text(encoding="utf-8")
    assert path == run / "report.md"
    header = "| model | accuracy | std | seeds | per seed | vs standard | paper (cqa/t5-small) | paper vs standard |"
    assert header in md
    assert "| student: saliency | 60.0 | 2.0 | 2 | 58.0, 62.0 | +5.0 [-33.1, +43.1] | 45.7 | +1.6 |" in md
    assert "| teacher | 90.0 |" in md and "| 81.4 |" in md
    for heading in ("Which attribution method to distil with", "Accuracy against k", "Faithfulness",
                    "Agreement with human highlights", "Rationales and the answer",
                    "Do the students get the same examples right?", "Time per stage", "Training"):
        assert f"## {heading}" in md
    assert "| oracle | 100.0 | n/a | n/a | 70.0 ± 2.0 |" in md and "| random | 16.0 | 0.050 | 0.350 | n/a |" in md
    assert "Best student: **oracle**" in md
    assert "| saliency | standard | 120 | 80.0 | 80 | 30.0 |" in md
    assert "| 3 | 58.0 | 5.0 |" in md and "| standard | 12.0 |" in md
    for name in ("accuracy", "curves", "k_sweep", "faithfulness"):
        assert f"](report_files/{name}.png)" in md
    assert md.count("s-0 · saliency · gold: reach <wet> & dry") == 1 and "**" in md
    assert "| total | 365.5 | 100 |" in md


def test_missing_analyses_curves_and_examples_leave_notes_not_crashes(tmp_path):
    run = tmp_path / "bare"
    run.mkdir()
    metrics = _metrics()
    metrics["students"] = {"saliency": metrics["students"]["saliency"]}
    path = write_report(run, _cfg(), metrics)
    md = path.read_text(encoding="utf-8")
    assert "No training curves" in md and "No examples" in md and "paper" not in md
    assert "## Faithfulness" not in md and "vs standard" in md
    page = (run / "report.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 1, "only the accuracy chart"
    assert not (run / "report_files" / "curves.png").exists()

    (run / "report_files" / "k_sweep.png").write_bytes(b"stale")
    _fake_run(run, curves=False)
    empty = {"k_sweep": {"method": "saliency", "points": []},
             "faithfulness": {"saliency": {"comprehensiveness": None, "sufficiency": None, "n": 0}},
             "methods": {"saliency": {"recall_at_k": None}}}
    md = write_report(run, _cfg(), _metrics(empty)).read_text(encoding="utf-8")
    assert "No k-sweep plot" in md and "No faithfulness plot" in md and "| saliency | n/a | n/a | n/a | n/a |" in md
    assert "s-4 · saliency" in md and "No examples" not in md
    assert sorted(p.name for p in (run / "report_files").iterdir()) == ["accuracy.png"], "no stale figures"


def test_report_opens_with_the_verdict_and_an_example_of_each_rationale(tmp_path):
    run = tmp_path / "run"
    _fake_run(run)
    m = _metrics(ANALYSES)
    m["verdict"] = {"best": "saliency", "accuracy": 0.6, "std": 0.02, "seeds": 2, "gain": 0.05, "low": -0.2,
                    "high": 0.3, "still_rising": ["standard/seed1"],
                    "example": {"id": "s-0", "input": "a b c", "label": "reach", "rationales":
                                {"saliency": "b, c", "match:occlusion": "c, a"}}}
    md = write_report(run, _cfg(), m).read_text(encoding="utf-8")
    first = md.split("\n## ")[1]
    assert first.startswith("Verdict")
    assert "**Best student: `saliency`, 60.0 ± 2.0% on test, +5.0 points over `standard`**" in first
    assert "95% interval over 2 paired seeds: -20.0 to +30.0" in first and "standard/seed1" in first
    assert "| saliency | b, c |" in first
    assert "| match:occlusion (words its saliency is pulled toward) | c, a |" in first
    m["verdict"].update(seeds=1, gain=0.05, low=None, high=None, still_rising=[])
    md = write_report(run, _cfg(), m).read_text(encoding="utf-8")
    assert "with one seed: no interval" in md and "Still improving" not in md


def test_accuracy_table_gives_paired_intervals_over_standard_and_kd(tmp_path):
    run = tmp_path / "bare"
    run.mkdir()
    metrics = _metrics()
    metrics["students"]["kd"] = {"accuracy": 0.57, "std": 0.01, "per_seed": {"0": 0.56, "1": 0.58}}
    md = write_report(run, _cfg(), metrics).read_text(encoding="utf-8")
    assert "| model | accuracy | std | seeds | per seed | vs standard | vs kd |" in md
    # per seed: kd - standard +6, -2; saliency - kd +2, +4 (t with 1 degree of freedom: 12.706)
    assert "| student: kd | 57.0 | 1.0 | 2 | 56.0, 58.0 | +2.0 [-48.8, +52.8] |  |" in md
    assert "| student: saliency | 60.0 | 2.0 | 2 | 58.0, 62.0 | +5.0 [-33.1, +43.1] | +3.0 [-9.7, +15.7] |" in md
    assert "| student: standard | 55.0 | 5.0 | 2 | 50.0, 60.0 |  | -2.0 [-52.8, +48.8] |" in md


def test_rationales_list_the_methods_the_plan_attributed_not_stale_files(tmp_path):
    """A method an older config attributed leaves its rows in attributions/; the report lists the current plan's."""
    run = tmp_path / "run"
    _fake_run(run)
    stale = Layout(run).attributions("occlusion")
    stale.parent.mkdir(parents=True)
    stale.write_text(Layout(run).attributions("saliency").read_text(encoding="utf-8"), encoding="utf-8")
    md = write_report(run, _cfg(), _metrics(ANALYSES)).read_text(encoding="utf-8")
    assert "| input | label | saliency | random | decisive |" in md and "occlusion" not in md


def test_a_one_seed_run_shows_no_spread_and_no_interval(tmp_path):
    """One seed has no std and no paired interval: those cells are empty, not '0.0'."""
    run = tmp_path / "run"
    _fake_run(run)
    m = _metrics(ANALYSES)
    for s in m["students"].values():
        s["per_seed"], s["std"] = {"0": s["accuracy"]}, 0.0
    md = write_report(run, _cfg("distill.seeds=[0]"), m).read_text(encoding="utf-8")
    assert "| student: saliency | 60.0 |  | 1 | 60.0 | +5.0 |" in md
    assert "± 0.0" not in md and "| 3 | 58.0 |  |" in md


# ---- the verdict chooses on validation ----------------------------------------------------------------------

def _trained_run(run: Path, cfg, test: dict[str, list[float]], valid: dict[str, list[float]]) -> list[Unit]:
    """A finished run's DONE records and training logs, without models: test and validation accuracy per variant
    and seed. Seed 0's student records hold best_valid_accuracy; seed 1's do not (a run made before they did),
    so their validation accuracy is read from log_history.json, whose best evaluation is at step 100."""
    _fake_run(run, curves=False)
    seeds = cfg.distill.seeds
    results = {TEACHER: {"best_valid_accuracy": 0.95, "steps": 200}, "analyses": {},
               prediction_key("teacher"): {"accuracy": 0.97, "n": 500},
               **{attribution_key(m): {"recall_at_k": 0.5, "n": len(INPUTS)} for m in attribution_methods(cfg)}}
    for v in test:
        for i, s in enumerate(seeds):
            results[prediction_key(f"{v}-seed{s}")] = {"accuracy": test[v][i], "n": 500}
            results[student_key(v, s)] = {"steps": 150, **({"best_valid_accuracy": valid[v][i]} if i == 0 else {})}
            log = [{"eval_accuracy": valid[v][i] - 0.1, "step": 50}, {"eval_accuracy": valid[v][i], "step": 100},
                   {"eval_accuracy": valid[v][i], "step": 150}]
            Layout(run).history(student_key(v, s)).parent.mkdir(parents=True, exist_ok=True)
            Layout(run).history(student_key(v, s)).write_text(json.dumps(log))
    units = []
    for key, result in results.items():
        (run / key).mkdir(parents=True, exist_ok=True)
        (run / key / "DONE.json").write_text(json.dumps({"result": result, "seconds": 1.0}))
        units.append(Unit(key, "distill", lambda: {}))
    return units


def test_the_verdict_chooses_on_validation_and_notes_the_student_best_on_test(tmp_path):
    """saliency is best on test, random on validation: the verdict is random's, saliency is named in a note."""
    run = tmp_path / "run"
    kd = next(o for o, e in OBJECTIVES.items() if e.baseline)
    cfg = _cfg(f"distill.variants=[{STANDARD}, {kd}, saliency, random]")
    test = {STANDARD: [0.55, 0.60], kd: [0.56, 0.58], "saliency": [0.62, 0.66], "random": [0.57, 0.61]}
    valid = {STANDARD: [0.50, 0.52], kd: [0.53, 0.55], "saliency": [0.58, 0.60], "random": [0.64, 0.66]}
    m = collect_metrics(run, cfg, _trained_run(run, cfg, test, valid))
    for v in test:
        assert m["students"][v]["valid"] == {"accuracy": pytest.approx(sum(valid[v]) / 2),
                                             "std": pytest.approx(abs(valid[v][0] - valid[v][1]) / 2),
                                             "per_seed": {0: valid[v][0], 1: valid[v][1]},
                                             "kept_step": {0: 100, 1: 100}}
        assert m["students"][v]["accuracy"] == pytest.approx(sum(test[v]) / 2), "test as before"
    v = m["verdict"]
    assert v["best"] == "random" and v["chosen_on"] == "validation" and v["best_on_test"] == "saliency"
    assert v["accuracy"] == pytest.approx(0.59) and v["valid_accuracy"] == pytest.approx(0.65) and v["tied"] == []
    assert v["gain"] == pytest.approx(0.015) and v["over"][STANDARD]["gain"] == v["gain"]
    assert v["over"][kd]["gain"] == pytest.approx(0.02) and v["over"][kd]["low"] < 0.02 < v["over"][kd]["high"]

    md = write_report(run, cfg, m).read_text(encoding="utf-8")
    verdict = md.split("\n## ")[1]
    assert verdict.startswith("Verdict")
    assert "**Best student: `random`, 59.0 ± 2.0% on test, +1.5 points over `standard`**" in verdict
    assert f"Over `{kd}`: +2.0 points (95% interval over 2 paired seeds:" in verdict
    assert "Chosen on validation: the highest mean validation accuracy over the 2 seeds (65.0 ± 1.0%); test" in verdict
    assert "_Best on test: saliency (64.0% on test, 59.0% on validation), not the verdict" in verdict
    assert "| valid | valid per seed (step kept) |" in md
    assert "| student: random | 59.0 | 2.0 | 2 | 57.0, 61.0 | 65.0 ± 1.0 | 64.0 (100), 66.0 (100) |" in md
    assert "| teacher | 97.0 |  |  |  | 95.0 |  |" in md
    assert "Best student: **random** (59.0 ± 2.0 on test; chosen on validation, 65.0)" in md
    page = (run / "report.html").read_text(encoding="utf-8")
    assert "<strong>Best student: <code>random</code>, 59.0 ± 2.0% on test" in page
    assert "Chosen on validation" in page and '<p class="note">Best on test: saliency (64.0% on test' in page


def test_a_validation_tie_goes_to_the_simpler_variant(tmp_path):
    """Within 0.1 point on validation the variant with fewer parts wins, and the report says so; alone, the
    best on validation wins however many parts it has."""
    run = tmp_path / "run"
    cfg = _cfg()
    test = {STANDARD: [0.55, 0.60], "saliency": [0.62, 0.66], "random": [0.57, 0.61]}
    valid = {STANDARD: [0.600, 0.6010], "saliency": [0.601, 0.6015], "random": [0.50, 0.52]}
    m = collect_metrics(run, cfg, _trained_run(run, cfg, test, valid))
    v = m["verdict"]
    assert v["best"] == STANDARD and v["tied"] == ["saliency"] and v["best_on_test"] == "saliency"
    assert "gain" not in v and "over" in v and not v["over"], "no gain of standard over itself"
    md = write_report(run, cfg, m).read_text(encoding="utf-8")
    assert "**Best student: `standard`, 57.5 ± 2.5% on test** (the label-only student is best)." in md
    assert ("Validation ties within 0.1 point between `standard` and `saliency`: the simpler variant (fewer parts), "
            "`standard`, is chosen.") in md
    assert "_Best on test: saliency (64.0% on test, 60.1% on validation), not the verdict" in md

    assert parts(STANDARD) == 0 and parts("saliency") == 1 and parts("kd+saliency@k2") == 2
    assert parts("match:occlusion") == 1 and parts("kd+oracle+match:occlusion") == 3
    assert choose({"kd+saliency": 0.7005, "saliency": 0.7, "kd": 0.7}) == ("saliency", ["kd+saliency", "kd"])
    assert choose({"kd+saliency": 0.702, "saliency": 0.7}) == ("kd+saliency", [])


def test_a_student_without_validation_accuracy_is_chosen_on_test_and_the_report_says_so(tmp_path):
    run = tmp_path / "run"
    cfg = _cfg()
    test = {STANDARD: [0.55, 0.60], "saliency": [0.62, 0.66], "random": [0.57, 0.61]}
    valid = {STANDARD: [0.60, 0.61], "saliency": [0.50, 0.51], "random": [0.50, 0.52]}
    units = _trained_run(run, cfg, test, valid)
    Layout(run).history(student_key("random", 1)).unlink()   # no record and no log: no validation accuracy
    m = collect_metrics(run, cfg, units)
    assert "valid" not in m["students"]["random"] and m["students"][STANDARD]["valid"]["per_seed"] == {0: 0.6, 1: 0.61}
    v = m["verdict"]
    assert v["best"] == "saliency" and v["chosen_on"] == "test" and v["no_valid"] == ["random"]
    md = write_report(run, cfg, m).read_text(encoding="utf-8")
    assert "_Chosen on test, as no validation accuracy was found for random:" in md and "Best on test:" not in md
    assert "| student: random | 59.0 | 2.0 | 2 | 57.0, 61.0 | n/a |  |" in md
