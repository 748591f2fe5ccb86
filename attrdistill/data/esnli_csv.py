"""e-SNLI from its CSV release, with one annotator's highlighted words as `Example.human`.

    valid = load_esnli_csv(Path("esnli/dataset"), "valid")               # esnli_dev.csv, annotator 1
    [words(valid[0].input)[i] for i in valid[0].human]                   # ["lunch"]

Files (github.com/OanaMariaCamburu/e-SNLI, dataset/): train = esnli_train_1.csv + esnli_train_2.csv
(one file split for size, rows concatenated in that order), valid = esnli_dev.csv, test = esnli_test.csv.
Inputs and labels are formatted as the DSbS loader formats e-SNLI (`dsbs.format_example`).

Highlights come from `Sentence{1,2}_marked_k`, the fields the e-SNLI authors say to trust: the
sentence with each highlighted whitespace token wrapped in stars (`*lunch.*`). A starred token
maps to the words (`attrdistill.words`) of the formatted input that its characters cover, punctuation
dropped, so `*lunch.*` gives "lunch". The `*_Highlighted_k` index columns are ignored.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from attrdistill.data.dsbs import NLI_FORMATS, NLI_LABELS, format_example, template
from attrdistill.data.example import Example, read_text
from attrdistill.data.highlights import words_in_spans
from attrdistill.errors import DataError

FILES = {"train": ("esnli_train_1.csv", "esnli_train_2.csv"), "valid": ("esnli_dev.csv",),
         "test": ("esnli_test.csv",)}
ANNOTATORS = (1, 2, 3)   # dev and test have three; train only the first

_TOKEN = re.compile(r"\S+")


def starred_spans(marked: str, sentence: str, where: str) -> list[tuple[int, int]]:
    """Character spans in `sentence` of the whitespace tokens that `marked` wraps in stars.

    The marked text without its stars must have the sentence's whitespace tokens (the marked
    fields sometimes carry a leading space, and spacing is not part of a highlight), else ValueError.
    """
    tokens = list(_TOKEN.finditer(sentence))
    marked_tokens = marked.split()
    starred = [len(t) >= 2 and t.startswith("*") and t.endswith("*") for t in marked_tokens]
    plain = [t[1:-1] if s else t for t, s in zip(marked_tokens, starred)]
    if plain != [t.group() for t in tokens]:
        raise DataError(f"{where}: marked sentence {marked!r} without its stars is not the sentence {sentence!r}")
    return [t.span() for t, s in zip(tokens, starred) if s]


def _read(path: Path, columns: list[str]) -> list[tuple[int, dict[str, str]]]:
    """(first line of the record, row) for each CSV record; missing columns raise ValueError naming them."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    out = []
    with io.StringIO(read_text(path), newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in columns if c not in header]
        if missing:
            raise DataError(f"{path}:1: missing column(s) {', '.join(missing)} (header has {', '.join(header)})")
        line = reader.line_num + 1
        for row in reader:
            out.append((line, row))   # a quoted field may span lines, so the record starts where the last ended
            line = reader.line_num + 1
    return out


def load_esnli_csv(folder: Path, split: str, nli_format: str = "eos", annotator: int = 1) -> list[Example]:
    """The examples of one e-SNLI CSV split, `human` = the chosen annotator's highlighted words.

    id is the pairID. Raises FileNotFoundError naming the expected files when one is missing, and
    ValueError naming file and line for a missing column, a gold_label that is not one of
    entailment/neutral/contradiction, or a marked sentence that does not match its sentence.
    """
    if split not in FILES:
        raise DataError(f"unknown e-SNLI split {split!r}; expected one of {', '.join(FILES)}")
    if nli_format not in NLI_FORMATS:
        raise DataError(f"nli_format must be one of {', '.join(NLI_FORMATS)}, got {nli_format!r}")
    if annotator not in ANNOTATORS:
        raise DataError(f"annotator must be one of {', '.join(map(str, ANNOTATORS))}, got {annotator!r}")
    folder = Path(folder)
    paths = [folder / name for name in FILES[split]]
    absent = [p.name for p in paths if not p.is_file()]
    if absent:
        raise FileNotFoundError(f"{folder}: e-SNLI {split} needs {' and '.join(FILES[split])}; missing "
                                f"{', '.join(absent)} (get them from github.com/OanaMariaCamburu/e-SNLI, dataset/)")

    marks = (f"Sentence1_marked_{annotator}", f"Sentence2_marked_{annotator}")
    columns = ["pairID", "gold_label", "Sentence1", "Sentence2", *marks]
    examples = []
    for path in paths:
        for line, row in _read(path, columns):
            where = f"{path}:{line}"
            gold = row["gold_label"]
            if gold not in NLI_LABELS:
                raise DataError(f"{where}: gold_label must be one of {', '.join(NLI_LABELS)}, got {gold!r}")
            premise, hypothesis = row["Sentence1"], row["Sentence2"]
            ex = format_example("esnli", {"premise": premise, "hypothesis": hypothesis,
                                          "label": NLI_LABELS.index(gold)}, row["pairID"], nli_format, where)
            (p_at, _), (h_at, _) = template("esnli", nli_format).content_spans(ex.input)
            spans = [(p_at + a, p_at + b) for a, b in starred_spans(row[marks[0]], premise, f"{where}: {marks[0]}")]
            spans += [(h_at + a, h_at + b) for a, b in starred_spans(row[marks[1]], hypothesis, f"{where}: {marks[1]}")]
            ex.human = words_in_spans(ex.input, spans, alnum_only=True)
            examples.append(ex)
    return examples
