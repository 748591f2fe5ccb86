"""Task sources in a run: DSbS datasets as splits, users' own files, `data show`, task-aware accuracy."""

from __future__ import annotations

import pytest

from attrdistill.cli import main
from attrdistill.config import DataConfig
from attrdistill.data.sources import build_splits, read_table, show
from attrdistill.evaluation import accuracy, matcher


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
    from attrdistill.evaluation import answer_of
    assert answer_of("boss, charge, so the answer is in charge of project") == "in charge of project"
    assert answer_of("plain label") == "plain label"
    assert matcher("cqa")("a, b, so the answer is wooded area", "wooded area")
    assert matcher("svamp")("10, 45, so the answer is (10 * 45)", "( 450.0 )")


def test_own_files_as_a_run_source(tmp_path):
    from attrdistill.config import ConfigError, load_config
    train = tmp_path / "train.jsonl"
    train.write_text("".join(f'{{"q": "question {i}", "a": "answer {i % 3}", "why": "w{i}"}}\n' for i in range(30)))
    test = tmp_path / "test.csv"
    test.write_text("q,a\nwhat now,answer 1\nand then,answer 2\n")
    cfg = load_config(None, ["data.source=files", f"data.train_file={train}", f"data.test_file={test}",
                             "data.input_field=q", "data.label_field=a", "data.rationale_field=why"])
    splits = build_splits(cfg.data)
    assert len(splits["student_train"]) == 27 and len(splits["valid"]) == 3 and len(splits["test"]) == 2
    assert splits["student_train"][0].rationale.startswith("w") and splits["test"][0].rationale == ""
    with pytest.raises(ConfigError, match="data.test_file: expected an existing"):
        load_config(None, ["data.source=files", f"data.train_file={train}"])


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
    from attrdistill.pipeline import rationales_for
    test = build_splits(DataConfig(source="cqa", path=str(shared / "data" / "dsbs"), limit=3))["test"]
    got = rationales_for(None, RunConfig(), "human", test)
    assert got[test[0].id] == "their, supplies, come"
    with pytest.raises(ValueError, match="human highlights"):
        rationales_for(None, RunConfig(), "human", build_splits(DataConfig(source="svamp", path=str(shared / "data" / "dsbs"), limit=2))["test"])
