"""A student you can ship: `attrdistill export` writes a folder the Auto classes load, whose greedy decoding
reproduces the run's test predictions, with a model card; `attrdistill predict` uses it (or a run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attrdistill.cli import main
from attrdistill.errors import ConfigError, DataError
from attrdistill.pipeline.layout import load_split
from attrdistill.pipeline.records import predictions
from attrdistill.ship.export import export
from attrdistill.ship.use import predict_inputs, read_inputs
from tests.test_cli import TINY, _sets


def _run(tmp_path_factory: pytest.TempPathFactory, name: str, extra: list[str]) -> Path:
    run = tmp_path_factory.mktemp(name) / "run"
    sets = [o for o in TINY if not o.startswith("distill.variants")] + extra
    assert main(["-q", "run", "--out", str(run), *_sets(sets)]) == 0
    return run


@pytest.fixture(scope="module")
def seq2seq_run(tmp_path_factory) -> Path:
    return _run(tmp_path_factory, "ship", ["distill.variants=[standard, saliency]", "distill.seeds=[0, 1]"])


def _test_predictions(run: Path, name: str) -> list[str]:
    return [p.prediction for p in predictions(run, name)]


def test_the_default_export_is_the_verdicts_student_and_reproduces_its_test_predictions(seq2seq_run, tmp_path):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
    metrics = json.loads((seq2seq_run / "metrics.json").read_text())
    best = metrics["verdict"]["best"]
    valid = metrics["students"][best]["valid"]["per_seed"]
    seed = max(sorted(valid, key=int), key=lambda s: valid[s])
    out = export(seq2seq_run, tmp_path / "student")
    settings = json.loads((out / "attrdistill.json").read_text())
    assert (settings["variant"], settings["seed"]) == (best, int(seed)), "chosen on validation"
    model = AutoModelForSeq2SeqLM.from_pretrained(out)
    assert AutoTokenizer.from_pretrained(out) and model.generation_config.num_beams == 1
    assert not (out / "training_args.bin").exists()
    test = load_split(seq2seq_run, "test")
    rows = predict_inputs(out, [ex.input for ex in test])
    assert [r["label"] for r in rows] == _test_predictions(seq2seq_run, f"{best}-seed{seed}")
    card = (out / "README.md").read_text()
    accuracy = metrics["students"][best]["per_seed"][seed]
    assert f"this seed {100 * accuracy:.1f}%" in card and "95% interval [" in card
    assert "pipeline_tag: text2text-generation" in card and "attrdistill run attrdistill_config.yaml" in card
    assert (out / "attrdistill_config.yaml").read_text().startswith("# ")


def test_a_named_rationale_student_predicts_its_rationale_too_from_the_command_line(seq2seq_run, tmp_path, capsys):
    out = tmp_path / "saliency"
    assert main(["export", str(seq2seq_run), str(out), "--student", "saliency", "--seed", "1"]) == 0
    assert "the teacher's top-3 words by saliency attribution" in (out / "README.md").read_text()
    capsys.readouterr()
    text = load_split(seq2seq_run, "test")[0].input
    assert main(["predict", str(out), "--input", text]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["input"] == text and row["label"] == _test_predictions(seq2seq_run, "saliency-seed1")[0]
    assert isinstance(row["rationale"], str)
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("".join(json.dumps({"text": ex.input}) + "\n" for ex in load_split(seq2seq_run, "test")[:3]))
    assert main(["predict", str(seq2seq_run), "--file", str(inputs), "--field", "text",
                 "--out", str(tmp_path / "p.jsonl")]) == 0, "a run predicts with its chosen student"
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 3


def test_bad_exports_and_inputs_are_refused_with_one_line_before_any_work(seq2seq_run, tmp_path):
    with pytest.raises(ConfigError, match="--student kd: no such student in .* \\(it has standard, saliency\\)"):
        export(seq2seq_run, tmp_path / "a", "kd")
    with pytest.raises(ConfigError, match="--seed 7: saliency has no such seed .* \\(seeds \\[0, 1\\]\\)"):
        export(seq2seq_run, tmp_path / "a", "saliency", 7)
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("")
    with pytest.raises(ConfigError, match="exists and is not an empty folder"):
        export(seq2seq_run, full)
    with pytest.raises(ConfigError, match="not a run directory"):
        export(tmp_path, tmp_path / "b")
    with pytest.raises(ConfigError, match="neither an exported student"):
        predict_inputs(tmp_path, ["a"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "fine"}\n{"text": "no input field"}\n')
    with pytest.raises(DataError, match="bad.jsonl:2: expected a non-empty text in the field 'input'"):
        read_inputs(bad)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="empty.jsonl: no inputs"):
        read_inputs(tmp_path / "empty.jsonl")
    assert main(["export", str(seq2seq_run), str(tmp_path / "c"), "--student", "kd"]) == 2
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_a_decoder_only_student_loads_in_a_text_generation_pipeline_and_reproduces_its_predictions(
        tmp_path_factory, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
    run = _run(tmp_path_factory, "ship-causal", ["distill.variants=[standard]", "student.architecture=llama",
                                                 "student.num_heads=2"])
    out = export(run, tmp_path / "causal")
    model, tok = AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)
    settings = json.loads((out / "attrdistill.json").read_text())
    card = (out / "README.md").read_text()
    assert settings["causal"] and "pipeline_tag: text-generation" in card
    assert "(one seed: no spread or interval)" in card
    test = load_split(run, "test")[:4]
    expected = _test_predictions(run, "standard-seed0")[:4]
    assert [r["label"] for r in predict_inputs(out, [ex.input for ex in test])] == expected
    generate = pipeline("text-generation", model=model, tokenizer=tok)
    prompts = [settings["predict_prefix"] + ex.input + settings["separator"] for ex in test]
    # The run's word-level tokenizer ends a lone text with </s>, which the student never saw after its prompt.
    texts = [g[0]["generated_text"].strip() for g in generate(prompts, return_full_text=False,
                                                                 add_special_tokens=False)]
    assert texts == expected
