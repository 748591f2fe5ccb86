"""The CLI end to end on a tiny config: real Trainer, real files, skipping and recomputing stages."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from attrdistill.cli import main

TINY = [
    "data.n_teacher_train=64", "data.n_student_train=16", "data.n_valid=8", "data.n_test=12",
    "teacher.d_model=32", "teacher.d_ff=64", "teacher.train.max_steps=4", "teacher.train.eval_steps=2",
    "teacher.train.batch_size=16",
    "student.d_model=16", "student.d_ff=32", "student.train.max_steps=2", "student.train.eval_steps=1",
    "student.train.batch_size=8", "eval.max_new_tokens=4", "attribution.k=3",
    # the paper's students and the controls (the default's kd and match students have their own end-to-end tests)
    "distill.variants=[standard,random,saliency,oracle]",
]


def _sets(overrides: list[str]) -> list[str]:
    return [x for o in overrides for x in ("--set", o)]


def _done_times(run: Path) -> dict[str, float]:
    return {str(p.relative_to(run)): p.stat().st_mtime_ns for p in run.rglob("DONE.json")}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run") / "tiny"
    assert main(["run", "--out", str(run), *_sets(TINY)]) == 0
    return run


def test_run_writes_metrics_in_range(run_dir):
    m = json.loads((run_dir / "metrics.json").read_text())
    assert 0 <= m["teacher"]["accuracy"] <= 1
    assert set(m["students"]) == {"standard", "random", "saliency", "oracle"}
    for s in m["students"].values():
        assert 0 <= s["accuracy"] <= 1 and s["std"] == 0.0 and list(s["per_seed"]) == ["0"]
    a = m["attribution"]
    assert 0 <= a["recall_at_k"] <= 1 and 0 <= a["random_recall_at_k"] <= 1 and a["k"] == 3
    assert a["n_examples"] == 16
    for stage in ("data", "finetune", "attribute", "distill", "evaluate", "report"):
        assert m["timing"][f"{stage}_s"] >= 0
    assert m["timing"]["finetune_s"] > 0
    v = m["verdict"]
    assert v["best"] in m["students"] and v["accuracy"] == m["students"][v["best"]]["accuracy"]
    assert v["example"]["id"] == "s1-0" and set(v["example"]["rationales"]) == {"random", "saliency", "oracle"}
    assert v["example"]["rationales"]["oracle"] and v.get("low") is None   # one seed: no interval


def test_run_directory_holds_every_artifact(run_dir):
    for path in ["config.yaml", "log.txt", "report.md", "data/test.jsonl", "data/tokenizer/tokenizer.json",
                 "teacher/model/config.json", "teacher/log_history.json", "attributions/saliency/rows.jsonl",
                 "attributions/random/rows.jsonl", "attributions/test/saliency/rows.jsonl",
                 "students/oracle/seed0/model/config.json", "predictions/saliency-seed0/test.jsonl"]:
        assert (run_dir / path).is_file(), path
    rationale = json.loads((run_dir / "attributions" / "saliency" / "rows.jsonl").read_text().splitlines()[0])
    assert len(rationale["top"]) == 3 and rationale["rationale"].count(",") == 2
    report = (run_dir / "report.md").read_text()
    assert report.split("\n## ")[1].startswith("Verdict") and "Best student: `" in report
    assert "| student: oracle |" in report and "Recall@3" in report
    assert sum(line.startswith("| ") and "predict" not in line for line in report.splitlines()) >= 5


def test_second_run_skips_finished_stages(run_dir, caplog):
    before = _done_times(run_dir)
    with caplog.at_level(logging.INFO, logger="attrdistill"):
        assert main(["run", "--out", str(run_dir), *_sets(TINY)]) == 0
    assert _done_times(run_dir) == before, "no finished output may be rewritten"
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skip ")]
    # data, teacher, attributions of saliency and random (train and test), 4 students, 5 evaluations, analyze
    assert len(skipped) == 1 + 1 + 4 + 4 + 5 + 1, skipped


def test_plan_says_which_units_a_changed_setting_would_recompute(run_dir, capsys):
    def states(*sets: str) -> dict[str, str]:
        capsys.readouterr()
        assert main(["plan", str(run_dir), *sets]) == 0
        return {line.split()[0]: line.split(None, 2)[2] for line in capsys.readouterr().out.splitlines()[1:]}
    now = states()
    assert now.pop("report") == "runs: rewritten every time" and set(now.values()) == {"done"}
    assert len(now) == 1 + 1 + 4 + 4 + 5 + 1
    would = {key for key, state in states("--set", "attribution.k=2").items() if state.startswith("runs")}
    assert would == {"attributions/saliency", "attributions/random", "attributions/test/saliency",
                     "attributions/test/random",
                     "students/saliency/seed0", "students/random/seed0", "predictions/saliency-seed0",
                     "predictions/random-seed0", "analyses", "report"}
    assert main(["run", "--dry-run", "--out", str(run_dir), *_sets(TINY)]) == 0
    assert "runs: config" not in capsys.readouterr().out, "--dry-run of the same config: nothing to recompute"


def test_changed_k_recomputes_only_what_depends_on_it(run_dir):
    before = _done_times(run_dir)
    assert main(["attribute", str(run_dir), "--set", "attribution.k=2"]) == 0
    assert main(["distill", str(run_dir)]) == 0
    after = _done_times(run_dir)
    changed = {k for k in before if after.get(k) != before[k]}
    assert changed == {"attributions/saliency/DONE.json", "attributions/random/DONE.json",
                       "attributions/test/saliency/DONE.json", "attributions/test/random/DONE.json",
                       "students/saliency/seed0/DONE.json",
                       "students/random/seed0/DONE.json"}
    assert main(["evaluate", str(run_dir)]) == 0
    assert main(["report", str(run_dir)]) == 2, "the analyses are stale until analyze runs again"
    assert main(["analyze", str(run_dir)]) == 0 and main(["report", str(run_dir)]) == 0
    assert json.loads((run_dir / "metrics.json").read_text())["attribution"]["k"] == 2


def test_report_prints_the_papers_numbers_beside_ours(run_dir):
    assert main(["report", str(run_dir), "--set", "paper=cqa/t5-small"]) == 0
    report = (run_dir / "report.md").read_text()
    assert "paper (cqa/t5-small)" in report and "| 44.1 |" in report and "| 81.4 |" in report
    paper = json.loads((run_dir / "metrics.json").read_text())["paper"]
    assert paper["students"]["standard"] == pytest.approx(0.441) and paper["students"]["oracle"] is None


def test_a_k_above_every_inputs_word_count_is_warned_about(run_dir, caplog):
    from attrdistill.config import load_config
    k = load_config(run_dir / "config.yaml").attribution.k
    with caplog.at_level(logging.WARNING):
        assert main(["attribute", str(run_dir), "--set", "attribution.k=100000"]) == 0
    assert "attribution.k=100000 is not below the word count of any student-train input" in caplog.text
    assert main(["attribute", str(run_dir), "--set", f"attribution.k={k}"]) == 0   # as it was, for the next tests


def test_a_stage_refuses_inputs_made_with_another_config(run_dir, caplog):
    assert main(["evaluate", str(run_dir), "--set", "student.train.max_steps=3"]) == 2
    assert ("was made with another config or is damaged (see the log); run `attrdistill distill` again first"
            in caplog.text)


def test_verb_on_a_missing_run_directory_fails_clearly(tmp_path, caplog):
    assert main(["attribute", str(tmp_path / "nope")]) == 2
    assert "not a run directory" in caplog.text


def test_console_script_help_lists_verbs_and_config_keys():
    out = subprocess.run([sys.executable, "-m", "attrdistill.cli", "run", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "--set" in out and "attribution.k" in out and "distill.rationale_weight" in out
    top = subprocess.run([sys.executable, "-m", "attrdistill.cli", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for verb in ("run", "finetune", "attribute", "distill", "evaluate", "report"):
        assert verb in top


def test_pretrained_teacher_from_a_local_directory(tmp_path, shared):
    """`teacher.model` takes a hub id or a directory through the same code; here a directory we save."""
    from transformers import AutoTokenizer

    from tests.conftest import tiny_t5
    tok = AutoTokenizer.from_pretrained(shared / "tokenizers" / "t5")
    pretrained = tmp_path / "my-t5"
    tiny_t5(len(tok)).save_pretrained(pretrained)
    tok.save_pretrained(pretrained)
    run = tmp_path / "run"
    sets = _sets(TINY + [f"teacher.model={pretrained}", "distill.variants=[standard, saliency]",
                         "teacher.train.max_steps=0"])
    assert main(["run", "--out", str(run), *sets]) == 0
    import torch
    from transformers import AutoModelForSeq2SeqLM
    used = AutoModelForSeq2SeqLM.from_pretrained(run / "teacher" / "model").state_dict()
    given = AutoModelForSeq2SeqLM.from_pretrained(pretrained).state_dict()
    assert all(torch.equal(used[k], given[k]) for k in given), "max_steps 0 uses the given teacher unchanged"
    assert (run / "data" / "tokenizer" / "tokenizer.json").is_file(), "the from-scratch student gets the task's"
    teacher_tok = AutoTokenizer.from_pretrained(run / "teacher" / "model")
    assert len(teacher_tok) == 32100, "the teacher keeps the pretrained model's tokenizer"
    row = json.loads((run / "attributions" / "saliency" / "rows.jsonl").read_text().splitlines()[0])
    assert len(row["top"]) == 3 and all(w.isalnum() for w in row["rationale"].split(", "))
    assert json.loads((run / "metrics.json").read_text())["students"]["saliency"]["accuracy"] >= 0


def test_a_given_teacher_is_used_as_it_is_shown_as_given_and_follows_its_files(tmp_path, shared, capsys):
    """teacher.finetune false: no training (teacher.train is not read), the plan says "given", the teacher's
    accuracy is measured, and rewriting the model's files recomputes the teacher (its fingerprint follows them)."""
    import os

    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from attrdistill.config import load_config
    from attrdistill.errors import ConfigError
    from tests.conftest import tiny_t5
    tok = AutoTokenizer.from_pretrained(shared / "tokenizers" / "t5")
    given = tmp_path / "my-teacher"
    tiny_t5(len(tok), seed=3).save_pretrained(given)
    tok.save_pretrained(given)
    run = tmp_path / "run"
    sets = _sets(TINY + [f"teacher.model={given}", "teacher.finetune=false", "distill.variants=[standard, saliency]"])
    assert main(["run", "--out", str(run), *sets]) == 0
    used = AutoModelForSeq2SeqLM.from_pretrained(run / "teacher" / "model").state_dict()
    assert all(torch.equal(used[k], v) for k, v in AutoModelForSeq2SeqLM.from_pretrained(given).state_dict().items())
    assert json.loads((run / "teacher" / "DONE.json").read_text())["result"]["given"] is True
    assert json.loads((run / "metrics.json").read_text())["teacher"]["accuracy"] >= 0, "its accuracy is measured"
    capsys.readouterr()
    assert main(["plan", str(run)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("teacher "))
    assert "done" in line and f"(given: {given}, not trained)" in line
    config = given / "config.json"
    os.utime(config, ns=(config.stat().st_atime_ns, config.stat().st_mtime_ns + 10**9))   # the files change
    assert main(["plan", str(run)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("teacher "))
    assert "runs: config or inputs changed" in line
    with pytest.raises(ConfigError, match="teacher.finetune: false uses a given model"):
        load_config(None, ["teacher.finetune=false"])
    with pytest.raises(ConfigError, match="student.finetune: students always train"):
        load_config(None, ["student.finetune=false"])


@pytest.mark.parametrize("fmt,target", [("single", "x, y, so the answer is yes"), ("label_first", "yes, because x, y")])
def test_single_sequence_format_end_to_end(tmp_path, fmt, target):
    run = tmp_path / fmt
    # kd distils the label's tokens, which lead a label_first target (and follow the rationale in single)
    variants = ["standard", "oracle"] + (["kd+oracle"] if fmt == "label_first" else [])
    sets = _sets(TINY + [f"distill.format={fmt}", f"distill.variants=[{', '.join(variants)}]"])
    assert main(["run", "--out", str(run), *sets]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert set(m["students"]) == set(variants) and 0 <= m["students"]["oracle"]["accuracy"] <= 1
    assert 0 <= m["students"]["oracle"]["rationale_f1"] <= 1
    from attrdistill.config import load_config
    from attrdistill.data.example import Example
    from attrdistill.distill.rows import train_rows
    from attrdistill.pipeline.records import SparseLogits, TrainRow
    cfg = load_config(run / "config.yaml")
    (row,) = train_rows([Example("a", "x y", "yes")], cfg, {"a": "x, y"})
    assert row == TrainRow(source="predict: x y", target=target)
    if fmt == "label_first":   # the teacher's entry for the label's EOS is dropped: there the target goes on
        kd = {"id": "a", "ids": [[1], [2], [3]], "logits": [[0.5], [0.1], [0.2]], "log_norm": [1.0, 2.0, 3.0]}
        (row,) = train_rows([Example("a", "x y", "yes")], cfg, {"a": "x, y"}, "kd", {"a": kd})
        assert row.signals["kd"] == SparseLogits([[1], [2]], [[0.5], [0.1]], [1.0, 2.0])
        (row,) = train_rows([Example("a", "x y", "yes")], cfg, None, "kd", {"a": kd})
        assert row.signals["kd"] == SparseLogits.from_json(kd), "a label-only kd row keeps every entry"


def test_show_prints_a_heat_map_and_writes_html(run_dir, capsys, tmp_path):
    first = json.loads((run_dir / "attributions" / "saliency" / "rows.jsonl").read_text().splitlines()[1])
    page = tmp_path / "ex.html"
    assert main(["show", str(run_dir), "--example", first["id"], "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert first["id"] in out and "\033[1;4;" in out, "rationale words are bold and underlined"
    assert out.count("\033[0m") == len(first["words"])
    text = page.read_text()
    assert text.count('class="top"') == len(first["top"]) and "<style>" in text and "http" not in text
    assert main(["show", str(run_dir), "--example", "no-such-id"]) == 2
    assert main(["show", str(run_dir), "--method", "occlusion"]) == 2


def test_analyses_k_sweep_and_methods_table(tmp_path):
    sets = _sets(TINY + ["distill.variants=[standard,saliency,input_x_gradient,oracle]", "analysis.k_sweep=[1,2]",
                         "analysis.methods=[occlusion]", "analysis.faithfulness_examples=6"])
    run = tmp_path / "analyses"
    assert main(["run", "--out", str(run), *sets]) == 0
    a = json.loads((run / "metrics.json").read_text())["analyses"]
    assert [p["k"] for p in a["k_sweep"]["points"]] == [1, 2, 3]
    assert (run / "students" / "saliency@k1" / "seed0" / "DONE.json").is_file()
    assert set(a["methods"]) == {"saliency", "random", "input_x_gradient", "occlusion", "oracle"}
    assert a["methods"]["input_x_gradient"]["student_accuracy"] is not None
    assert a["methods"]["occlusion"]["student_accuracy"] is None, "compared, but no student was trained on it"
    assert all(0 <= a["methods"][m]["recall_at_k"] <= 1 for m in a["methods"])
    assert set(a["faithfulness"]) == {"saliency", "random", "input_x_gradient", "occlusion"}
    assert all(f["n"] == 6 for f in a["faithfulness"].values())
    assert len(a["prediction_overlap"]) == 4 * 3 and set(a["teacher_gap"]) >= {"standard", "saliency@k1"}
    html = (run / "report.html").read_text()
    assert "input_x_gradient" in html and "data:image/png;base64," in html


def test_quiet_turns_off_the_progress_bars_too(tmp_path, capfd):
    """-q: warnings only in the log, and no progress bar (ours, the Trainer's, the shard loop's) on the terminal."""
    tiny = [o for o in TINY if not o.startswith("distill.variants")] + ["distill.variants=[standard]",
                                                                         "attribution.shard_size=4"]
    assert main(["-q", "run", "--out", str(tmp_path / "quiet"), *_sets(tiny)]) == 0
    out, err = capfd.readouterr()
    assert "it/s]" not in err and "%|" not in err, err[-500:]
    assert "'loss'" not in out and "'eval_accuracy'" not in out, "nor the Trainer's log lines in their place"
    assert "finetune teacher: done" not in err
    assert "finetune teacher: done" in (tmp_path / "quiet" / "log.txt").read_text(), "the run's log keeps them"
    assert main(["run", "--out", str(tmp_path / "loud"), *_sets(tiny)]) == 0
    assert "%|" in capfd.readouterr().err, "without -q the bars are there (so the check above can fail)"


def test_students_learn_from_a_seeded_subset_the_teacher_annotates_alone(tmp_path, capsys):
    from attrdistill.config import load_config
    from attrdistill.data.synthetic import generate
    from attrdistill.distill.rows import student_examples
    from attrdistill.pipeline.layout import TRAIN, load_split
    examples = generate(16, seed=1)
    cfg = load_config(None, ["distill.student_limit=5"])
    chosen = student_examples(examples, cfg)
    assert len(chosen) == 5 and chosen == [ex for ex in examples if ex in chosen], "kept in split order"
    assert chosen == student_examples(examples, cfg), "the same for every variant and seed"
    assert chosen != student_examples(examples, load_config(None, ["distill.student_limit=5", "data.seed=1"]))
    assert student_examples(examples, load_config(None, [])) == examples
    run = tmp_path / "run"
    sets = [o for o in TINY if not o.startswith("distill.variants")] + ["distill.variants=[standard, saliency]"]
    assert main(["-q", "run", "--out", str(run), *_sets(sets + ["distill.student_limit=3"])]) == 0
    assert json.loads((run / "students" / "saliency" / "seed0" / "DONE.json").read_text())["result"]["examples"] == 3
    rows = (run / "attributions" / "saliency" / "rows.jsonl").read_text().splitlines()
    assert len(rows) == 3, "the teacher attributes the examples students learn from, not the whole split"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["student_examples"] == {"seen": 3, "of": 16, "limit": 3, "file": None, "teacher_labelled": None}
    assert "Students learned from 3 of the 16 student-train examples" in (run / "report.md").read_text()
    kept = [json.loads(r)["id"] for r in rows]
    assert load_split(run, TRAIN)[0].id not in kept, "the split's first example is left out (so the next can fail)"
    assert metrics["verdict"]["example"]["id"] == kept[0], "the report shows a rationale the teacher computed"
    shown = (run / "report.md").read_text().split("## Rationales\n")[1].split("Heat-maps")[0]
    assert shown.count("\n| ") == 1 + 3 and "n/a" not in shown, "a header and the 3 examples attributed"
    capsys.readouterr()
    assert main(["plan", str(run), *_sets(["distill.student_limit=12"])]) == 0
    rerun = {line.split()[0] for line in capsys.readouterr().out.splitlines()[1:] if " runs: " in line}
    assert rerun == {"attributions/saliency", "attributions/random", "students/standard/seed0",
                     "students/saliency/seed0", "predictions/standard-seed0", "predictions/saliency-seed0",
                     "analyses", "report"}, "the teacher and the data stay"


def test_a_taught_rationale_is_scored_on_the_first_test_examples_eval_rationale_limit_names(tmp_path, capsys):
    run = tmp_path / "run"
    sets = [o for o in TINY if not o.startswith("distill.variants")] + ["distill.variants=[standard, saliency]"]
    assert main(["-q", "run", "--out", str(run), *_sets(sets + ["eval.rationale_limit=5"])]) == 0
    rows = (run / "attributions" / "test" / "saliency" / "rows.jsonl").read_text().splitlines()
    assert len(rows) == 5, "the teacher attributes the test examples whose rationale F1 is measured, no more"
    preds = (run / "predictions" / "saliency-seed0" / "test.jsonl").read_text().splitlines()
    assert len(preds) == 12, "accuracy is still on the whole test split"
    result = json.loads((run / "predictions" / "saliency-seed0" / "DONE.json").read_text())["result"]
    assert result["n"] == 12 and result["rationale_n"] == 5 and 0 <= result["rationale_f1"] <= 1
    assert "generates for the first 5 test inputs" in (run / "report.md").read_text()
    capsys.readouterr()
    assert main(["plan", str(run), *_sets(["eval.rationale_limit=0"])]) == 0
    rerun = {line.split()[0] for line in capsys.readouterr().out.splitlines()[1:] if " runs: " in line}
    assert rerun == {"attributions/test/saliency", "predictions/saliency-seed0", "analyses", "report"}, \
        "the limit reaches the taught rationale's F1 (and what reads its predictions) alone: the others stay"
