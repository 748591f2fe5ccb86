"""The Python interface: attrdistill.attribute on any model (the pipeline's scores), attrdistill.run, and the
losses in someone else's training loop (a plain transformers.Trainer)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import Trainer, TrainingArguments

import attrdistill
from attrdistill.config import ConfigError
from attrdistill.modeling.features import collate
from attrdistill.modeling.models import load_trained
from attrdistill.modeling.words import words
from attrdistill.pipeline.layout import TRAIN, load_split
from attrdistill.pipeline.records import attribution_rows
from tests.conftest import tiny_t5

TINY = ["data.n_teacher_train=48", "data.n_student_train=12", "data.n_valid=6", "data.n_test=8",
        "teacher.d_model=32", "teacher.d_ff=64", "teacher.train.max_steps=4", "teacher.train.eval_steps=2",
        "teacher.train.batch_size=16", "student.d_model=16", "student.d_ff=32", "student.train.max_steps=2",
        "student.train.eval_steps=1", "student.train.batch_size=4", "eval.max_new_tokens=4", "attribution.k=3",
        "analysis.faithfulness_examples=0", "distill.variants=[standard,saliency]"]


def test_importing_the_package_loads_no_torch():
    code = ("import sys, attrdistill; f = attrdistill.attribute, attrdistill.run, attrdistill.load_config; "
            "assert 'torch' not in sys.modules, 'torch imported'; print(attrdistill.__version__)")
    assert subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()


def test_run_and_attribute_give_the_pipelines_scores(tmp_path):
    out = tmp_path / "run"
    metrics = attrdistill.run(overrides=TINY, out=out)
    assert set(metrics["students"]) == {"standard", "saliency"} and (out / "metrics.json").is_file()
    again = attrdistill.run(out=out, stages=["report"])   # a verb on the existing run, reading its config
    assert again["students"].keys() == metrics["students"].keys()
    model, tok = load_trained(out / "teacher" / "model")
    examples = load_split(out, TRAIN)
    rows = attrdistill.attribute(model, tok, [ex.input for ex in examples], [ex.label for ex in examples],
                                 method="saliency", k=3, prefix="predict: ", max_input_length=128,
                                 max_target_length=32)
    for mine, theirs in zip(rows, attribution_rows(out, "saliency")):
        assert mine.words == theirs.words and mine.top == theirs.top
        torch.testing.assert_close(torch.tensor(mine.scores), torch.tensor(theirs.scores), atol=1e-5, rtol=1e-5)


def test_attribute_explains_the_models_own_output_without_targets(word_tok, examples):
    from attrdistill.evaluate.predict import predict
    model = tiny_t5(len(word_tok), seed=1)
    texts = [ex.input for ex in examples[:3]]
    rows = attrdistill.attribute(model, word_tok, texts, method="occlusion", k=2, prefix="predict: ")
    assert [r.target for r in rows] == predict(model, word_tok, ["predict: " + t for t in texts])
    assert all(len(r.scores) == len(words(t)) and len(r.top) == 2 for r, t in zip(rows, texts))


def test_attribute_shows_progress_on_a_long_list(word_tok, examples, capfd):
    texts = [ex.input for ex in examples] * 11   # 132 inputs: three shards of 64
    rows = attrdistill.attribute(tiny_t5(len(word_tok)), word_tok, texts, [ex.label for ex in examples] * 11,
                                 prefix="predict: ")
    assert len(rows) == 132 and "attribution saliency (shards)" in capfd.readouterr().err


@pytest.mark.parametrize("args, kwargs, message", [
    ((["a b", "c"], ["x"]), {}, r"^attribute: 2 inputs but 1 targets"),
    ((["a b", "  "],), {}, r"^attribute: input 1 is empty"),
    ((["a b"],), {"method": "nope"}, r"attribution.method: expected one of saliency, .*got 'nope'"),
    ((["a b"],), {"orde": "aligned"}, r"unknown config key 'attribution.orde'.*did you mean 'attribution.order'"),
    (("a b",), {}, r"^attribute: inputs and targets are lists of texts"),
])
def test_attribute_refuses_bad_input_before_any_work(args, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        attrdistill.attribute(None, None, *args, **kwargs)   # no model: nothing may run before the refusal


class MatchingTrainer(Trainer):
    """A plain transformers.Trainer whose loss adds attribution matching, with no attrdistill pipeline."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        targets = inputs.pop("match_targets")
        outputs, saliency = attrdistill.student_saliency(model, inputs)
        loss = outputs.loss + 1.0 * attrdistill.match_divergence(saliency, targets)
        self.seen = getattr(self, "seen", []) + [(float(outputs.loss.detach()), float(loss.detach()))]
        return (loss, outputs) if return_outputs else loss


def test_the_matching_loss_in_a_plain_trainer(word_tok, examples, tmp_path):
    sources = ["predict: " + ex.input for ex in examples[:8]]
    scores = [[float(i % 3) for i in range(len(words(ex.input)))] for ex in examples[:8]]
    targets = attrdistill.token_targets(word_tok, sources, [ex.input for ex in examples[:8]], scores, "predict: ",
                                        128)
    enc = word_tok(sources)
    labels = word_tok(text_target=[ex.label for ex in examples[:8]])["input_ids"]
    data = [{"input_ids": i, "labels": y, "match_targets": t} for i, y, t in zip(enc["input_ids"], labels, targets)]

    def collator(rows):
        batch = collate([{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows], word_tok.pad_token_id)
        width = batch["input_ids"].shape[1]
        batch["match_targets"] = torch.tensor([r["match_targets"] + [0.0] * (width - len(r["match_targets"]))
                                               for r in rows])
        return batch

    trainer = MatchingTrainer(model=tiny_t5(len(word_tok)), train_dataset=data, data_collator=collator,
                              args=TrainingArguments(str(tmp_path), max_steps=2, per_device_train_batch_size=4,
                                                     report_to=[], remove_unused_columns=False, use_cpu=True))
    trainer.train()
    assert len(trainer.seen) == 2 and all(total > ce for ce, total in trainer.seen), "the term adds to the CE"
    assert json.loads(json.dumps(trainer.state.log_history))[-1]["train_loss"] > 0


def test_a_runs_log_keeps_its_progress_lines_while_the_callers_logging_stays_as_set(tmp_path):
    import io
    import logging
    caller = logging.StreamHandler(io.StringIO())
    root, ours = logging.getLogger(), logging.getLogger("attrdistill")
    level = root.level
    root.addHandler(caller)
    root.setLevel(logging.WARNING)   # a notebook's logging.basicConfig(level=WARNING)
    try:
        attrdistill.run(attrdistill.load_config(None, TINY), out=tmp_path / "run", stages=["data"])
        logging.getLogger("attrdistill.x").warning("after the run")
    finally:
        root.removeHandler(caller)
        root.setLevel(level)
    assert "data data: done in" in (tmp_path / "run" / "log.txt").read_text()
    shown = caller.stream.getvalue()
    assert "done in" not in shown and "after the run" in shown, shown
    assert ours.propagate and ours.level == logging.NOTSET and len(ours.handlers) == 0, "logging put back"


def test_run_and_the_cli_resolve_a_run_the_same_way_and_refuse_bad_folders_before_work(tmp_path):
    from attrdistill.api import prepare
    from attrdistill.cli import main
    from attrdistill.config import load_config
    from attrdistill.errors import ConfigError
    run_dir, cfg = prepare(None, ["attribution.k=3"])
    assert run_dir == Path("runs") / "default" and cfg.attribution.k == 3
    assert prepare(load_config(None, ["name=x"]))[0] == Path("runs") / "x"
    with pytest.raises(ConfigError, match="overrides apply to a config file"):
        prepare(load_config(None, []), ["attribution.k=3"])
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(ConfigError, match="is a file, not a run directory"):
        attrdistill.run(out=a_file)
    with pytest.raises(ConfigError, match="not a run directory \\(no config.yaml\\)"):
        attrdistill.run(out=tmp_path, stages=["report"])
    assert main(["report", str(tmp_path)]) == 2 and main(["run", "--out", str(a_file)]) == 2
    assert list(tmp_path.iterdir()) == [a_file], "nothing written"
