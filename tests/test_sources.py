"""Task sources in a run: DSbS datasets as splits, users' own files, `data show`, task-aware accuracy."""

from __future__ import annotations

import pytest

from attrdistill.cli import main
from attrdistill.config import DataConfig, load_config
from attrdistill.data.sources import build_splits, read_table, show
from attrdistill.errors import ConfigError, DataError
from attrdistill.evaluate.answers import accuracy, matcher


def test_cqa_splits_follow_dsbs(shared):
    splits = build_splits(DataConfig(source="cqa", path=str(shared / "data" / "dsbs")))
    assert len(splits["teacher_train"]) + len(splits["valid"]) == 9741 and len(splits["test"]) == 1221
    assert len(splits["valid"]) == 975, "DSbS holds out 10% of train (seed 0) for validation"
    assert splits["teacher_train"] is splits["student_train"], "teacher and students learn from one train set"
    assert splits["test"][0].input.startswith("A beaver is know for building prowess")
    capped = build_splits(DataConfig(source="svamp", path=str(shared / "data" / "dsbs"), limit=7))
    assert {k: len(v) for k, v in capped.items()} == dict.fromkeys(capped, 7)
    both = build_splits(DataConfig(source="svamp", path=str(shared / "data" / "dsbs"), limit=9, eval_limit=4))
    assert {k: len(v) for k, v in both.items()} == {"teacher_train": 9, "student_train": 9, "valid": 4, "test": 4}
    assert [ex.id for ex in both["test"]] == [ex.id for ex in capped["test"][:4]], "the first examples of each split"


def test_missing_train_split_says_where_to_get_it(shared):
    with pytest.raises(FileNotFoundError, match="anli"):
        build_splits(DataConfig(source="anli1", path=str(shared / "data" / "dsbs")))
    with pytest.raises(FileNotFoundError, match="data.path"):
        build_splits(DataConfig(source="cqa", path="/nonexistent/dsbs"))


def test_train_split_valid_holds_out_a_tenth_and_tests_on_test(shared):
    splits = build_splits(DataConfig(source="esnli", path=str(shared / "data" / "dsbs"), train_split="valid",
                                     nli_format="text"))
    train, valid, test = splits["teacher_train"], splits["valid"], splits["test"]
    assert (len(train), len(valid), len(test)) == (8857, 985, 9824), "9,842 valid rows: 90% train, 10% validation"
    assert {ex.id for ex in train}.isdisjoint(ex.id for ex in valid)
    assert all(ex.id.startswith("esnli-valid-") for ex in train + valid)
    assert all(ex.id.startswith("esnli-test-") for ex in test)
    assert all(ex.rationale for ex in train[:50]), "the valid split's PaLM rationales come along (dsbs variant)"
    again = build_splits(DataConfig(source="esnli", path=str(shared / "data" / "dsbs"), train_split="valid"))
    assert [ex.id for ex in again["valid"]] == [ex.id for ex in valid], "the held-out part is seeded"
    with pytest.raises(ConfigError, match="data.train_split"):
        load_config(None, ["data.train_split=test"])


def test_svamp_is_judged_by_value_others_exactly():
    svamp, cqa = matcher("svamp"), matcher("cqa")
    assert svamp("(84 / 2)", "( 84.0 / 2.0 )") and not svamp("(84 * 2)", "( 84.0 / 2.0 )")
    assert not svamp("__import__('os')", "( 1.0 )") and not svamp("1/0", "( 1.0 )")
    assert cqa("wooded  area", "wooded area") and not cqa("wooded", "wooded area")
    assert accuracy(["(2+2)", "5"], ["( 4.0 )", "( 4.0 )"], svamp) == 0.5


def test_own_files_jsonl_and_csv(tmp_path):
    jl = tmp_path / "mine.jsonl"
    jl.write_text('{"q": "is it?", "a": "yes"}\n{"q": "and this?", "a": "no"}\n')
    rows = read_table(jl, "q", "a")
    assert [(r.input, r.label) for r in rows] == [("is it?", "yes"), ("and this?", "no")]
    csv_file = tmp_path / "mine.csv"
    csv_file.write_text("input,label\nhello there,greeting\n,empty\n")
    with pytest.raises(ValueError, match=r"mine.csv:3: missing or empty field\(s\) input"):
        read_table(csv_file)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "a", "label": "b"}\n{"input": \n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        read_table(bad)


def test_data_show(shared, capsys):
    text = show("svamp", shared / "data" / "dsbs", n=2, split="test")
    assert text.startswith("split sizes: train 800, test 200") and text.count("[test]") == 2
    assert main(["data", "show", str(shared / "data" / "dsbs" / "cqa"), "--n", "1"]) == 0
    assert "Answer Choices:" in capsys.readouterr().out
    assert main(["data", "show", "nonsense"]) == 2


def test_single_sequence_answers_are_read_after_the_mark():
    from attrdistill.evaluate.answers import answer_of
    assert answer_of("boss, charge, so the answer is in charge of project") == "in charge of project"
    assert answer_of("plain label") == "plain label"
    assert matcher("cqa")("a, b, so the answer is wooded area", "wooded area")
    assert matcher("svamp")("10, 45, so the answer is (10 * 45)", "( 450.0 )")
    from attrdistill.evaluate.answers import rationale_of, single_target
    for fmt in ("single", "label_first"):
        text = single_target("in charge", "boss, charge", fmt)
        assert answer_of(text) == "in charge" and normalize_words(rationale_of(text)) == ["boss", "charge"]
    # word-level tokenizers decode with spaces around punctuation
    assert answer_of("reach wet , because ladder , reef") == "reach wet"
    assert rationale_of("reach wet , because ladder , reef") == "ladder , reef" and rationale_of("plain") == ""


def normalize_words(text: str) -> list[str]:
    from attrdistill.modeling.words import is_punctuation, words
    return [w for w in words(text) if not is_punctuation(w)]


def test_own_files_as_a_run_source(tmp_path):
    from attrdistill.config import ConfigError, check_environment, load_config
    train = tmp_path / "train.jsonl"
    train.write_text("".join(f'{{"q": "question {i}", "a": "answer {i % 3}", "why": "w{i}"}}\n' for i in range(30)))
    test = tmp_path / "test.csv"
    test.write_text("q,a\nwhat now,answer 1\nand then,answer 2\n")
    cfg = load_config(None, ["data.source=files", f"data.train_file={train}", f"data.test_file={test}",
                             "data.input_field=q", "data.label_field=a", "data.rationale_field=why"])
    splits = build_splits(cfg.data)
    assert len(splits["student_train"]) == 27 and len(splits["valid"]) == 3 and len(splits["test"]) == 2
    assert splits["student_train"][0].rationale.startswith("w") and splits["test"][0].rationale == ""
    with pytest.raises(ConfigError, match="data.test_file: expected a .jsonl/.csv file for source 'files', got None"):
        load_config(None, ["data.source=files", f"data.train_file={train}"])
    elsewhere = load_config(None, ["data.source=files", f"data.train_file={train}", "data.test_file=/no/test.csv"])
    with pytest.raises(ConfigError, match="data.test_file: expected an existing .jsonl/.csv file"):
        check_environment(elsewhere)   # a missing file is found when a run starts, not when the config resolves


def test_cqa_accepts_the_choice_letter():
    cqa, anli = matcher("cqa"), matcher("anli1")
    choices = ["british columbia", "body of water", "wooded area", "pay debts", "zoo"]
    for said in ("c", "(c)", "(C).", " c "):
        assert cqa(said, "wooded area", choices), said
    assert not cqa("b", "wooded area", choices) and not cqa("f", "wooded area", choices)
    assert not cqa("c", "wooded area"), "without the choices a letter means nothing"
    assert not anli("a", "entailment", ["entailment", "neutral", "contradiction"]), "letters are CQA's only"
    assert accuracy(["c", "zoo"], ["wooded area", "zoo"], cqa, [choices, choices]) == 1.0


def test_hub_loader_in_a_run_config(tmp_path, shared):
    """data.loader=hub goes through the `datasets` library; a save_to_disk folder stands in for the hub."""
    from tests.test_hub import COS_E, head, save
    hub = save(tmp_path, {"train": head("cqa", "train", 20), "validation": head("cqa", "test", 4)}, COS_E)
    splits = build_splits(DataConfig(source="cqa", loader="hub", hub_id=hub))
    assert (len(splits["teacher_train"]), len(splits["valid"]), len(splits["test"])) == (18, 2, 4)
    assert splits["test"][0].input.startswith("A beaver is know for building prowess")
    assert all(ex.human is not None for ex in splits["test"])


def test_esnli_csv_loader_in_a_run_config(tmp_path):
    from tests.test_esnli_csv import DEV_ROW, TRAIN_HEADER, write
    for name in ("esnli_dev.csv", "esnli_test.csv"):
        write(tmp_path / name, [DEV_ROW])
    for i, name in enumerate(("esnli_train_1.csv", "esnli_train_2.csv")):
        write(tmp_path / name, [[f"pair{i}"] + DEV_ROW[1:9]], TRAIN_HEADER)
    splits = build_splits(DataConfig(source="esnli", loader="esnli_csv", path=str(tmp_path)))
    assert len(splits["teacher_train"]) == 2 and len(splits["valid"]) == 1
    assert splits["test"][0].label == "neutral" and splits["test"][0].human


def test_esnli_csv_loader_is_for_esnli_only():
    from attrdistill.config import ConfigError, load_config
    with pytest.raises(ConfigError, match="esnli_csv"):
        load_config(None, ["data.source=cqa", "data.loader=esnli_csv"])


def test_human_variant_rationales_are_the_highlighted_words(shared):
    from attrdistill.config import RunConfig
    from attrdistill.distill.rows import rationales_for
    test = build_splits(DataConfig(source="cqa", path=str(shared / "data" / "dsbs"), limit=3))["test"]
    got = rationales_for(None, RunConfig(), "human", test)
    assert got[test[0].id] == "their, supplies, come"
    svamp = DataConfig(source="svamp", path=str(shared / "data" / "dsbs"), limit=2)
    with pytest.raises(ValueError, match="human highlights"):
        rationales_for(None, RunConfig(), "human", build_splits(svamp)["test"])


def test_own_files_carry_decisive_and_human_words(tmp_path):
    jl = tmp_path / "marked.jsonl"
    jl.write_text('{"input": "Tom packed a ladder near the reef .", "label": "reach wet", "why": ["ladder", "reef"], '
                  '"hl": [6, 3]}\n')
    [ex] = read_table(jl, decisive_field="why", human_field="hl")
    assert ex.decisive == [3, 6] and ex.human == [3, 6]
    csv_file = tmp_path / "marked.csv"
    csv_file.write_text('input,label,why\n"a b a c",x,"a, a, c"\nb c,y,[1]\n')
    assert [ex.decisive for ex in read_table(csv_file, decisive_field="why")] == [[0, 2, 3], [1]]
    for cell, message in [('"zebra"', "the word 'zebra' is not in the input"), ("[9]", "word index 9 is outside"),
                          ('"[1, "', "not a valid JSON list")]:
        csv_file.write_text(f"input,label,why\nb c,y,{cell}\n")
        with pytest.raises(ValueError, match=rf"marked.csv:2: field 'why': {message}"):
            read_table(csv_file, decisive_field="why")


def test_own_files_with_decisive_words_train_the_oracle_and_report_recall(tmp_path):
    import json

    from attrdistill.data.synthetic import generate
    from attrdistill.modeling.words import words
    for name, seed, n in (("train", 0, 40), ("test", 1, 12)):
        rows = [{"input": ex.input, "label": ex.label, "why": [words(ex.input)[i] for i in ex.decisive]}
                for ex in generate(n, seed=seed)]
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = tmp_path / "run"
    sets = ["data.source=files", f"data.train_file={tmp_path / 'train.jsonl'}", "data.decisive_field=why",
            f"data.test_file={tmp_path / 'test.jsonl'}", "distill.variants=[standard, oracle]",
            "teacher.d_model=32", "teacher.d_ff=64", "teacher.train.max_steps=4", "teacher.train.eval_steps=2",
            "student.d_model=16", "student.d_ff=32", "student.train.max_steps=2", "student.train.eval_steps=1",
            "eval.max_new_tokens=4", "analysis.faithfulness_examples=0"]
    assert main(["-q", "run", "--out", str(run), *[x for s in sets for x in ("--set", s)]]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert set(m["students"]) == {"standard", "oracle"}
    assert 0 <= m["attribution"]["recall_at_k"] <= 1, "recall is measured against the file's decisive words"
    first = json.loads((run / "data" / "student_train.jsonl").read_text().splitlines()[0])
    assert first["decisive"] and m["verdict"]["example"]["rationales"]["oracle"]


def test_students_can_have_their_own_labelled_file_apart_from_the_teachers(tmp_path):
    from attrdistill.config import ConfigError, check_environment, load_config
    train, mine, test = (tmp_path / f for f in ("train.jsonl", "students.jsonl", "test.jsonl"))
    train.write_text("".join(f'{{"input": "teacher text {i}", "label": "a{i % 3}"}}\n' for i in range(30)))
    mine.write_text("".join(f'{{"input": "student text {i}", "label": "a{i % 3}"}}\n' for i in range(7)))
    test.write_text('{"input": "x y", "label": "a1"}\n')
    base = ["data.source=files", f"data.train_file={train}", f"data.test_file={test}"]
    splits = build_splits(load_config(None, base + [f"data.student_train_file={mine}"]).data)
    assert [ex.input for ex in splits["student_train"]] == [f"student text {i}" for i in range(7)]
    assert len(splits["teacher_train"]) == 27 and all("teacher" in ex.input for ex in splits["teacher_train"])
    with pytest.raises(ConfigError, match="data.student_train_file: expected an existing .jsonl/.csv file"):
        check_environment(load_config(None, base + [f"data.student_train_file={tmp_path / 'none.jsonl'}"]))
    with pytest.raises(ConfigError, match="data.student_train_file: a file of source 'files'"):
        load_config(None, [f"data.student_train_file={mine}"])
    mine.write_text('{"input": "fine", "label": "a"}\n{"input": "", "label": "b"}\n')
    with pytest.raises(DataError, match="students.jsonl:2: missing or empty field\\(s\\) input"):
        build_splits(load_config(None, base + [f"data.student_train_file={mine}"]).data)


def test_a_transfer_file_of_unlabelled_inputs_is_labelled_by_the_teacher_and_taught(tmp_path):
    import json

    from attrdistill.config import ConfigError, load_config
    from attrdistill.data.synthetic import generate
    from attrdistill.pipeline.layout import Layout
    from attrdistill.pipeline.records import attribution_rows, predictions
    for name, seed, n in (("train", 0, 40), ("test", 1, 8)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"input": ex.input, "label": ex.label}) + "\n"
                                                        for ex in generate(n, seed=seed)))
    transfer = tmp_path / "transfer.jsonl"
    transfer.write_text("".join(json.dumps({"id": f"u{i}", "input": ex.input}) + "\n"
                                for i, ex in enumerate(generate(6, seed=2))))
    sets = ["data.source=files", f"data.train_file={tmp_path / 'train.jsonl'}",
            f"data.test_file={tmp_path / 'test.jsonl'}", f"data.transfer_file={transfer}",
            "distill.variants=[kd, saliency]", "attribution.k=3",
            # a teacher trained long enough to answer (an empty answer leaves its input out)
            "teacher.d_model=32", "teacher.d_ff=64", "teacher.train.max_steps=30", "teacher.train.eval_steps=15",
            "teacher.train.learning_rate=0.01",
            "student.d_model=16", "student.d_ff=32", "student.train.max_steps=2", "student.train.eval_steps=1",
            "eval.max_new_tokens=4", "analysis.faithfulness_examples=0"]
    run = tmp_path / "run"
    assert main(["-q", "run", "--out", str(run), *[x for s in sets for x in ("--set", s)]]) == 0
    labelled = [json.loads(line) for line in Layout(run).transfer_labels.read_text().splitlines()]
    teacher_done = json.loads((run / "transfer" / "DONE.json").read_text())["result"]
    assert teacher_done["n"] == len(labelled) and teacher_done["n"] + teacher_done["left_out_empty"] == 6
    assert labelled and all(row["id"].startswith("u") and row["label"] for row in labelled)
    ids = [r.id for r in attribution_rows(run, "saliency")]
    assert ids[-len(labelled):] == [row["id"] for row in labelled], "attributed beside the labelled examples"
    kd = [json.loads(line)["id"] for line in (run / "teacher_logits" / "student_train.jsonl").read_text().splitlines()]
    assert kd == ids, "kd's logits cover the teacher-labelled rows too"
    done = json.loads((run / "students" / "kd" / "seed0" / "DONE.json").read_text())["result"]
    assert done["examples"] == 36 + len(labelled)
    assert json.loads((run / "metrics.json").read_text())["student_examples"]["teacher_labelled"] == len(labelled)
    assert predictions(run, "kd-seed0"), "the students are evaluated as usual"
    labelled_rows = tmp_path / "labelled.jsonl"
    labelled_rows.write_text('{"input": "a b"}\n{"input": "c d", "label": "x"}\n')
    with pytest.raises(DataError, match="labelled.jsonl:2: has a 'label'; a transfer file holds unlabelled inputs"):
        build_splits(load_config(None, sets[:3] + [f"data.transfer_file={labelled_rows}"]).data)
    with pytest.raises(ConfigError, match="data.transfer_file: 'dsbs' reads the dsbs rationales from the data"):
        load_config(None, sets[:4] + ["distill.variants=[dsbs]"])
