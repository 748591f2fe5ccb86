"""The typed rows that cross units: their JSON forms round-trip, and a malformed row names what it lacks."""

from __future__ import annotations

import pytest

from attrdistill.data.example import read_jsonl, write_jsonl
from attrdistill.errors import DataError
from attrdistill.pipeline.records import (
    AttributionRow,
    Prediction,
    SparseLogits,
    TrainRow,
    WordScores,
    attribution_rows,
)


def test_attribution_rows_round_trip_and_write_optional_fields_only_when_set(tmp_path):
    plain = AttributionRow("a", "yes", ["x", "y"], [0.5, 0.1], [0], "x")
    full = AttributionRow("b", "no", ["x"], [1.0], [], "", step_scores=[[1.0]], teacher_correct=False)
    path = tmp_path / "attributions" / "saliency" / "rows.jsonl"
    write_jsonl(path, [plain, full])
    raw = read_jsonl(path)
    assert set(raw[0]) == {"id", "target", "words", "scores", "top", "rationale"}, "files as before the record"
    assert raw[1]["step_scores"] == [[1.0]] and raw[1]["teacher_correct"] is False
    assert attribution_rows(tmp_path, "saliency") == [plain, full]


@pytest.mark.parametrize("row, says", [
    ({"id": "a", "target": "y", "words": [], "scores": [], "top": []}, "missing rationale"),
    ({"id": "a", "target": "y", "words": [], "scores": [], "top": [], "rationale": "", "score": 1}, "unknown score"),
])
def test_a_malformed_attribution_row_names_its_id_and_fields(row, says):
    with pytest.raises(DataError, match=f"attribution row a: .*{says}"):
        AttributionRow.from_json(row)


def test_train_rows_and_predictions_read_their_json_forms():
    row = TrainRow.from_json({"source": "s", "target": "t", "kd": {"ids": [[1]], "logits": [[0.5]], "log_norm": [1.0]},
                              "match": {"input": "x", "prefix": "p: ", "scores": [1.0]}})
    assert row.signals["kd"] == SparseLogits([[1]], [[0.5]], [1.0])
    assert row.terms == {"match": WordScores("x", "p: ", [1.0])}
    with pytest.raises(DataError, match="train row: expected the fields source, target.*got source, targt"):
        TrainRow.from_json({"source": "s", "targt": "t"})
    got = Prediction.from_json({"id": 3, "prediction": "a", "label": "a", "correct": 1})
    assert got == Prediction("3", "a", "a", True)
    with pytest.raises(DataError, match="prediction row 3: missing correct"):
        Prediction.from_json({"id": 3, "prediction": "a", "label": "a"})
