"""Training on `transformers`' Seq2SeqTrainer, with the two-task loss of distillation students.

    train(model, tok, train_rows, valid, cfg.student, out_dir, rationale_weight=0.5)

A train row (`records.TrainRow`) is a source and target and, for two-task students, the explain source and
rationale.
The loss is L = L_label + lambda * L_rationale (paper Eq. 5); rows without a rationale give the
plain label loss (standard fine-tuning, and the teacher). A student's objective may replace L_label by its
own loss (`objective_loss`; kd's, `kd.KDLoss`, reads the batch tensors of the teacher signal its rows
carry, `registry.signals`); a student's loss term (`registry.variants.TERMS`, e.g. attribution matching)
replaces its forward and adds its own loss, from the features its rows' word scores give. Validation
accuracy picks the best checkpoint; an interrupted run resumes from its last checkpoint.

Where answers are judged by exact match (`teacher_forced=True`), validation accuracy is the share of
examples whose every gold token, EOS included, is the model's argmax given the gold prefix: exactly
the examples greedy decoding gets right token for token, from one forward pass instead of a decode
of up to max_target_length steps (through `label_loss`: a decoder-only model's logits at its target
positions only). Other judges (CQA's choice letters, SVAMP's equation values, a
single-sequence target that puts the rationale before the answer) need the decoded text.

Decoder-only models train on the causal layout of `features.encode` (prompt + target in one
sequence, loss on the target only; `label.label_loss` computes logits at the target positions only).
Validated by one forward pass where that is exact, otherwise their validation accuracy comes from
`evaluate.predict`, the function that also scores the test set, rather than from
Seq2SeqTrainer's predict_with_generate, which would generate after the whole (right-padded,
target-holding) training sequence.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from transformers import (
    EarlyStoppingCallback,
    PrinterCallback,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    TrainerCallback,
)

from attrdistill.config import ModelConfig
from attrdistill.distill.label import label_correct, label_loss
from attrdistill.errors import StageError
from attrdistill.evaluate.answers import Matcher, accuracy, exact_match
from attrdistill.evaluate.predict import predict
from attrdistill.modeling.features import collate, encode, is_causal
from attrdistill.modeling.precision import trainer_precision
from attrdistill.pipeline.distributed import launched, quiet
from attrdistill.pipeline.layout import HISTORY, MODEL
from attrdistill.pipeline.records import TrainRow, as_train_rows
from attrdistill.pipeline.store import CHECKPOINTS, crash_point
from attrdistill.registry.signals import SIGNALS, fields, signal_of
from attrdistill.registry.variants import TERMS

log = logging.getLogger(__name__)


# An objective's loss (variants.Objective.loss_function): (target logits, label CE, its signal's tensors) -> loss.
ObjectiveLoss = Callable[[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]
# A loss term (students.Term.build): (model, inputs, its batch tensors) -> (outputs with the label loss, its loss).
TermLoss = Callable[[Any, dict[str, torch.Tensor], dict[str, torch.Tensor]], tuple[Any, torch.Tensor]]


class TwoTaskTrainer(Seq2SeqTrainer):
    """Seq2SeqTrainer whose loss adds lambda * (loss on the `explain_*` half of the batch); an objective's loss
    (`objective_loss`, e.g. kd's, from the tensors of the teacher signal the batch carries) replaces the label's
    cross-entropy in training (validation reports the cross-entropy); a loss `term` adds its own, on every
    `term_every`-th optimizer step (the others train on the label loss alone: a cheaper schedule for a costly
    term, counted from the trainer's global step, so a resumed run keeps the same steps)."""

    loss_is_scaled_for_ga = False   # both terms are per-batch means

    def __init__(self, *args: Any, rationale_weight: float = 0.5, greedy_valid: GreedyValidation | None = None,
                 objective_loss: ObjectiveLoss | None = None, term: TermLoss | None = None, term_every: int = 1,
                 teacher_forced: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.teacher_forced = teacher_forced
        self.rationale_weight = rationale_weight
        self.greedy_valid = greedy_valid
        self.objective_loss = objective_loss
        self.term = term
        self.term_every = term_every
        self._parts: dict[str, list[torch.Tensor]] = {}   # the loss's parts since the last training log (`log`)

    def evaluate(self, eval_dataset: Any = None, ignore_keys: list[str] | None = None,
                 metric_key_prefix: str = "eval") -> dict[str, float]:
        """Seq2SeqTrainer's evaluation, or with `greedy_valid` the accuracy of `evaluate.predict`.

        Every process decodes the whole validation set (greedy decoding is deterministic and the
        weights are the same everywhere), so all of them agree on the best checkpoint.
        """
        if self.greedy_valid is None:
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        was_training = self.model.training
        metrics = {f"{metric_key_prefix}_accuracy": self.greedy_valid.accuracy(self.model, self.processing_class)}
        self.model.train(was_training)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """The Trainer's log; a training log also gets the mean of each part of the loss since the last one
        (`loss_label`: the label's cross-entropy, `loss_objective`: the objective's loss that replaced it, e.g.
        kd's, `loss_term`: the loss term as it enters the loss, e.g. match_weight times matching's KL, over the
        steps it ran, `loss_rationale`: the explain task's cross-entropy), so a run shows whether a term is
        being learned, not only their sum."""
        if "loss" in logs and self._parts:
            logs.update({f"loss_{name}": torch.stack(v).mean().item() for name, v in self._parts.items()})
            self._parts.clear()
        super().log(logs, start_time)

    def _note(self, **parts: torch.Tensor | None) -> None:
        # kept as tensors, read at the log: a float() per step would wait on a GPU at every step
        for name, value in parts.items():
            if value is not None:
                self._parts.setdefault(name, []).append(value.detach().float())

    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        explain = {k.removeprefix("explain_"): inputs.pop(k) for k in list(inputs) if k.startswith("explain_")}
        signal = {k: inputs.pop(k) for k in list(inputs) if signal_of(k)}
        tensors = {k: inputs.pop(k) for k in list(inputs) if term_of(k)}
        if tensors and self.term is None:
            raise ValueError(f"the batch carries a loss term's {', '.join(tensors)} but the trainer has no term")
        # accelerate puts mixed precision on `model.forward`; label_loss and the terms run the base model and the
        # output layer directly, past that wrapper, so the autocast is opened here for all of them.
        with self.accelerator.autocast():
            return self._loss(model, inputs, explain, signal, tensors, return_outputs)

    def _loss(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor], explain: dict[str, torch.Tensor],
              signal: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor], return_outputs: bool) -> Any:
        outputs = extra = None
        if tensors and self.state.global_step % self.term_every == 0:   # the term's forward gives the label loss
            outputs, extra = self.term(model, inputs, tensors)
            loss, logits = outputs.loss, outputs.logits
        elif return_outputs and self.teacher_forced:   # validation: is each row's every target token the argmax
            loss, correct = label_correct(model, inputs)
            # (batch, 1), not the logits: a decoder-only model's vocabulary-sized logits at every prompt position
            # cost as much as its blocks and are never read
            logits = correct.unsqueeze(-1).float()
            outputs = {"loss": loss, "logits": logits}
        elif return_outputs:    # evaluation: the full outputs, for the validation metrics
            outputs = model(**inputs)
            loss, logits = outputs.loss, outputs.logits
        else:
            loss, logits = label_loss(model, inputs)
        label = loss
        # training, not validation: the objective's loss (e.g. kd's) replaces the label's cross-entropy
        objective = self.objective_loss(logits, loss, signal) if self.objective_loss and not return_outputs else None
        if objective is not None:
            loss = objective
        if extra is not None:
            loss = loss + extra
        rationale = label_loss(model, explain)[0] if explain else None
        if rationale is not None:
            loss = loss + self.rationale_weight * rationale
        if not return_outputs:
            self._note(label=label, objective=objective, term=extra, rationale=rationale)
        return (loss, outputs) if return_outputs else loss


@dataclass
class GreedyValidation:
    """Validation by greedy decoding with `evaluate.predict`: sources, gold labels, how answers are judged."""

    sources: list[str]
    labels: list[str]
    correct: Matcher
    batch_size: int
    max_new_tokens: int
    max_input_length: int

    def accuracy(self, model: Any, tokenizer: Any) -> float:
        preds = predict(model, tokenizer, self.sources, self.batch_size, self.max_new_tokens, self.max_input_length)
        return accuracy(preds, self.labels, self.correct)


class StopOnNonFinite(TrainerCallback):
    """Stop training when the logged loss is NaN or inf instead of training on garbage (and never save it)."""

    def __init__(self) -> None:
        self.bad: tuple[float, int] | None = None

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self.bad = (loss, state.global_step)
            control.should_training_stop = True
            control.should_save = control.should_evaluate = False


class CrashPoints(TrainerCallback):
    """The resume tests' kill points: `<label>@<step>` right after that step's checkpoint is saved."""

    def __init__(self, label: str) -> None:
        self.label = label

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        crash_point(f"{self.label}@{state.global_step}")


def features(tokenizer: Any, rows: list[TrainRow] | list[dict[str, Any]], cfg: ModelConfig,
             causal: bool = False) -> list[dict[str, Any]]:
    """Training features of rows in the model's layout; two-task rows add `explain_input_ids`/`explain_labels`,
    rows with a teacher signal its features (kd's sparse logits), rows with a loss term the features of that term."""
    rows = as_train_rows(rows)
    feats = encode(tokenizer, [r.source for r in rows], [r.target for r in rows],
                   cfg.max_input_length, cfg.max_target_length, causal=causal)
    _same_kind(rows)
    if rows and rows[0].rationale is not None:
        explain = encode(tokenizer, [r.explain_source for r in rows], [r.rationale for r in rows],
                         cfg.max_input_length, cfg.max_target_length, causal=causal)
        for f, e in zip(feats, explain):
            f["explain_input_ids"], f["explain_labels"] = e["input_ids"], e["labels"]
    for name in rows[0].signals if rows else ():
        signal = SIGNALS[fields()[name]].implementation()
        for f, t in zip(feats, signal.features([r.signals[name] for r in rows])):
            f.update(t)
    for name in rows[0].terms if rows else ():
        term = TERMS[name].implementation()
        for f, t in zip(feats, term.features(tokenizer, [r.source for r in rows], [r.terms[name] for r in rows],
                                             cfg.max_input_length)):
            f.update(t)
    return feats


def _same_kind(rows: list[TrainRow]) -> None:
    """One batch holds one kind of row: every row has a rationale, a signal's values, a term's scores, or none does."""
    kinds = {"rationale": lambda r: r.rationale, **{f: (lambda r, f=f: r.signals.get(f)) for f in fields()},
             **{t: (lambda r, t=t: r.terms.get(t)) for t in TERMS}}
    for name, part in kinds.items():
        if len({part(r) is not None for r in rows}) > 1:
            raise ValueError(f"train rows: some have {name!r} and some do not; a student's rows are of one kind")


def collate_train(features: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """`features.collate`, plus a teacher signal's tensors (as the signal collates them: kd's sparse logits padded to
    the batch's target length) and a loss term's (as the term collates them, to the batch's input length)."""
    batch = collate(features, pad_id)
    for name in dict.fromkeys(filter(None, map(signal_of, features[0]))):
        batch.update(SIGNALS[name].implementation().collate(features))
    for name in dict.fromkeys(filter(None, map(term_of, features[0]))):
        batch.update(TERMS[name].implementation().collate(features, batch["input_ids"].shape[1]))
    return batch


def term_of(key: str) -> str | None:
    """The loss term a feature or batch key belongs to (its keys start with the term's name and '_'), or None."""
    head = key.partition("_")[0]
    return head if head in TERMS else None


def _checkpoints(folder: Path) -> list[Path]:
    """Trainer checkpoints in step order (checkpoint-10 after checkpoint-9)."""
    found = [p for p in folder.glob("checkpoint-*") if p.name.removeprefix("checkpoint-").isdigit()]
    return sorted(found, key=lambda p: int(p.name.removeprefix("checkpoint-")))


def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint; one cut short by a crash (no trainer_state.json, written last) is skipped."""
    for path in reversed(_checkpoints(folder)):
        try:
            json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
            return path
        except (OSError, ValueError):
            pass
        log.warning("%s is incomplete (killed while saving?): resuming from an earlier checkpoint", path)
    return None


def train(model: Any, tokenizer: Any, train_rows: list[TrainRow] | list[dict], valid_rows: list[TrainRow] | list[dict],
          cfg: ModelConfig, out_dir: Path, rationale_weight: float = 0.5, seed: int = 0,
          correct: Matcher = exact_match, label: str = "train", objective_loss: ObjectiveLoss | None = None,
          term: TermLoss | None = None, term_every: int = 1, teacher_forced: bool = False,
          report_to: list[str] | None = None) -> dict[str, Any]:
    """Fine-tune `model`, save the best checkpoint (by validation accuracy) to out_dir/model.

    teacher_forced: validation accuracy from one forward pass (greedy exact match; see the module's doc).
    report_to: Trainer's experiment trackers (e.g. ["tensorboard"]); none by default.

    A NaN or infinite loss stops training with a RuntimeError; the checkpoints saved before it stay in
    out_dir/checkpoints (lower the learning rate, then rerun: training resumes from the last one).
    """
    t = cfg.train
    causal = is_causal(model)
    valid_rows = as_train_rows(valid_rows)
    precision = trainer_precision(cfg.dtype)   # bf16: mixed precision on a GPU or a CPU alike
    args = Seq2SeqTrainingArguments(
        output_dir=str(out_dir / CHECKPOINTS), learning_rate=t.learning_rate, max_steps=t.max_steps,
        per_device_train_batch_size=t.batch_size, per_device_eval_batch_size=max(t.batch_size, 64),
        warmup_steps=t.warmup_steps, weight_decay=t.weight_decay, lr_scheduler_type="linear", optim="adamw_torch",
        eval_strategy="steps", eval_steps=t.eval_steps, save_strategy="steps", save_steps=t.eval_steps,
        save_total_limit=1, load_best_model_at_end=True, metric_for_best_model="accuracy", greater_is_better=True,
        predict_with_generate=not (causal or teacher_forced), generation_max_length=cfg.max_target_length,
        generation_num_beams=1,
        logging_steps=max(1, min(50, t.eval_steps)), seed=t.seed + seed, data_seed=t.seed + seed,
        report_to=list(report_to or []), save_only_model=False, remove_unused_columns=False, dataloader_num_workers=0,
        logging_nan_inf_filter=False,   # the default logs a NaN loss as the running mean, hiding it
        dataloader_pin_memory=torch.cuda.is_available(),
        # Several processes without a GPU must say so, or each one trains alone instead of joining a gloo group;
        # so must bf16 on a CPU, or the Trainer refuses it.
        use_cpu=(launched() or precision["bf16"]) and not torch.cuda.is_available(),
        **precision, disable_tqdm=quiet(),
    )

    def generated_accuracy(pred: Any) -> dict[str, float]:
        preds = np.where(pred.predictions < 0, tokenizer.pad_token_id, pred.predictions)
        labels = np.where(pred.label_ids < 0, tokenizer.pad_token_id, pred.label_ids)
        return {"accuracy": accuracy(tokenizer.batch_decode(preds, skip_special_tokens=True),
                                     tokenizer.batch_decode(labels, skip_special_tokens=True), correct)}

    def forced_accuracy(pred: Any) -> dict[str, float]:
        return {"accuracy": float(np.mean(pred.predictions, dtype=np.float64))}

    greedy = GreedyValidation([r.source for r in valid_rows], [r.target for r in valid_rows], correct,
                              args.per_device_eval_batch_size, cfg.max_target_length,
                              cfg.max_input_length) if causal and not teacher_forced else None
    guard = StopOnNonFinite()
    trainer = TwoTaskTrainer(
        model=model, args=args, train_dataset=features(tokenizer, train_rows, cfg, causal),
        # Validation is of the label task alone (what `greedy` and predict_with_generate judge).
        eval_dataset=features(tokenizer, [TrainRow(r.source, r.target) for r in valid_rows], cfg, causal),
        data_collator=lambda f: collate_train(f, tokenizer.pad_token_id),
        compute_metrics=forced_accuracy if teacher_forced else generated_accuracy,
        processing_class=tokenizer, rationale_weight=rationale_weight, objective_loss=objective_loss,
        term=term, term_every=term_every, teacher_forced=teacher_forced, greedy_valid=greedy,
        callbacks=[guard, CrashPoints(label)] + ([EarlyStoppingCallback(t.patience)] if t.patience else []))
    if quiet():   # without a progress bar the Trainer prints every log line instead: -q wants neither
        trainer.remove_callback(PrinterCallback)
    last = last_checkpoint(out_dir / CHECKPOINTS)
    if last is not None:
        log.info("resuming %s from %s", label, last.name)
    trainer.train(resume_from_checkpoint=str(last) if last else None)
    if guard.bad is not None:
        loss, step = guard.bad
        kept = ", ".join(p.name for p in _checkpoints(out_dir / CHECKPOINTS)) or "none yet"
        raise StageError(f"{label}: the training loss became {loss} at step {step}; stopped without saving it. "
                         f"Checkpoints kept in {out_dir / 'checkpoints'}: {kept}. Lower the learning rate "
                         "(or use float32) and rerun to resume from the last good checkpoint.")
    trainer.save_model(str(out_dir / MODEL))
    history = trainer.state.log_history
    if trainer.is_world_process_zero():   # every process holds the same history; one writes it
        (out_dir / HISTORY).write_text(json.dumps(history, indent=1))
    return {"best_valid_accuracy": trainer.state.best_metric, "steps": trainer.state.global_step}
