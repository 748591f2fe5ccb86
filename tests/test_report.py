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
from attrdistill.report.document import write_report
from attrdistill.run.layout import Layout

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
