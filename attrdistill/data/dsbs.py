"""Loaders for the Distilling Step-by-Step (DSbS) data release: CQA, SVAMP, ANLI R1 and e-SNLI.

    root = Path("../shared/data/dsbs")
    test = load_dsbs(root, "cqa", "test")              # list[Example]; .rationale = parsed PaLM CoT rationale
    test[0].human                                      # CoS-E span as word indices into words(test[0].input)
    train, valid = train_valid_split(load_dsbs(root, "cqa", "train"))   # DSbS's 90/10 split (seed 0)
    available_splits(root, "anli1")                    # ["valid", "test"]

Layout (see README.md next to the data): `<root>/<name>/<name>_<split>.json` is JSON Lines, and
`<root>/<name>/llm/<split>_CoT_<i>.json` are JSON arrays of raw PaLM completions. Concatenated in
numeric order of i, element j belongs to line j. Inputs and labels are formatted exactly as DSbS
formats them; the LLM outputs are parsed with DSbS's `_parse_llm_output` rules, except that a
completion the rules cannot parse gives empty strings instead of DSbS's ' ' or a crash.
`Example.rationale` is None when the split has no llm files, and "" where the completion did not parse.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from attrdistill.data.example import Example, read_jsonl_lines
from attrdistill.data.highlights import span_word_indices
from attrdistill.errors import DataError
from attrdistill.modeling.template import Template

NAMES = ("cqa", "svamp", "anli1", "esnli")
NLI_LABELS = ("entailment", "neutral", "contradiction")   # DSbS's mapping of the gold ints 0, 1, 2
NLI_FORMATS = ("eos", "text")
EOS = "</s>"   # T5's eos token, which DSbS puts between premise and hypothesis
CHOICE_LETTERS = "abcde"
TEMPLATES = {   # how DSbS builds each input; its literal words are the format's, not the example's
    "cqa": Template("{question}\nAnswer Choices:\n" + "\n".join(f"({c}) {{{c}}}" for c in CHOICE_LETTERS)),
    "nli:eos": Template("{premise}" + EOS + "{hypothesis}"),
    "nli:text": Template("Premise: {premise}\nHypothesis: {hypothesis}"),
}

_SPLIT_ORDER = ("train", "valid", "test")
_SPLIT_RE = re.compile(r"[A-Za-z0-9_]+")
_REQUIRED = {"cqa": ("question", "choices", "answer"), "svamp": ("input", "label"),
             "anli1": ("premise", "hypothesis", "label"), "esnli": ("premise", "hypothesis", "label")}

# Where to get the splits that the release leaves out (README: "Files not copied").
_MISSING_HINTS = {
    ("anli1", "train"): "ANLI R1 train is not in the DSbS release. Load it from the Hugging Face hub: set "
                        "data.loader: hub in the config (facebook/anli, train_r1); its PaLM "
                        "rationales anli1/llm/train_CoT_0..3.json are listed in DROPPED_FILES.tsv.",
    ("esnli", "train"): "e-SNLI train is not in the DSbS release. Load it from the Hugging Face hub "
                        "(data.loader: hub), or from the e-SNLI CSV files esnli_train_1.csv and esnli_train_2.csv "
                        "(github.com/OanaMariaCamburu/e-SNLI; data.loader: esnli_csv, data.path: their folder); "
                        "its PaLM rationales esnli/llm/train_CoT_0..99.json are listed in DROPPED_FILES.tsv.",
    ("cqa", "valid"): "CQA has no valid split in the DSbS release; DSbS makes one with "
                      "train_valid_split(load_dsbs(root, 'cqa', 'train')).",
    ("svamp", "valid"): "SVAMP has no valid split in the DSbS release; DSbS makes one with "
                        "train_valid_split(load_dsbs(root, 'svamp', 'train')).",
}


# ---------------------------------------------------------------------------------------------- parsing


def _parse_cqa(text: str) -> tuple[str, str]:
    head = text.split("Q:")[0].rstrip()
    parts = head.split("So the answer is")
    if len(parts) != 2:
        return "", ""
    rationale, rest = parts[0].rstrip(), parts[1]
    pieces = re.split(r"\(.\)", rest)
    if len(pieces) < 2 or not pieces[1].strip():
        return rationale, ""
    label = pieces[1].strip()
    return rationale, label[:-1] if label.endswith(".") else label


def _parse_svamp(text: str) -> tuple[str, str]:
    head = text.split("Q:")[0].rstrip()
    parts = head.split("The answer is")
    if len(parts) != 2:
        return "", ""
    match = re.search(r"\(.*\)", parts[1])   # greedy on purpose: DSbS's rule, first '(' to last ')'
    return parts[0].rstrip(), match.group(0) if match else ""


def _parse_esnli(text: str) -> tuple[str, str]:
    rationale = text.split("Answer:")[0].rstrip()
    parts = text.split("Answer: ")
    return rationale, parts[1].split("Premise")[0].rstrip() if len(parts) > 1 else ""


def _parse_anli(text: str) -> tuple[str, str]:
    parts = text.split("Premise:")[0].rstrip().split("So the answer is")
    if len(parts) != 2:
        return "", ""
    return parts[0].rstrip(), parts[1].lstrip()[:-1]   # [:-1] drops the final '.'


_PARSERS = {"cqa": _parse_cqa, "svamp": _parse_svamp, "esnli": _parse_esnli, "anli1": _parse_anli}


def parse_llm_output(name: str, text: str) -> tuple[str, str]:
    """(rationale, llm_label) of one raw PaLM completion, by DSbS's rules for dataset `name`.

    Never raises on a string: a completion the rules cannot parse gives "" for the part that failed.
    """
    _check_name(name)
    if not isinstance(text, str):
        return "", ""
    return _PARSERS[name](text)


# ---------------------------------------------------------------------------------------------- files


def _check_name(name: str) -> None:
    if name not in NAMES:
        raise DataError(f"unknown DSbS dataset {name!r}; expected one of {', '.join(NAMES)}")


def _check_split(split: str) -> None:
    if not isinstance(split, str) or not _SPLIT_RE.fullmatch(split):
        raise DataError(f"invalid split name {split!r}")


def available_splits(root: Path, name: str) -> list[str]:
    """Splits with a `<name>_<split>.json` file under `root/name`: train, valid, test first, then others."""
    _check_name(name)
    folder = Path(root) / name
    prefix = f"{name}_"
    found = {p.name[len(prefix):-len(".json")] for p in folder.glob(f"{prefix}*.json")}
    found = {s for s in found if _SPLIT_RE.fullmatch(s)}
    return [s for s in _SPLIT_ORDER if s in found] + sorted(found - set(_SPLIT_ORDER))


def _split_file(root: Path, name: str, split: str) -> Path:
    path = Path(root) / name / f"{name}_{split}.json"
    if path.is_file():
        return path
    hint = _MISSING_HINTS.get((name, split), "")
    have = available_splits(root, name) if (Path(root) / name).is_dir() else []
    message = [f"{path}: no such file.", hint, f"Splits present for {name}: {', '.join(have) or 'none'}."]
    raise FileNotFoundError(" ".join(m for m in message if m))


def _llm_files(root: Path, name: str, split: str) -> list[Path]:
    """The `<split>_CoT_<i>.json` files in numeric order of i (so 10 comes after 9, not after 1)."""
    folder = Path(root) / name / "llm"
    pattern = re.compile(rf"{re.escape(split)}_CoT_(\d+)\.json")
    numbered = {}
    for p in folder.glob(f"{split}_CoT_*.json"):
        m = pattern.fullmatch(p.name)
        if m:
            numbered[int(m.group(1))] = p
    if numbered and sorted(numbered) != list(range(len(numbered))):
        # A gap would shift every later completion onto the wrong example.
        raise DataError(f"{folder}: {split}_CoT_<i>.json files are not numbered 0..n-1: {sorted(numbered)}")
    return [numbered[i] for i in sorted(numbered)]


def load_llm_outputs(root: Path, name: str, split: str) -> list[str] | None:
    """The raw PaLM completions of a split in row order, or None when it has no llm files."""
    _check_name(name)
    _check_split(split)
    files = _llm_files(root, name, split)
    if not files:
        return None
    outputs: list[str] = []
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(data, list) or not all(isinstance(s, str) for s in data):
            raise DataError(f"{path}: expected a JSON array of strings")
        outputs.extend(data)
    return outputs


# ---------------------------------------------------------------------------------------------- examples


def _nli_label(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < len(NLI_LABELS):
        raise DataError(f"{where}: NLI label must be 0, 1 or 2, got {value!r}")
    return NLI_LABELS[value]


def format_example(name: str, row: dict[str, Any], ex_id: str, nli_format: str = "eos",
                   where: str = "") -> Example:
    """One row (DSbS / hub field names) as DSbS formats it; shared by every loader so inputs stay identical.

    CQA rows with `extractive_explanation` (the CoS-E span) also get `human`: the words of that span
    inside the question part of the input (see `cqa_human`).
    """
    text_fields = {"cqa": ("question", "answer"), "svamp": ("input", "label")}.get(name, ("premise", "hypothesis"))
    empty = [f for f in text_fields if not isinstance(row[f], str) or not row[f].strip()]
    if empty:
        raise DataError(f"{where}: empty or non-text field(s) {', '.join(empty)}")
    if name == "cqa":
        choices = row["choices"]
        if not isinstance(choices, list) or len(choices) != 5:
            raise DataError(f"{where}: expected 5 answer choices, got {choices!r}")
        if row["answer"] not in choices:
            raise DataError(f"{where}: answer {row['answer']!r} is not one of its choices {choices!r}")
        text = TEMPLATES["cqa"].fill({"question": row["question"], **dict(zip(CHOICE_LETTERS, choices))})
        span = row.get("extractive_explanation")
        human = None if span is None else cqa_human(text, row["question"], span)
        return Example(id=ex_id, input=text, label=row["answer"], choices=list(choices), human=human)
    if name == "svamp":
        return Example(id=ex_id, input=row["input"], label=row["label"])
    premise, hypothesis = row["premise"], row["hypothesis"]
    text = TEMPLATES[f"nli:{nli_format}"].fill({"premise": premise, "hypothesis": hypothesis})
    return Example(id=ex_id, input=text, label=_nli_label(row["label"], where), choices=list(NLI_LABELS))


def template(name: str, nli_format: str = "eos") -> Template | None:
    """The template `format_example` builds a dataset's inputs with; None where the input is one field (SVAMP)."""
    return TEMPLATES.get("nli:" + nli_format if name in ("anli1", "esnli") else name)


def cqa_human(text: str, question: str, span: Any) -> list[int]:
    """Word indices (into `words(text)`) of a CoS-E extractive span within the question that starts `text`.

    Every word the span covers counts, punctuation included; a span that is not a string or is not
    found gives [] rather than an error, since CoS-E spans are noisy annotator copies.
    """
    if not isinstance(span, str) or not isinstance(question, str):
        return []
    return span_word_indices(text, span, 0, len(question))


def _rows(root: Path, name: str, split: str) -> tuple[Path, list[tuple[int, dict[str, Any]]]]:
    _check_name(name)
    _check_split(split)
    path = _split_file(root, name, split)
    rows = read_jsonl_lines(path)
    for line_no, row in rows:
        missing = [k for k in _REQUIRED[name] if k not in row]
        if missing:
            raise DataError(f"{path}:{line_no}: missing field(s) {', '.join(missing)}")
    return path, rows


def split_size(root: Path, name: str, split: str) -> int:
    """Rows of one split (each read and checked for its fields)."""
    return len(_rows(root, name, split)[1])


def _row_id(name: str, split: str, index: int, row: dict[str, Any]) -> str:
    for key in ("id", "uid"):
        if row.get(key) not in (None, ""):
            return str(row[key])
    return f"{name}-{split}-{index}"


def load_dsbs(root: Path, name: str, split: str, nli_format: str = "eos", first: int = 0) -> list[Example]:
    """The examples of one DSbS split, with the parsed LLM rationale when the split has llm files.

    nli_format (anli1, esnli only): "eos" gives DSbS's `premise + "</s>" + hypothesis`, "text" gives
    "Premise: ...\\nHypothesis: ...". Raises FileNotFoundError for a split the release lacks and
    ValueError for malformed files (naming file and line) or llm files that do not match the rows.
    """
    if nli_format not in NLI_FORMATS:
        raise DataError(f"nli_format must be one of {', '.join(NLI_FORMATS)}, got {nli_format!r}")
    path, rows = _rows(root, name, split)
    examples = [format_example(name, row, _row_id(name, split, i, row), nli_format, f"{path}:{line_no}")
                for i, (line_no, row) in enumerate(rows[:first] if first else rows)]
    outputs = load_llm_outputs(root, name, split)
    if outputs is not None:
        if len(outputs) != len(rows):
            raise DataError(f"{Path(root) / name / 'llm'}: {len(outputs)} {split}_CoT completions for "
                            f"{len(rows)} rows of {path}; alignment is positional, so they must match")
        for ex, text in zip(examples, outputs):
            ex.rationale = parse_llm_output(name, text)[0]
    return examples


def llm_labels(root: Path, name: str, split: str) -> list[str] | None:
    """The parsed LLM label of each row of a split (DSbS's `llm_label` column), or None without llm files."""
    outputs = load_llm_outputs(root, name, split)
    return None if outputs is None else [parse_llm_output(name, text)[1] for text in outputs]


def train_valid_split(examples: list[Example], fraction: float = 0.1,
                      seed: int = 0) -> tuple[list[Example], list[Example]]:
    """(train, valid) exactly as DSbS's `Dataset.train_test_split(test_size=fraction, seed=seed)`, order included."""
    if not 0 < fraction < 1:
        raise DataError(f"fraction must be strictly between 0 and 1, got {fraction}")
    if len(examples) < 2:
        raise DataError(f"train_valid_split needs at least 2 examples, got {len(examples)}")
    import datasets  # slow to import; only this function needs it

    # The permutation depends only on the row count and seed, so an index column is enough.
    parts = datasets.Dataset.from_list([{"i": i} for i in range(len(examples))]).train_test_split(
        test_size=fraction, seed=seed)
    return [examples[i] for i in parts["train"]["i"]], [examples[i] for i in parts["test"]["i"]]
