"""Logit distillation: the sparse divergences against dense ones computed by hand, the kd loss inside the
trainer, the teacher-logit cache (resume after a kill), the vocabulary check, and the CLI with kd students."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from attrdistill.config import ConfigError, load_config
from attrdistill.distill.kd import KDLoss, check_vocabularies, kd_loss, pad_sparse, sparse_divergence, teacher_logits
from attrdistill.distill.trainer import TwoTaskTrainer, collate_train, features
from attrdistill.registry.variants import parse_variant
from tests.conftest import tiny_t5

PREFIX = "predict: "


def _sparse(teacher: torch.Tensor, k: int, temperature: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    values, ids = teacher.topk(k, -1)
    return ids, values, (teacher / temperature).logsumexp(-1)


def _dense(p_logits: torch.Tensor, q_logits: torch.Tensor, kind: str, t: float, beta: float = 0.5) -> torch.Tensor:
    p, q = (p_logits / t).softmax(-1), (q_logits / t).softmax(-1)

    def kl(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * (a.log() - b.log())).sum(-1)
    if kind == "forward_kl":
        return kl(p, q)
    if kind == "reverse_kl":
        return kl(q, p)
    m = beta * p + (1 - beta) * q
    return beta * kl(p, m) + (1 - beta) * kl(q, m)


@pytest.mark.parametrize("kind", ["forward_kl", "reverse_kl", "jsd"])
@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_top_k_equal_to_the_vocabulary_gives_the_dense_divergence(kind, temperature):
    torch.manual_seed(0)
    teacher, student = torch.randn(3, 4, 11) * 3, torch.randn(3, 4, 11) * 3
    ids, values, log_norm = _sparse(teacher, 11, temperature)
    got = sparse_divergence(student, ids, values, log_norm, temperature, kind, beta=0.3 if kind == "jsd" else 0.5)
    want = _dense(teacher, student, kind, temperature, beta=0.3 if kind == "jsd" else 0.5)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_top_k_below_the_vocabulary_is_the_divergence_of_the_coarser_distributions():
    """K + 1 buckets (top-K, rest): by data processing never above the full KL, and exactly the KL of the
    bucketed distributions computed by hand."""
    torch.manual_seed(1)
    teacher, student = torch.randn(5, 20) * 2, torch.randn(5, 20) * 2
    ids, values, log_norm = _sparse(teacher, 4, 1.0)
    got = sparse_divergence(student, ids, values, log_norm, 1.0)
    p, q = teacher.softmax(-1), student.softmax(-1)
    pk, qk = p.gather(-1, ids), q.gather(-1, ids)
    pb, qb = torch.cat([pk, 1 - pk.sum(-1, keepdim=True)], -1), torch.cat([qk, 1 - qk.sum(-1, keepdim=True)], -1)
    torch.testing.assert_close(got, (pb * (pb.log() - qb.log())).sum(-1), atol=1e-5, rtol=1e-5)
    assert torch.all(got <= _dense(teacher, student, "forward_kl", 1.0) + 1e-6)


def _kd_batch(word_tok, examples, teacher, k):
    srcs, tgts = [PREFIX + ex.input for ex in examples], [ex.label for ex in examples]
    rows = teacher_logits(teacher, word_tok, [ex.id for ex in examples], srcs, tgts, k, 1.0, 128, 32)
    train_rows = [{"source": s, "target": t, "kd": r} for s, t, r in zip(srcs, tgts, rows)]
    from attrdistill.config import ModelConfig
    return collate_train(features(word_tok, train_rows, ModelConfig()), word_tok.pad_token_id)


def test_kd_at_alpha_1_and_t_1_is_the_token_mean_of_the_kl_to_the_teacher(word_tok, examples):
    teacher, student = tiny_t5(len(word_tok), seed=5), tiny_t5(len(word_tok), seed=6)
    batch = _kd_batch(word_tok, examples[:4], teacher, len(word_tok))   # K = vocabulary: exact
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
    out = student(**inputs)
    sparse = {k: v for k, v in batch.items() if k.startswith("kd_")}
    got = kd_loss(out.logits, out.loss, sparse, alpha=1.0, temperature=1.0)
    with torch.no_grad():
        p = teacher(**inputs).logits.log_softmax(-1)
    q = out.logits.log_softmax(-1)
    mask = batch["labels"] != -100
    by_hand = ((p.exp() * (p - q)).sum(-1) * mask).sum() / mask.sum()
    torch.testing.assert_close(got, by_hand, atol=1e-5, rtol=1e-5)
    mixed = kd_loss(out.logits, out.loss, sparse, alpha=0.25, temperature=2.0)
    t2 = kd_loss(out.logits, out.loss, sparse, alpha=1.0, temperature=2.0)
    torch.testing.assert_close(mixed, 0.75 * out.loss + 0.25 * t2)


def test_the_trainer_uses_the_kd_loss_when_the_batch_carries_teacher_logits(word_tok, examples, tmp_path):
    from transformers import Seq2SeqTrainingArguments
    teacher, student = tiny_t5(len(word_tok), seed=5), tiny_t5(len(word_tok), seed=6)
    batch = _kd_batch(word_tok, examples[:4], teacher, 8)
    trainer = TwoTaskTrainer(model=student, args=Seq2SeqTrainingArguments(str(tmp_path), report_to=[]),
                             objective_loss=KDLoss(alpha=0.7, temperature=1.5, divergence="jsd", beta=0.4))
    got = trainer.compute_loss(student, dict(batch))
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
    out = student(**inputs)
    want = kd_loss(out.logits, out.loss, {k: v for k, v in batch.items() if k.startswith("kd_")}, 0.7, 1.5, "jsd", 0.4)
    torch.testing.assert_close(got, want)
    assert abs(got.item() - out.loss.item()) > 1e-3, "the kd term must change the loss"


def test_pad_sparse_masks_the_padding_tokens():
    feats = [{"kd_ids": [[1, 2]], "kd_logits": [[0.5, 0.1]], "kd_log_norm": [1.0]},
             {"kd_ids": [[3, 4], [5, 6]], "kd_logits": [[0.2, 0.1], [0.3, 0.0]], "kd_log_norm": [2.0, 3.0]}]
    out = pad_sparse(feats, 2)
    assert out["kd_ids"].shape == (2, 2, 2) and out["kd_mask"].tolist() == [[1, 0], [1, 1]]
    assert out["kd_log_norm"].tolist() == [[1.0, 0.0], [2.0, 3.0]]


def test_a_vocabulary_mismatch_is_refused_naming_both_sizes():
    with pytest.raises(ValueError, match="49,152.*32,128"):
        check_vocabularies(49152, 32128)
    named = r"teacher's \(g.gguf\) has 262,144 entries and the student's \(s.gguf\) 49,152"
    with pytest.raises(ValueError, match=named):
        check_vocabularies(262144, 49152, "g.gguf", "s.gguf")
    check_vocabularies(100, 100)


def test_variants_combine_one_objective_and_one_rationale_source():
    assert parse_variant("kd+saliency@k3") == parse_variant("saliency@k3+kd")
    v = parse_variant("kd+saliency@k3")
    assert (v.objective, v.rationale, v.k, v.reads) == ("kd", "saliency", 3, "teacher_logits")
    assert parse_variant("seqkd").reads == "teacher_outputs" and parse_variant("standard").rationale is None
    for bad, says in [("kd+seqkd", "two objectives"), ("oracle+saliency", "two rationale sources"),
                      ("kd+salincy", "unknown part 'salincy'"), ("oracle@k3", "<method>@k<k>")]:
        with pytest.raises(ConfigError, match=says):
            load_config(overrides=[f"distill.variants=[{bad}]"])
    with pytest.raises(ConfigError, match="single format puts"):
        load_config(overrides=["distill.variants=[kd]", "distill.format=single"])


def test_teacher_logits_cache_resumes_after_a_kill(tmp_path):
    """A process killed after the first of three shards leaves it on disk; the rerun computes only the rest."""
    script = tmp_path / "logits.py"
    script.write_text(
        "import sys, json\n"
        "from pathlib import Path\n"
        "sys.path.insert(0, %r)\n"
        "from tests.conftest import tiny_t5\n"
        "from attrdistill.data.synthetic import generate\n"
        "from attrdistill.modeling.models import build_word_tokenizer\n"
        "from attrdistill.distill.kd import teacher_logits\n"
        "ex = generate(9, seed=3)\n"
        "tok = build_word_tokenizer([t for e in generate(200, seed=0) for t in (e.input, e.label)] + ['predict: x'])\n"
        "rows = teacher_logits(tiny_t5(len(tok), seed=5), tok, [e.id for e in ex],\n"
        "                      ['predict: ' + e.input for e in ex], [e.label for e in ex], 4, 2.0, 128, 32,\n"
        "                      batch_size=2, shard_size=3, cache=Path(sys.argv[1]))\n"
        "Path(sys.argv[2]).write_text(json.dumps(rows))\n" % str(Path(__file__).resolve().parents[1]))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ATTRDISTILL_CRASH_AT": "kd-shard@0"}
    killed = subprocess.run([sys.executable, str(script), str(tmp_path / "cache"), str(tmp_path / "a.json")], env=env,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    (folder,) = (tmp_path / "cache").iterdir()
    assert [p.name for p in folder.iterdir()] == ["shard-00000.jsonl"]
    first = (folder / "shard-00000.jsonl").stat().st_mtime_ns
    env.pop("ATTRDISTILL_CRASH_AT")
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "cache"), str(tmp_path / "a.json")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in folder.iterdir()) == [f"shard-0000{i}.jsonl" for i in range(3)]
    assert (folder / "shard-00000.jsonl").stat().st_mtime_ns == first, "the shard on disk is reused"
    fresh = subprocess.run([sys.executable, str(script), str(tmp_path / "fresh"), str(tmp_path / "b.json")], env=env,
                           capture_output=True, text=True, timeout=300)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    a, b = json.loads((tmp_path / "a.json").read_text()), json.loads((tmp_path / "b.json").read_text())
    assert a == b and len(a) == 9 and all(len(t) == 4 for r in a for t in r["ids"])


TINY = ["data.n_teacher_train=48", "data.n_student_train=12", "data.n_valid=6", "data.n_test=8",
        "teacher.d_model=32", "teacher.d_ff=64", "teacher.train.max_steps=4", "teacher.train.eval_steps=2",
        "teacher.train.batch_size=16", "student.d_model=16", "student.d_ff=32", "student.train.max_steps=4",
        "student.train.eval_steps=2", "student.train.batch_size=4", "eval.max_new_tokens=4", "attribution.k=3",
        "analysis.faithfulness_examples=0",
        "distill.variants=[standard,kd,kd+saliency,seqkd,oracle_shuffled,match:saliency]"]


def test_cli_trains_kd_seqkd_and_kd_plus_saliency_students(tmp_path):
    from attrdistill.cli import main
    run = tmp_path / "run"
    assert main(["-q", "run", "--out", str(run), *[x for o in TINY for x in ("--set", o)]]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["students"]) == {"standard", "kd", "kd+saliency", "seqkd", "oracle_shuffled", "match:saliency"}
    logits = [json.loads(x) for x in (run / "teacher_logits" / "student_train.jsonl").read_text().splitlines()]
    assert len(logits) == 12 and all(len(t) == 16 for r in logits for t in r["ids"])
    outputs = [json.loads(x) for x in (run / "teacher_outputs" / "student_train.jsonl").read_text().splitlines()]
    assert len(outputs) == 12 and all(isinstance(r["prediction"], str) for r in outputs)
    # The kd student's logged training loss is not the standard one's (same seed, same data order).
    def logged(variant: str) -> list[dict]:
        history = json.loads((run / "students" / variant / "seed0" / "log_history.json").read_text())
        return [h for h in history if "loss" in h]

    def losses(variant: str) -> list[float]:
        return [h["loss"] for h in logged(variant)]
    assert losses("kd") and losses("kd") != losses("standard")
    # Each part of the loss is logged beside the total: kd's objective replaces the label's, the rationale adds.
    def parts(variant: str) -> set[str]:
        return {k for h in logged(variant) for k in h if k.startswith("loss_")}
    assert parts("standard") == {"loss_label"} and parts("kd") == {"loss_label", "loss_objective"}
    assert parts("kd+saliency") == {"loss_label", "loss_objective", "loss_rationale"}
    assert parts("match:saliency") == {"loss_label", "loss_term"}
    # Students with a rationale say how well they reproduce it on test; the others have nothing to reproduce.
    for variant in ("kd+saliency", "oracle_shuffled"):
        assert 0.0 <= metrics["students"][variant]["rationale_f1"] <= 1.0
    assert "rationale_f1" not in metrics["students"]["kd"]
    test_rows = (run / "attributions" / "test" / "saliency" / "rows.jsonl").read_text().splitlines()
    assert len(test_rows) == 8, "the test split is attributed for the students' rationale methods"
    # Every unit counts in its stage's time: the teacher's logits and outputs are distill units, beside the students.
    seconds = {p.parent.relative_to(run).as_posix(): json.loads(p.read_text())["seconds"]
               for p in run.rglob("DONE.json")}
    distill = [k for k in seconds if k.startswith("students/") or k in ("teacher_logits", "teacher_outputs")]
    assert len(distill) == 8 and metrics["timing"]["distill_s"] == pytest.approx(sum(seconds[k] for k in distill))
    assert metrics["timing"]["evaluate_s"] == pytest.approx(sum(s for k, s in seconds.items()
                                                                if k.startswith("predictions/")))
    # Nothing recomputed on a rerun, and a changed kd setting retrains only the kd students.
    before = {v: (run / "students" / v / "seed0" / "DONE.json").read_text() for v in metrics["students"]}
    sets = [x for o in TINY + ["distill.kd_alpha=0.9"] for x in ("--set", o)]
    assert main(["-q", "run", "--out", str(run), *sets]) == 0
    after = {v: (run / "students" / v / "seed0" / "DONE.json").read_text() for v in metrics["students"]}
    assert {v for v in before if before[v] != after[v]} == {"kd", "kd+saliency"}


CALLS: list[dict] = []


class ToyLoss:
    """A toy objective's loss: the label's cross-entropy times a setting, recording what it was given."""

    def __init__(self, temperature: float) -> None:
        self.temperature = temperature

    def __call__(self, target_logits: torch.Tensor, ce: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        CALLS.append({"temperature": self.temperature, "keys": sorted(batch), "rows": target_logits.shape[0]})
        return ce * self.temperature


def test_one_entry_is_a_whole_objective(monkeypatch, tmp_path):
    """A new objective is one registry.variants.OBJECTIVES entry: config accepts it, the plan gives its students the
    teacher unit it reads and fingerprints its setting, its rows get the teacher's row, the trainer uses its loss."""
    from attrdistill.cli import main
    from attrdistill.registry.variants import OBJECTIVES, Objective, variants_doc
    toy = Objective("toy: the label's CE scaled by the kd temperature", "teacher_logits", ("kd_temperature",),
                    f"{__name__}:ToyLoss")
    monkeypatch.setitem(OBJECTIVES, "toy", toy)
    assert "toy: toy: the label's CE" in variants_doc() and parse_variant("toy+saliency").objective == "toy"
    CALLS.clear()
    run = tmp_path / "run"
    sets = TINY[:-1] + ["distill.variants=[standard,toy]", "distill.kd_temperature=3.0"]
    assert main(["-q", "run", "--out", str(run), *[x for o in sets for x in ("--set", o)]]) == 0
    assert (run / "teacher_logits" / "DONE.json").is_file() and not (run / "teacher_outputs").exists()
    assert CALLS and {c["temperature"] for c in CALLS} == {3.0}
    assert {"kd_ids", "kd_logits", "kd_log_norm", "kd_mask"} <= set(CALLS[0]["keys"]), "its rows carry the logits"
    toy_loss = [h["loss"] for h in json.loads((run / "students/toy/seed0/log_history.json").read_text()) if "loss" in h]
    std_loss = [h["loss"] for h in json.loads((run / "students/standard/seed0/log_history.json").read_text())
                if "loss" in h]
    assert toy_loss[0] == pytest.approx(3.0 * std_loss[0], rel=1e-4), "same seed and data: 3 x the label's CE"
    # Its setting is in its students' fingerprint (and the logits'): a new temperature retrains toy, not standard.
    before = {v: (run / "students" / v / "seed0" / "DONE.json").read_text() for v in ("standard", "toy")}
    sets[-1] = "distill.kd_temperature=2.0"
    assert main(["-q", "run", "--out", str(run), *[x for o in sets for x in ("--set", o)]]) == 0
    after = {v: (run / "students" / v / "seed0" / "DONE.json").read_text() for v in ("standard", "toy")}
    assert [v for v in before if before[v] != after[v]] == ["toy"]
