"""The input format's words (templates' scaffold) are never rationale words, guide no loss term and stay out of
the analyses, while their scores stay in the attribution rows, marked."""

from __future__ import annotations

import json

import pytest
import torch

from attrdistill.attribution.select import select, top_k
from attrdistill.cli import main
from attrdistill.config import AttributionConfig, DataConfig, load_config, to_dict
from attrdistill.data import dsbs
from attrdistill.data.sources import input_template, read_table, scaffolds
from attrdistill.errors import ConfigError, DataError
from attrdistill.evaluate.analysis import human_agreement
from attrdistill.modeling.template import Template
from attrdistill.modeling.words import words
from attrdistill.pipeline.records import AttributionRow

NLI = "Premise: {premise}\nHypothesis: {hypothesis}"


def test_a_template_fills_its_fields_and_tells_its_own_words_from_theirs():
    t = Template(NLI)
    text = t.fill({"premise": "A dog runs: fast.", "hypothesis": "Premise holds."})
    assert text == "Premise: A dog runs: fast.\nHypothesis: Premise holds."
    ws = words(text)
    # The field values' own "Premise" and ":" are content; only the template's are scaffold.
    assert [ws[i] for i in t.scaffold(text)] == ["Premise", ":", "Hypothesis", ":"]
    assert t.scaffold(text) == [0, 1, 8, 9]
    assert t.content_spans(text) == [(9, 26), (39, 53)]
    assert t.scaffold("no template here") is None
    assert t.has_scaffold and not Template("{input}").has_scaffold and Template("{a}</s>{b}").has_scaffold
    assert Template("{{x}} {a}").fill({"a": "b"}) == "{x} b"


@pytest.mark.parametrize("pattern, message", [
    ("{0} and {1}", "expected named fields"), ("{a!r}", "expected named fields"), ("{a:>5}", "expected named fields"),
    ("plain text", "got no field"), ("{a} {a}", "occur more than once"), ("{a", "literal brace"),
])
def test_bad_templates_are_refused_with_what_was_expected(pattern, message):
    with pytest.raises(ConfigError, match=message):
        Template(pattern)


def test_every_dsbs_format_marks_its_scaffold():
    cqa = dsbs.format_example("cqa", {"question": "Where do fish live?", "answer": "sea",
                                      "choices": ["sea", "tree", "sky", "car", "desk"]}, "q1")
    marked = [words(cqa.input)[i] for i in dsbs.template("cqa").scaffold(cqa.input)]
    assert marked == ["Answer", "Choices", ":"] + [w for c in "abcde" for w in ("(", c, ")")]
    row = {"premise": "A man sleeps.", "hypothesis": "A man rests.", "label": 0}
    eos = dsbs.format_example("esnli", row, "e1", "eos")
    assert [words(eos.input)[i] for i in dsbs.template("esnli", "eos").scaffold(eos.input)] == ["<", "/", "s", ">"]
    text = dsbs.format_example("anli1", row, "a1", "text")
    assert [words(text.input)[i] for i in dsbs.template("anli1", "text").scaffold(text.input)] == [
        "Premise", ":", "Hypothesis", ":"]
    assert dsbs.template("svamp") is None and input_template(DataConfig()) is None, "one field: content throughout"
    assert scaffolds(DataConfig(source="esnli", nli_format="text"), [text]) == [[0, 1, 6, 7]]
    with pytest.raises(DataError, match="example a1: its input does not follow the template"):
        scaffolds(DataConfig(source="esnli", nli_format="eos"), [text])


def test_selection_never_picks_a_scaffold_word_but_keeps_its_score():
    text = "Premise: A dog runs.\nHypothesis: An animal moves."
    scaffold = Template(NLI).scaffold(text)
    n = len(words(text))
    scores = [10.0 if i in scaffold else float(i) for i in range(n)]   # the format scores highest
    from attrdistill.data.example import Example
    record = {"target": "entailment", "token_scores": None, "word_scores": scores, "token_word": None}
    row = select([record], [Example("e", text, "entailment")], AttributionConfig(k=3), [scaffold])[0]
    assert not set(row.top) & set(scaffold) and row.scaffold == scaffold and row.scores == scores
    assert "Hypothesis" not in row.rationale
    assert top_k(words(text), torch.tensor(scores), 3, skip=set(scaffold)) == [10, 9, 8]
    assert AttributionRow.from_json(row.to_json()) == row
    plain = select([record], [Example("e", text, "entailment")], AttributionConfig(k=3))[0]
    assert "scaffold" not in plain.to_json() and plain.top[:2] == [0, 6], "without a template: as before"


def test_human_agreement_ranks_content_words_only():
    row = AttributionRow("e", "t", ["Premise", ":", "a", "dog", "cat"], [9.0, 0.0, 1.0, 2.0, 3.0], [4], "cat",
                         scaffold=[0, 1])
    from attrdistill.data.example import Example
    ex = Example("e", "Premise: a dog cat", "t", human=[3])
    # Among the content words (a 1, dog 2, cat 3) the human word ranks 2nd: AP 1/2; with "Premise" it would be 3rd.
    assert human_agreement([row], [ex])["auprc"] == pytest.approx(0.5)


def test_own_files_with_an_input_template_missing_a_column_are_refused_with_file_line_and_field(tmp_path):
    f = tmp_path / "train.jsonl"
    f.write_text(json.dumps({"premise": "a b", "hypothesis": "c", "label": "x"}) + "\n"
                 + json.dumps({"premise": "a b", "label": "y"}) + "\n")
    with pytest.raises(DataError, match=r"train.jsonl:2: missing or empty field\(s\) hypothesis \(data.input_template"):
        read_table(f, template=Template(NLI))
    with pytest.raises(ConfigError, match="data.input_template: builds inputs of source 'files'"):
        load_config(None, ["data.source=esnli", f"data.input_template={json.dumps(NLI)}"])


def test_the_data_fingerprint_is_as_before_while_the_later_fields_are_unset():
    """Runs made before data.input_template (student_train_file, transfer_file) existed keep their data and teacher
    (and so every unit)."""
    from pathlib import Path

    from attrdistill import __version__
    from attrdistill.pipeline.layout import DATA
    from attrdistill.pipeline.plan import LATER_DATA, plan
    from attrdistill.pipeline.runner import fingerprint, fingerprints
    assert "input_template" in LATER_DATA
    cfg = load_config(None, [])
    before = {k: v for k, v in to_dict(cfg.data).items() if k not in LATER_DATA}
    roles = [(m.model, m.tokenizer) for m in (cfg.teacher, cfg.student)]
    assert fingerprints(plan(Path("/tmp/unused"), cfg))[DATA] == fingerprint(DATA, (__version__, before, roles), [])
    files = ["data.source=files", "data.train_file=a.jsonl", "data.test_file=b.jsonl"]
    with_template = load_config(None, files + [f"data.input_template={json.dumps(NLI)}"])
    fps = [fingerprints(plan(Path("/tmp/unused"), c)) for c in (load_config(None, files), with_template)]
    assert all(fps[0][k] != fps[1][k] for k in fps[0] if k != "report"), "the template builds other inputs"


def test_a_run_on_own_files_with_a_template_keeps_its_words_out_of_rationales_guides_and_analyses(tmp_path, capsys):
    from attrdistill.data.synthetic import generate
    from attrdistill.distill.rows import guide_scores
    from attrdistill.pipeline.records import attribution_rows
    for name, seed, n in (("train", 0, 40), ("test", 1, 12)):
        rows = []
        for ex in generate(n, seed=seed):
            first, _, rest = ex.input.partition(". ")
            rows.append({"premise": first + ".", "hypothesis": rest or first, "label": ex.label})
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = tmp_path / "run"
    sets = ["data.source=files", f"data.train_file={tmp_path / 'train.jsonl'}",
            f"data.test_file={tmp_path / 'test.jsonl'}",
            f"data.input_template={json.dumps(NLI)}", "distill.variants=[saliency, match:saliency]",
            "attribution.k=3", "teacher.d_model=32", "teacher.d_ff=64", "teacher.train.max_steps=4",
            "teacher.train.eval_steps=2", "student.d_model=16", "student.d_ff=32", "student.train.max_steps=2",
            "student.train.eval_steps=1", "eval.max_new_tokens=4", "analysis.faithfulness_examples=4"]
    assert main(["-q", "run", "--out", str(run), *[x for s in sets for x in ("--set", s)]]) == 0
    first = json.loads((run / "data" / "student_train.jsonl").read_text().splitlines()[0])
    assert first["input"].startswith("Premise: ") and "\nHypothesis: " in first["input"]
    rows = attribution_rows(run, "saliency")
    assert rows and all([r.words[i] for i in r.scaffold] == ["Premise", ":", "Hypothesis", ":"] for r in rows)
    assert all(not set(r.top) & set(r.scaffold) and len(r.scores) == len(r.words) for r in rows)
    assert any(r.scores[r.scaffold[0]] != 0 for r in rows), "the format's scores stay in the rows"
    from attrdistill.pipeline.layout import TRAIN, load_split
    guides = guide_scores(run, load_config(run / "config.yaml"), "saliency", load_split(run, TRAIN))
    assert all(guides[r.id][i] == 0 for r in rows for i in r.scaffold)
    assert all(guides[r.id][i] == r.scores[i] for r in rows for i in r.top)
    m = json.loads((run / "metrics.json").read_text())
    assert m["analyses"]["faithfulness"]["saliency"]["n"] == 4
    assert main(["show", str(run)]) == 0
    assert "format words (italic; never rationale words): Premise : Hypothesis :" in capsys.readouterr().out
