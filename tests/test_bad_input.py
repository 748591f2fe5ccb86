"""Bad input is refused with a clear error before any work, naming file, line or field: one test per case.

| # | case | expected message names |
|---|---|---|
| 1 | unknown config key | the key and the nearest valid one |
| 2 | wrong type | the field and the type |
| 3 | k <= 0 | attribution.k |
| 4 | lambda < 0 | distill.rationale_weight |
| 5 | lr <= 0 | the learning rate field |
| 6 | missing local model path | teacher.model |
| 7 | hub id offline and not cached | student.model, HF_HUB_OFFLINE |
| 8 | missing data path | data.path |
| 9 | e-SNLI CSV loader on another dataset | data.loader |
| 10 | malformed JSONL | file and line |
| 11 | missing field | file, line and field |
| 12 | empty input | file, line, field |
| 13 | empty label | file, line, field |
| 14 | CQA answer not among its choices | file and line |
| 15 | non-UTF-8 bytes | file and line |
| 16 | duplicate ids | the id |
| 17 | empty split | the split |
| 18 | CSV without the input column | file, line, field |
| 19 | file that is neither .jsonl nor .csv | the file |
| 20 | inputs longer than the model's limit | one summary warning with the count |
| 21 | NaN loss | the step; checkpoints kept |
| 22 | disk full | the file; nothing half-written |
| 23 | unwritable run directory | the path |
| 24 | `--out` names an existing file | the file, "not a run directory"; the file untouched |
| 25 | own data with the oracle variant | distill.variants, 'oracle'; refused before the teacher trains |
| 26 | a bug in a stage (not bad input) | keeps its traceback, also written to RUN/log.txt |
| 27 | a hub id that does not exist (online) | "model not found" and the id, one line |
| 28 | `order: aligned`, a loss term guided by a method without step scores | attribution.order, the method |
| 29 | a seed twice in distill.seeds | distill.seeds, the seed |
| 30 | a variant twice in distill.variants, or spelled another way | distill.variants, the variant(s) |
| 31 | no student variant (`distill.variants: []`): refused, not run as a teacher alone | distill.variants |
| 32 | keep_blocks beyond a from-scratch teacher's blocks (init: teacher) | student.keep_blocks, teacher.num_layers |
| 33 | keep_blocks without block 0 on a T5 | student.keep_blocks, block 0 |
| 34 | keep_blocks beyond a pretrained model's blocks (config.json; a cut teacher's) | the field, the file |
| 35 | keep_blocks beyond a GGUF file's blocks (its header) | student.keep_blocks, the file and key |
| 36 | a YAML syntax error in a config file | one line: the file, line, column, what was expected |
| 37 | a YAML syntax error in a `--set` value | one line: the override, column, what was expected |
| 38 | a loss term (double backward) with student.gradient_checkpointing | the setting and the variant |

Every config case (1-9, 25, 28-38) is refused by `run` and `run --dry-run` alike, before the run directory exists.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import pytest

from attrdistill.cli import main
from attrdistill.config import ModelConfig, TrainConfig
from attrdistill.data.example import write_jsonl
from attrdistill.distill.trainer import TwoTaskTrainer, train
from attrdistill.modeling.features import encode
from tests.conftest import tiny_t5


def _refused(caplog, tmp_path: Path, *args: str) -> str:
    """Run the CLI, expect exit 2 with no stage output written, return the logged error."""
    out = tmp_path / "run"
    with caplog.at_level(logging.ERROR):
        assert main(["run", "--out", str(out), *args]) == 2
    assert not (out / "data" / "DONE.json").exists()
    return caplog.records[-1].getMessage()


def _sets(*overrides: str) -> list[str]:
    return [x for o in overrides for x in ("--set", o)]


CONFIG_CASES = {
    "unknown key": (["attribution.kk=3"], r"unknown config key 'attribution.kk'.*did you mean 'attribution.k'"),
    "wrong type": (["attribution.k=five"], r"attribution.k: expected int"),
    "k <= 0": (["attribution.k=0"], r"attribution.k: expected a value > 0"),
    "lambda < 0": (["distill.rationale_weight=-0.5"], r"distill.rationale_weight: expected a value >= 0"),
    "lr <= 0": (["student.train.learning_rate=0"], r"student.train.learning_rate: expected a value > 0"),
    "missing model path": (["teacher.model=./no/such/model"], r"teacher.model: './no/such/model' is not an existing"),
    "offline hub id": (["student.model=someone/not-cached-model"], r"student.model: .*HF_HUB_OFFLINE=1"),
    "missing data path": (["data.source=cqa", "data.path=/no/such/dsbs"],
                          r"data.path: '/no/such/dsbs' is not a folder"),
    "esnli_csv on cqa": (["data.source=cqa", "data.loader=esnli_csv"], r"data.loader: esnli_csv reads e-SNLI only"),
    "missing gguf file": (["student.gguf_file=/no/such/model.gguf"],
                          r"student.gguf_file: '/no/such/model.gguf' is not a file"),
    # A loss term's guide is attributed like a rationale source: under order aligned it needs step scores.
    "aligned guide without step scores": (["attribution.order=aligned",
                                           "distill.variants=[standard,match:integrated_gradients]"],
                                          r"attribution.order: aligned needs per-target-token scores, which "
                                          r"integrated_gradients does not give"),
    "seed twice": (["distill.seeds=[0,0]"], r"^distill.seeds: seed 0 appears twice"),
    "match with checkpointing": (["distill.variants=[standard,match:occlusion]", "student.gradient_checkpointing=true"],
                                 r"^student.gradient_checkpointing: 'match:occlusion' takes a gradient of the "
                                 r"student's saliency \(a double backward\)"),
    "variant twice": (["distill.variants=[standard,kd,standard]"], r"^distill.variants: 'standard' appears twice"),
    "variant spelled twice": (["distill.variants=[kd+saliency,saliency+kd]"],
                              r"^distill.variants: 'saliency\+kd' is 'kd\+saliency' again"),
    "no variant": (["distill.variants=[]"], r"^distill.variants: expected at least one student variant"),
    # The block count comes from the teacher's size fields (validate), or a model's config.json or GGUF header
    # (check_environment, the files in $TMP: FILES): never from training the teacher or loading weights.
    "keep_blocks beyond the teacher's": (["student.init=teacher", "student.keep_blocks=[0,99]"],
                                         r"^student.keep_blocks: expected increasing block indices in 0\.\.1, got "
                                         r"\[0, 99\]: the teacher \(student.init: teacher\) has 2 blocks in each "
                                         r"stack \(teacher.num_layers\)$"),
    "keep_blocks without T5 block 0": (["student.init=teacher", "student.keep_blocks=[1]"],
                                       r"^student.keep_blocks: a T5 must keep block 0 \(its relative position "
                                       r"bias\), got \[1\]"),
    "keep_blocks beyond config.json": (["student.model=$TMP/llama", "student.keep_blocks=[0,4]"],
                                       r"^student.keep_blocks: expected increasing block indices in 0\.\.3, got "
                                       r"\[0, 4\]: student.model has 4 blocks \(\S+/llama/config.json: "
                                       r"num_hidden_layers\)$"),
    "keep_blocks beyond a cut teacher": (["teacher.model=$TMP/t5", "teacher.keep_every=2", "student.init=teacher",
                                          "student.keep_blocks=[0,3]"],
                                         r"^student.keep_blocks: expected increasing block indices in 0\.\.2, .*: "
                                         r"the teacher \(student.init: teacher\) has 3 blocks in each stack \(6 of "
                                         r"\S+/t5/config.json: num_layers, cut by teacher.keep_every 2\)$"),
    "keep_blocks beyond a GGUF header": (["student.gguf_file=$TMP/llama.gguf", "student.keep_blocks=[0,2,5]"],
                                         r"^student.keep_blocks: expected increasing block indices in 0\.\.4, got "
                                         r"\[0, 2, 5\]: student.gguf_file has 5 blocks \(\S+/llama.gguf: "
                                         r"llama.block_count\)$"),
    "YAML syntax error in a file": (["$TMP/bad.yaml"],   # an entry without '=' is the config file
                                    r"^\S+/bad.yaml: line 3, column 1: not valid YAML: expected ',' or '\]', but "
                                    r"got '<stream end>' \(while parsing a flow sequence that starts at line 2, "
                                    r"column 4\)$"),
    "YAML syntax error in --set": (["distill.seeds=[0,1"],
                                   r"^override 'distill.seeds=\[0,1': line 1, column 19: not valid YAML: expected "
                                   r"',' or '\]', but got '<stream end>' \(while parsing a flow sequence that "
                                   r"starts at line 1, column 15\)$"),
}

# The files some cases name as $TMP/...: a config with a syntax error, two pretrained models' config.json.
FILES = {"bad.yaml": "name: mine\na: [1, 2\n",
         "llama/config.json": json.dumps({"model_type": "llama", "num_hidden_layers": 4}),
         "t5/config.json": json.dumps({"model_type": "t5", "is_encoder_decoder": True, "num_layers": 6})}


def _gguf(path: Path, blocks: int) -> None:
    """A GGUF file with a header only: its architecture and block count, no tensors."""
    import gguf
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(blocks)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _args(entries: list[str], tmp_path: Path) -> list[str]:
    """--set for each key=value, the config file for an entry without '='; $TMP is `tmp_path`, holding FILES."""
    for name, text in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    _gguf(tmp_path / "llama.gguf", 5)
    entries = [e.replace("$TMP", str(tmp_path)) for e in entries]
    return [e for e in entries if "=" not in e] + _sets(*(e for e in entries if "=" in e))


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
@pytest.mark.parametrize("case", CONFIG_CASES)
def test_config_is_refused_before_any_work(case, dry_run, caplog, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    entries, pattern = CONFIG_CASES[case]
    with caplog.at_level(logging.ERROR):
        assert main(["run", "--out", str(tmp_path / "run"), *["--dry-run"] * dry_run, *_args(entries, tmp_path)]) == 2
    assert not (tmp_path / "run").exists(), "a refused config must not create the run directory"
    assert capsys.readouterr().out == "", "no plan is printed for a refused config"
    import re
    message = caplog.records[-1].getMessage()
    assert re.search(pattern, message) and "\n" not in message, message


def test_gguf_without_the_gguf_package_names_the_extra(tmp_path, monkeypatch, caplog):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    with caplog.at_level(logging.ERROR):
        assert main(["run", "--out", str(tmp_path / "run"), *_sets(f"teacher.gguf_file={gguf}")]) == 2
    assert "teacher.gguf_file: reading a GGUF file needs the gguf package: pip install 'attrdistill[gguf]'" \
        in caplog.records[-1].getMessage()


GOOD = [{"id": f"r{i}", "input": f"text number {i}", "label": "yes" if i % 2 else "no"} for i in range(6)]


def _files(tmp_path: Path, train_text: str | bytes, name: str = "train.jsonl") -> list[str]:
    train = tmp_path / name
    train.write_bytes(train_text if isinstance(train_text, bytes) else train_text.encode())
    write_jsonl(tmp_path / "test.jsonl", GOOD)
    return _sets("data.source=files", f"data.train_file={train}", f"data.test_file={tmp_path / 'test.jsonl'}")


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


DATA_CASES = {
    "malformed JSONL": (_jsonl(GOOD[:3]) + '{"id": "r9", "input": \n' + _jsonl(GOOD[3:]),
                        r"train.jsonl:4: not valid JSON"),
    "missing field": (_jsonl(GOOD[:2] + [{"id": "x", "input": "no label"}] + GOOD[2:]),
                      r"train.jsonl:3: missing or empty field\(s\) label"),
    "empty input": (_jsonl(GOOD[:4] + [{"id": "x", "input": "  ", "label": "yes"}]),
                    r"train.jsonl:5: missing or empty field\(s\) input"),
    "empty label": (_jsonl([{"id": "x", "input": "a b", "label": ""}] + GOOD),
                    r"train.jsonl:1: missing or empty field\(s\) label"),
    "non-UTF-8": (_jsonl(GOOD[:2]).encode() + b'{"id": "x", "input": "caf\xe9", "label": "no"}\n',
                  r"train.jsonl:3: not UTF-8 text \(byte 0xe9"),
    "duplicate ids": (_jsonl(GOOD + [GOOD[2]]), r"train.jsonl:7: id 'r2' is already used on line 3"),
    "empty split": ("\n\n", r"train.jsonl: no examples"),
}


@pytest.mark.parametrize("case", DATA_CASES)
def test_bad_data_is_refused_naming_file_and_line(case, caplog, tmp_path):
    text, pattern = DATA_CASES[case]
    import re
    message = _refused(caplog, tmp_path, *_files(tmp_path, text))
    assert re.search(pattern, message), message


def test_csv_without_the_input_column(caplog, tmp_path):
    message = _refused(caplog, tmp_path, *_files(tmp_path, "text,label\nhello,yes\nbye,no\n", "train.csv"))
    assert "train.csv:2: missing or empty field(s) input" in message


def test_file_of_another_kind(caplog, tmp_path):
    message = _refused(caplog, tmp_path, *_files(tmp_path, "a\tb\n", "train.tsv"))
    assert "train.tsv: expected a .jsonl or .csv file" in message


def test_cqa_answer_not_among_its_choices(caplog, tmp_path):
    rows = [{"id": f"q{i}", "question": f"Where is thing {i}?", "choices": ["a", "b", "c", "d", "e"], "answer": "b"}
            for i in range(4)]
    rows[2]["answer"] = "zoo"
    for split in ("train", "test"):
        write_jsonl(tmp_path / "dsbs" / "cqa" / f"cqa_{split}.json", rows)
    message = _refused(caplog, tmp_path, *_sets("data.source=cqa", f"data.path={tmp_path / 'dsbs'}"))
    assert "cqa_train.json:3: answer 'zoo' is not one of its choices" in message


def test_long_inputs_are_truncated_with_one_summary_warning(word_tok, caplog):
    texts = ["predict: " + " ".join(["the"] * n) for n in (3, 40, 50, 4)]
    with caplog.at_level(logging.WARNING, logger="attrdistill.modeling.features"):
        feats = encode(word_tok, texts, ["a"] * 4, max_input_length=16, max_target_length=8)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["2 of 4 inputs are longer than max_input_length=16 tokens and were truncated"]
    assert [len(f["input_ids"]) for f in feats] == [6, 16, 16, 7]


def test_nan_loss_stops_with_a_message_and_keeps_checkpoints(word_tok, examples, tmp_path, monkeypatch):
    real = TwoTaskTrainer.compute_loss

    def poisoned(self, model, inputs, *args, **kwargs):
        loss = real(self, model, inputs, *args, **kwargs)
        return loss * math.nan if self.state.global_step >= 3 else loss
    monkeypatch.setattr(TwoTaskTrainer, "compute_loss", poisoned)
    rows = [{"source": "predict: " + ex.input, "target": ex.label} for ex in examples]
    cfg = ModelConfig(train=TrainConfig(max_steps=8, eval_steps=2, batch_size=4, learning_rate=1e-3))
    with pytest.raises(RuntimeError, match=r"loss became nan at step 4.*checkpoint-2"):
        train(tiny_t5(len(word_tok)), word_tok, rows, rows[:4], cfg, tmp_path, label="teacher")
    kept = sorted(p.name for p in (tmp_path / "checkpoints").glob("checkpoint-*"))
    assert kept == ["checkpoint-2"], "the last good checkpoint stays; nothing is saved after the NaN"
    state = json.loads((tmp_path / "checkpoints" / "checkpoint-2" / "trainer_state.json").read_text())
    assert all(math.isfinite(h["loss"]) for h in state["log_history"] if "loss" in h)
    assert not (tmp_path / "model").exists()


def test_disk_full_leaves_nothing_half_written(tmp_path, caplog):
    """A write that fails (ENOSPC from /dev/full) removes its temporary file and keeps the old version."""
    if not Path("/dev/full").exists():
        pytest.skip("/dev/full is not available on this system")
    target = tmp_path / "rows.jsonl"
    write_jsonl(target, GOOD[:2])
    before = target.read_bytes()
    (tmp_path / "rows.jsonl.tmp").symlink_to("/dev/full")   # the temporary file lands on a full device
    with pytest.raises(OSError) as err:
        write_jsonl(target, GOOD * 2000)
    assert err.value.errno == 28   # ENOSPC
    assert target.read_bytes() == before and not (tmp_path / "rows.jsonl.tmp").exists()
    # Through the CLI: the data stage cannot write its first split; it says so and exits 2.
    from attrdistill.config import load_config
    from attrdistill.pipeline.plan import plan
    from attrdistill.pipeline.runner import fingerprints
    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    fp = fingerprints(plan(run, load_config(None, [])))["data"]
    (run / "data" / "STARTED.json").write_text(json.dumps({"fingerprint": fp}))
    (run / "data" / "teacher_train.jsonl.tmp").symlink_to("/dev/full")
    with caplog.at_level(logging.ERROR):
        assert main(["run", "--out", str(run)]) == 2
    message = caplog.records[-1].getMessage()
    assert "cannot write" in message and "No space left" in message, message
    assert not (run / "data" / "DONE.json").exists() and not (run / "data" / "teacher_train.jsonl").exists()


def test_unwritable_run_directory(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with caplog.at_level(logging.ERROR):
        assert main(["run", "--out", str(blocker / "run")]) == 2
    message = caplog.records[-1].getMessage()
    assert "cannot write" in message and str(blocker) in message
    assert os.listdir(tmp_path) == ["a-file"]


def test_out_naming_a_file(tmp_path, caplog):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    with caplog.at_level(logging.ERROR):
        assert main(["run", "--out", str(f)]) == 2
    message = caplog.records[-1].getMessage()
    assert str(f) in message and "is a file, not a run directory" in message, message
    assert f.read_text() == "mine"


def test_own_data_with_the_oracle_variant_is_refused_before_the_teacher_trains(tmp_path, caplog):
    rows = "\n".join(json.dumps({"input": f"a story number {i}", "label": "yes" if i % 2 else "no"})
                     for i in range(20))
    for name in ("train", "test"):
        (tmp_path / f"{name}.jsonl").write_text(rows + "\n")
    run = tmp_path / "run"
    with caplog.at_level(logging.ERROR):
        assert main(["run", "--out", str(run), "--set", "data.source=files",
                     "--set", "distill.variants=[standard,oracle]",
                     "--set", f"data.train_file={tmp_path / 'train.jsonl'}",
                     "--set", f"data.test_file={tmp_path / 'test.jsonl'}"]) == 2
    message = caplog.records[-1].getMessage()
    assert "distill.variants" in message and "'oracle'" in message, message
    assert not (run / "teacher").exists(), "nothing is trained before the check"


def test_a_bug_keeps_its_traceback(tmp_path, caplog, monkeypatch):
    import attrdistill.pipeline.plan as stage_plan

    def broken(*args, **kwargs):
        raise IndexError("index 7 is out of bounds")   # what a shape bug raises, not bad input
    monkeypatch.setattr(stage_plan, "run_stages", broken)   # what the CLI runs, through api.run
    with caplog.at_level(logging.ERROR), pytest.raises(IndexError, match="index 7"):
        main(["run", "--out", str(tmp_path / "run")])
    assert "unexpected error; the traceback is also in" in caplog.text
    assert "IndexError: index 7 is out of bounds" in (tmp_path / "run" / "log.txt").read_text()


def test_a_missing_hub_model_is_one_line(tmp_path, caplog, monkeypatch):
    import attrdistill.pipeline.plan as stage_plan

    def missing(*args, **kwargs):   # what transformers raises for a hub id that does not exist
        raise OSError("HuggingFaceTB/SmolLM2-135M-Instrukt is not a local folder and is not a valid model identifier "
                      "listed on 'https://huggingface.co/models'\nIf this is a private repository, ...")
    monkeypatch.setattr(stage_plan, "run_stages", missing)   # what the CLI runs, through api.run
    with caplog.at_level(logging.ERROR):
        assert main(["run", "--out", str(tmp_path / "run")]) == 2
    message = caplog.records[-1].getMessage()
    assert message.startswith("model not found: HuggingFaceTB/SmolLM2-135M-Instrukt") and "\n" not in message


def test_force_with_a_missing_data_folder_keeps_the_run(tmp_path, caplog):
    run = tmp_path / "run"
    (run / "teacher").mkdir(parents=True)
    (run / "teacher" / "DONE.json").write_text("{}")
    with caplog.at_level(logging.ERROR):
        assert main(["run", "--out", str(run), "--force", *_sets("data.source=cqa", "data.path=/no/such/dsbs")]) == 2
    assert "data.path: '/no/such/dsbs' is not a folder" in caplog.records[-1].getMessage()
    assert (run / "teacher" / "DONE.json").is_file(), "a refused run must not remove what --force would replace"


def test_aligned_guide_without_step_scores_is_refused_by_dry_run_too(caplog, tmp_path):
    """The variant registry parses variants once for validation, the plan and the engine: `--dry-run` refuses what
    the attribute stage would refuse after the teacher has trained."""
    with caplog.at_level(logging.ERROR):
        assert main(["run", "--dry-run", "--out", str(tmp_path / "run"),
                     *_sets("attribution.order=aligned", "distill.variants=[match:integrated_gradients]")]) == 2
    assert "integrated_gradients does not give" in caplog.records[-1].getMessage()
    assert not (tmp_path / "run").exists()
