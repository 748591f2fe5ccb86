"""Teacher signals: what the fine-tuned teacher hands its students besides rationales. One registry.

    SIGNALS["teacher_logits"].field          # "kd": its key in a train row, its JSON and its batch tensors
    signal_of("kd_ids")                      # "teacher_logits": the signal a batch key belongs to
    SIGNALS["teacher_outputs"].implementation().attach(row, teacher_row, False)

A signal is one unit of a run (RUN/<name>/student_train.jsonl, made once from the teacher for every
student that reads it: an objective's `reads`, see `variants.OBJECTIVES`) and one class, its `impl`:

- `work(run, cfg, teacher_fp) -> dict`: the unit's work (writes the rows; the result DONE.json keeps);
- `attach(row, teacher_row, goes_on)`: how a train row takes its example's teacher row (goes_on: the
  row's target continues past the label, as a label-first rationale student's does);
- with a `field`: `record` (the class rows carry under it, with from_json), `features(values) -> per row,
  the lists its batches carry (keys '<field>_...')` and `collate(features) -> batch tensors`.

The entry's `check` ("module:function" (run, cfg), or None) runs before the unit, even a complete one
(kd's shared vocabulary). The plan gives each signal its unit, the trainer passes a signal's batch tensors
to the objective's loss, and train rows carry it, none of them with a branch on its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from attrdistill.registry import imported


@dataclass(frozen=True)
class TeacherSignal:
    doc: str
    impl: str                       # "module:Class" with work, attach (and features, collate with a field)
    settings: tuple[str, ...] = ()  # the distill.* fields that change it (its unit's config)
    field: str | None = None        # its key in train rows, their JSON and the batch ('<field>_*' tensors)
    record: str | None = None       # "module:Class" of what a row carries under `field` (from_json)
    check: str | None = None        # "module:function" (run, cfg) run before its unit, even a complete one

    def implementation(self) -> Any:
        return imported(self.impl)

    def config(self, distill: Any) -> Any:
        """Its unit's config slice: the values of its settings, or None (the form runs have always had)."""
        return tuple(getattr(distill, f) for f in self.settings) or None

    def from_json(self, value: Any) -> Any:
        """What a train row carries under `field`, from its JSON form."""
        return imported(self.record).from_json(value) if self.record else value


_SIGNALS = "attrdistill.distill.signals"

# name (= its unit's key) -> entry.
SIGNALS: dict[str, TeacherSignal] = {
    "teacher_logits": TeacherSignal("the teacher's sparse top-K logits of the gold label's tokens (kd)",
                                    f"{_SIGNALS}:TeacherLogits", ("kd_top_k", "kd_temperature"), field="kd",
                                    record="attrdistill.pipeline.records:SparseLogits",
                                    check=f"{_SIGNALS}:check_shared_vocabulary"),
    "teacher_outputs": TeacherSignal("the teacher's greedy outputs (seqkd's targets)", f"{_SIGNALS}:TeacherOutputs"),
}


def fields() -> dict[str, str]:
    """field -> signal name, of the signals that ride in train rows and batches."""
    return {s.field: name for name, s in SIGNALS.items() if s.field}


def signal_of(key: str) -> str | None:
    """The signal a feature or batch key belongs to (its keys start with the signal's field and '_'), or None."""
    return fields().get(key.partition("_")[0])
