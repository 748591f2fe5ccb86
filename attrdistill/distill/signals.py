"""The teacher's signals to its students, one class each (entries of `registry.signals`).

    TeacherLogits.work(run, cfg, teacher_fp)    # RUN/teacher_logits/student_train.jsonl: kd's sparse logits
    TeacherOutputs.work(run, cfg, teacher_fp)   # RUN/teacher_outputs/student_train.jsonl: seqkd's targets

Each is made once from the fine-tuned teacher for every student that reads it. A signal that rides in
train rows (kd's logits, under the field "kd") also says how its values become features and batch
tensors; the trainer hands those tensors to the objective's loss without knowing what they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig

from attrdistill.config import ModelConfig, RunConfig, pretrained
from attrdistill.data import write_jsonl
from attrdistill.distill.kd import check_vocabularies, pad_sparse, teacher_logits
from attrdistill.distill.rows import prompted
from attrdistill.evaluate.answers import accuracy, matcher
from attrdistill.evaluate.predict import predict
from attrdistill.modeling.models import gguf_location, load_tokenizer, load_trained
from attrdistill.pipeline.layout import TRAIN, Layout
from attrdistill.pipeline.records import SparseLogits, TrainRow


class TeacherLogits:
    """The teacher's sparse top-K logits of the gold label's tokens on student_train (what kd students read)."""

    field = "kd"

    @staticmethod
    def work(run: Path, cfg: RunConfig, teacher_fp: str) -> dict[str, Any]:
        lay = Layout(run)
        examples, sources = prompted(run, cfg, TRAIN)
        model, tok = load_trained(lay.model(), cfg.teacher.dtype, scoring=True)
        rows = teacher_logits(model, tok, [ex.id for ex in examples], sources, [ex.label for ex in examples],
                              cfg.distill.kd_top_k, cfg.distill.kd_temperature, cfg.teacher.max_input_length,
                              cfg.teacher.max_target_length, cfg.attribution.batch_size, cfg.attribution.shard_size,
                              cache=lay.kd_cache, model_key=teacher_fp)
        write_jsonl(lay.signal("teacher_logits"), rows)
        return {"n": len(rows), "top_k": cfg.distill.kd_top_k}

    @staticmethod
    def attach(row: TrainRow, teacher: dict[str, Any], goes_on: bool) -> None:
        logits = SparseLogits.from_json(teacher)
        # 'X, because ...': the teacher's last entry predicts the label's EOS, where this target goes on
        row.signals["kd"] = logits.without_last() if goes_on else logits

    @staticmethod
    def features(values: list[SparseLogits]) -> list[dict[str, Any]]:
        return [{"kd_ids": v.ids, "kd_logits": v.logits, "kd_log_norm": v.log_norm} for v in values]

    @staticmethod
    def collate(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """kd_ids, kd_logits (batch, width, K), kd_log_norm, kd_mask (batch, width): width, the longest row's."""
        return pad_sparse(features, max(len(f["kd_ids"]) for f in features))


def check_shared_vocabulary(run: Path, cfg: RunConfig) -> None:
    """kd compares the two models' distributions token by token: refuse a pair with two vocabularies."""
    if cfg.student.init == "teacher":   # the student is the teacher, cut down
        return
    lay = Layout(run)
    student_tok = load_tokenizer(cfg.student, lay.tokenizer)
    student = (AutoConfig.from_pretrained(cfg.student.model).vocab_size if pretrained(cfg.student) and cfg.student.model
               and not cfg.student.gguf_file else len(student_tok))
    check_vocabularies(_teacher_vocabulary(lay, cfg), student, _named(cfg.teacher), _named(cfg.student))


def _named(m: ModelConfig) -> str:
    return m.gguf_file or m.model or "built from scratch"


def _teacher_vocabulary(lay: Layout, cfg: RunConfig) -> int:
    """The trained teacher's vocabulary size, or before it trains (the check runs then too) the one it will have:
    the given model's config (GGUF header included), or the task's word tokenizer's for a from-scratch teacher."""
    if (lay.model() / "config.json").is_file():
        return AutoConfig.from_pretrained(lay.model()).vocab_size
    m = cfg.teacher
    if m.gguf_file:
        folder, name = gguf_location(m)
        return AutoConfig.from_pretrained(folder, gguf_file=name).vocab_size
    if m.model:
        return AutoConfig.from_pretrained(m.model).vocab_size
    return len(load_tokenizer(m, lay.tokenizer))


class TeacherOutputs:
    """The teacher's greedy outputs on student_train (the targets of seqkd students)."""

    @staticmethod
    def work(run: Path, cfg: RunConfig, teacher_fp: str) -> dict[str, Any]:
        lay = Layout(run)
        examples, sources = prompted(run, cfg, TRAIN)
        model, tok = load_trained(lay.model(), cfg.teacher.dtype)
        preds = predict(model, tok, sources, cfg.eval.batch_size, cfg.teacher.max_target_length,
                        cfg.teacher.max_input_length)
        write_jsonl(lay.signal("teacher_outputs"), [{"id": ex.id, "prediction": p} for ex, p in zip(examples, preds)])
        labels, choices = [ex.label for ex in examples], [ex.choices for ex in examples]
        return {"n": len(preds), "teacher_accuracy": accuracy(preds, labels, matcher(cfg.data.source), choices)}

    @staticmethod
    def attach(row: TrainRow, teacher: dict[str, Any], goes_on: bool) -> None:
        row.target = teacher["prediction"]
