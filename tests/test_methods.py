"""Every attribution method against its definition, batch invariance, completeness, and the shard cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

import attrdistill.attribution.engine as attribution
from attrdistill.attribution.engine import attribute, score
from attrdistill.attribution.gradients import (
    ig_attributions,
    input_x_gradient,
    mean_target_logit,
    saliency_stepwise,
    target_log_prob,
    target_logits,
)
from attrdistill.attribution.select import select, word_scores
from attrdistill.config import AttributionConfig
from attrdistill.evaluate.predict import predict
from attrdistill.modeling.features import collate, encode
from attrdistill.modeling.words import word_spans, words
from attrdistill.pipeline.records import attribution_rows
from attrdistill.registry.methods import method_names
from tests.conftest import tiny_t5

PREFIX = "predict: "


def _batch(tok, examples):
    feats = encode(tok, [PREFIX + ex.input for ex in examples], [ex.label for ex in examples], 128, 32)
    return feats, collate(feats, tok.pad_token_id)


def _embeds(model, ids):
    return model.get_input_embeddings()(ids).detach().requires_grad_(True)


def _one(f):
    return {"input_ids": torch.tensor([f["input_ids"]]),
            "attention_mask": torch.ones(1, len(f["input_ids"]), dtype=torch.long),
            "labels": torch.tensor([f["labels"]])}


@pytest.mark.parametrize("tied", [True, False])
def test_gold_logits_equal_the_full_vocabulary_logits(word_tok, examples, tied):
    """Saliency's forward computes only the gold tokens' logits; they are the full projection's, and the
    output layer is itself again afterwards."""
    model = tiny_t5(len(word_tok))
    if not tied:
        model.config.tie_word_embeddings = False
        model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.lm_head.weight))
    _, batch = _batch(word_tok, examples[:4])
    emb = model.get_input_embeddings()(batch["input_ids"])
    full = model(inputs_embeds=emb, attention_mask=batch["attention_mask"],
                 decoder_input_ids=model.prepare_decoder_input_ids_from_labels(labels=batch["labels"])).logits
    mask = batch["labels"] != -100
    ref = full.gather(-1, batch["labels"].clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask
    torch.testing.assert_close(target_logits(model, emb, batch), ref, atol=1e-5, rtol=1e-5)
    assert "forward" not in vars(model.get_output_embeddings())
    assert model(inputs_embeds=emb, attention_mask=batch["attention_mask"],
                 decoder_input_ids=model.prepare_decoder_input_ids_from_labels(labels=batch["labels"])).logits.shape \
        == full.shape


def test_saliency_stepwise_matches_its_definition(word_tok, examples):
    model = tiny_t5(len(word_tok))
    feats, batch = _batch(word_tok, examples[:3])
    for norm, p in (("l1", 1), ("l2", 2)):
        fast = saliency_stepwise(model, batch, AttributionConfig(norm=norm))
        for row, f in enumerate(feats):
            one = _one(f)
            per_token = []
            for j in range(len(f["labels"])):   # one backward per target token, norm first, then the mean
                emb = _embeds(model, one["input_ids"])
                logits = model(inputs_embeds=emb, attention_mask=one["attention_mask"],
                               decoder_input_ids=model.prepare_decoder_input_ids_from_labels(labels=one["labels"])).logits
                logits[0, j, f["labels"][j]].backward()
                per_token.append(emb.grad[0].norm(p=p, dim=-1))
            ref = torch.stack(per_token).mean(0)
            torch.testing.assert_close(fast[row, :len(ref)], ref, atol=1e-5, rtol=1e-5)


def test_input_x_gradient_matches_its_definition(word_tok, examples):
    model = tiny_t5(len(word_tok))
    feats, batch = _batch(word_tok, examples[:3])
    fast = input_x_gradient(model, batch)
    for row, f in enumerate(feats):
        one = _one(f)
        emb = _embeds(model, one["input_ids"])
        mean_target_logit(model, emb, one).sum().backward()
        ref = (emb.grad[0] * emb[0]).sum(-1).abs()
        torch.testing.assert_close(fast[row, :len(ref)], ref.detach(), atol=1e-5, rtol=1e-5)


def test_integrated_gradients_completeness(word_tok, examples):
    """Sum of attributions = f(input) - f(baseline) within 2% at 64 steps (pad baseline; see ig_baseline's doc).

    The model has Flan-T5's smooth gated-GELU block (tiny_t5's default): with ReLU the path integrand has kinks and the
    quadrature error at 64 steps is a few percent (it still converges: 0.2% at 256 steps).
    """
    baseline = "pad"
    model = tiny_t5(len(word_tok), seed=2)
    feats, batch = _batch(word_tok, examples[:4])
    attr = ig_attributions(model, batch, n_steps=64, baseline=baseline, internal_batch_size=64)
    x = model.get_input_embeddings()(batch["input_ids"]).detach()
    x0 = model.get_input_embeddings()(torch.zeros_like(batch["input_ids"])).detach()
    with torch.no_grad():
        delta = mean_target_logit(model, x, batch) - mean_target_logit(model, x0, batch)
    total = attr.sum((1, 2))
    assert torch.all(delta.abs() > 1e-3), "the test needs a non-trivial difference to mean anything"
    assert torch.all((total - delta).abs() <= 0.02 * delta.abs()), (total, delta)


def _occluded(model, tok, ex, word_index):
    """log p(target | input) with every token of one word removed, computed the obvious way."""
    text = ex.input
    a, b = word_spans(text)[word_index]
    f = encode(tok, [PREFIX + text[:a] + text[b:]], [ex.label], 128, 32)[0]
    return target_log_prob(model, _one(f))[0]


def test_occlusion_is_the_log_prob_drop_of_deleting_each_word(word_tok, examples):
    model = tiny_t5(len(word_tok), seed=3)
    ex = examples[0]
    rows = attribute([ex], "occlusion", model, word_tok, AttributionConfig(k=3), prefix=PREFIX)
    full = target_log_prob(model, _one(encode(word_tok, [PREFIX + ex.input], [ex.label], 128, 32)[0]))[0]
    for w in (0, 3, len(rows[0].words) - 2):
        # The word-level tokenizer makes "delete the word's tokens" and "delete the word from the text" the same.
        assert rows[0].scores[w] == pytest.approx(float(full - _occluded(model, word_tok, ex, w)), abs=1e-5)


@pytest.mark.parametrize("method", method_names())
def test_batch_invariance(word_tok, examples, method):
    """A padded batch of mixed lengths scores each example as it is scored alone.

    Only float32 rounding separates the two (other kernel shapes, other summation orders). Measured on
    an AMD EPYC (AVX-512) with 1 and 2 threads, seeds 0-3: worst 2.4e-6 absolute (occlusion, a
    difference of two log-probabilities of size ~10, i.e. ~2 ulp of them), <= 1e-6 for the gradient
    methods, on scores of size 0.02-0.2. atol=1e-5 leaves a 4x margin and still catches any real
    leak between rows (padding or masking errors move scores by 1e-3 or more).
    """
    model = tiny_t5(len(word_tok), seed=1)
    assert len({len(ex.input) for ex in examples}) > 1, "the batch must mix lengths for this test to mean anything"
    cfg = AttributionConfig(ig_steps=8)
    alone = [score([ex], method, model, word_tok, cfg, PREFIX)[0] for ex in examples]
    together = score(examples, method, model, word_tok, AttributionConfig(ig_steps=8, batch_size=12), PREFIX)
    for a, t, ex in zip(alone, together, examples):
        n = len(words(ex.input))
        torch.testing.assert_close(word_scores(t, n), word_scores(a, n), atol=1e-5, rtol=1e-4)


def test_random_is_reproducible_by_seed_and_independent_of_sharding(examples):
    a = attribute(examples, "random", None, None, AttributionConfig(k=3), seed=7)
    b = attribute(examples, "random", None, None, AttributionConfig(k=3, shard_size=5), seed=7)
    c = attribute(examples, "random", None, None, AttributionConfig(k=3), seed=8)
    assert [r.top for r in a] == [r.top for r in b]
    assert [r.top for r in a] != [r.top for r in c]


def test_target_prediction_explains_the_teachers_own_output(word_tok, examples):
    model = tiny_t5(len(word_tok), seed=4)
    rows = attribute(examples[:3], "saliency", model, word_tok, AttributionConfig(target="prediction"), PREFIX,
                     max_target_length=6)
    preds = predict(model, word_tok, [PREFIX + ex.input for ex in examples[:3]], max_new_tokens=6)
    assert [r.target for r in rows] == preds
    gold = attribute(examples[:3], "saliency", model, word_tok, AttributionConfig(), PREFIX)
    assert [r.target for r in gold] == [ex.label for ex in examples[:3]]
    assert [r.scores for r in rows] != [r.scores for r in gold]


def test_stop_words_and_filters_never_chosen(word_tok, examples):
    model = tiny_t5(len(word_tok))
    records = score(examples, "saliency", model, word_tok, AttributionConfig(), PREFIX)
    rows = select(records, examples, AttributionConfig(k=8, stop_words=["english", "Traveller"]))
    for r in rows:
        chosen = {r.words[i].lower() for i in r.top}
        assert not chosen & {"the", "a", "to", "traveller", ","}, chosen


class _Counter:
    def __init__(self, monkeypatch):
        self.calls = 0
        real = attribution._score_shard

        def counted(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)
        monkeypatch.setattr(attribution, "_score_shard", counted)


def test_cache_reuses_resumes_and_recomputes_on_change(word_tok, examples, tmp_path, monkeypatch):
    model = tiny_t5(len(word_tok))
    counter = _Counter(monkeypatch)
    cfg = AttributionConfig(k=3, shard_size=5, method="integrated_gradients", ig_steps=4)
    fresh = attribute(examples, cfg.method, model, word_tok, cfg, PREFIX)
    assert counter.calls == 3   # 12 examples in shards of 5: no cache, computed in memory
    cached = attribute(examples, cfg.method, model, word_tok, cfg, PREFIX, cache=tmp_path, model_key="m1")
    assert cached == fresh
    (folder,) = tmp_path.iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["shard-00000.jsonl", "shard-00001.jsonl", "shard-00002.jsonl"]
    counter.calls = 0
    again = attribute(examples, cfg.method, None, word_tok, cfg, PREFIX, cache=tmp_path, model_key="m1")
    assert again == fresh and counter.calls == 0, "a rerun reads every shard and needs no model"
    other_k = attribute(examples, cfg.method, None, word_tok, AttributionConfig(**{**cfg.__dict__, "k": 5}), PREFIX,
                        cache=tmp_path, model_key="m1")
    assert counter.calls == 0 and all(len(r.top) == 5 for r in other_k), "k is selection, not scoring"
    (folder / "shard-00001.jsonl").unlink()   # as if killed while computing shard 1
    resumed = attribute(examples, cfg.method, model, word_tok, cfg, PREFIX, cache=tmp_path, model_key="m1")
    assert resumed == fresh and counter.calls == 1
    attribute(examples, cfg.method, model, word_tok, AttributionConfig(**{**cfg.__dict__, "ig_steps": 6}), PREFIX,
              cache=tmp_path, model_key="m1")
    attribute(examples, cfg.method, model, word_tok, cfg, PREFIX, cache=tmp_path, model_key="m2")
    assert counter.calls == 7 and len(list(tmp_path.iterdir())) == 3, "a changed parameter or model recomputes"


TINY_RUN = ["data.n_teacher_train=32", "data.n_student_train=10", "data.n_valid=4", "data.n_test=4",
            "teacher.d_model=32", "teacher.d_ff=64", "teacher.train.max_steps=2", "teacher.train.eval_steps=2",
            "teacher.train.batch_size=16", "student.train.max_steps=2", "student.train.eval_steps=1",
            "attribution.shard_size=3", "attribution.batch_size=2"]


def _cli(*args: str, launcher: list[str] | None = None) -> subprocess.CompletedProcess:
    cmd = (launcher or [sys.executable]) + ["-m", "attrdistill.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})


def test_two_processes_run_the_pipeline_and_give_the_same_rationales_as_one(tmp_path):
    """`accelerate launch --num_processes 2 attrdistill run` on CPU (gloo): attribution splits its shards and
    equals one process; students train in both processes; the main one alone writes the results."""
    one = tmp_path / "one"
    sets = [x for o in TINY_RUN for x in ("--set", o)]
    from attrdistill.cli import main
    assert main(["run", "--out", str(one), *sets, "--set", "distill.variants=[standard,saliency]"]) == 0
    two = tmp_path / "two"
    # The same data and teacher; everything from attribution on is computed again by two processes.
    shutil.copytree(one, two, ignore=shutil.ignore_patterns("attributions", "attribution_cache", "students",
                                                            "predictions", "analyses", "metrics.json", "report*"))
    # --multi_gpu with no GPU: torchrun-style processes joined by gloo (`--cpu` alone starts only one process).
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"]
    proc = _cli("run", "--out", str(two), *sets, "--set", "distill.variants=[standard,saliency]", launcher=launcher)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "process 0 of 2" in proc.stderr and "process 1 of 2" in proc.stderr, "two processes must share the work"
    assert "skip finetune teacher" in proc.stderr
    for method in ("saliency", "random"):
        a, b = attribution_rows(one, method), attribution_rows(two, method)
        assert [r.top for r in a] == [r.top for r in b]
        for ra, rb in zip(a, b):
            assert ra.scores == pytest.approx(rb.scores, abs=1e-5)
    # Two saliency caches: student_train (10 examples, 4 shards of 3) and test (4 examples, 2 shards), whose
    # rationales say how well the students reproduce theirs.
    shards = sorted(sorted(p.name for p in f.iterdir()) for f in (two / "attribution_cache").glob("saliency-*"))
    assert shards == [["shard-00000.jsonl", "shard-00001.jsonl"],
                      ["shard-00000.jsonl", "shard-00001.jsonl", "shard-00002.jsonl", "shard-00003.jsonl"]]
    # Every stage is complete and intact: one writer, no file changed after its manifest was taken.
    from attrdistill.pipeline.store import verify
    done = list(two.rglob("DONE.json"))
    # data, teacher, attributions (saliency, random, saliency on test), 2 students, 3 evaluations, analyses
    assert len(done) == len(list(one.rglob("DONE.json"))) == 11
    for record in done:
        assert not verify(record.parent, json.loads(record.read_text())["files"]), record
    assert set(json.loads((two / "metrics.json").read_text())["students"]) == {"standard", "saliency"}
    assert proc.stdout.count("teacher accuracy") == 1, "only the main process prints the summary"
