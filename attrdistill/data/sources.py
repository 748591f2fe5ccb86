"""Task sources: turn the `data` section of a config into the four splits of a run.

The built-in task generates every split. A DSbS dataset has one train set: the teacher and the
students both learn from it (as in the paper); CQA and SVAMP take DSbS's 10% validation split
(seed 0) from it, ANLI and e-SNLI have their own. `data.train_split: valid` trains on a release's
validation split (e-SNLI and ANLI R1 ship no train split in DSbS's release) and holds 10% of it out.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from attrdistill.config import DataConfig
from attrdistill.data import dsbs, esnli_csv, hub, synthetic
from attrdistill.data.example import TRANSFER, Example, read_jsonl_lines, read_text
from attrdistill.errors import DataError
from attrdistill.modeling.template import Template
from attrdistill.modeling.words import words


def build_splits(cfg: DataConfig) -> dict[str, list[Example]]:
    """{teacher_train, student_train, valid, test} for the configured task."""
    students = transfer = None
    if cfg.source == "builtin":
        # Distinct generator seeds per split keep the splits independent draws of one task.
        sizes = {"teacher_train": cfg.n_teacher_train, "student_train": cfg.n_student_train,
                 "valid": cfg.n_valid, "test": cfg.n_test}
        return {name: synthetic.generate(n, seed=cfg.seed * 10 + i) for i, (name, n) in enumerate(sizes.items())}
    if cfg.source in dsbs.NAMES:
        train, test = (paper_split(cfg, s) for s in (cfg.train_split, "test"))
        # Validation held out of train when train is the release's validation split.
        valid = paper_split(cfg, "valid") if cfg.train_split != "valid" else None
    elif cfg.source == "files":
        fields = (cfg.input_field, cfg.label_field, cfg.rationale_field, cfg.decisive_field, cfg.human_field,
                  input_template(cfg))
        train, test = (read_table(Path(f), *fields) for f in (cfg.train_file, cfg.test_file))
        valid = read_table(Path(cfg.valid_file), *fields) if cfg.valid_file else None
        students = read_table(Path(cfg.student_train_file), *fields) if cfg.student_train_file else None
        transfer = read_transfer(Path(cfg.transfer_file), cfg.input_field, cfg.label_field, input_template(cfg)) \
            if cfg.transfer_file else None
    else:
        raise DataError(f"data.source: unknown source {cfg.source!r}; expected builtin, files or one of "
                        f"{', '.join(dsbs.NAMES)}")
    if valid is None:   # as DSbS does for CQA and SVAMP
        train, valid = dsbs.train_valid_split(train, fraction=0.1, seed=cfg.seed)
    splits = {"teacher_train": train, "student_train": students or train, "valid": valid, "test": test}
    limits = {name: (cfg.eval_limit or cfg.limit) if name in ("valid", "test") else cfg.limit for name in splits}
    splits = {name: rows[:limits[name]] if limits[name] else rows for name, rows in splits.items()}
    for name, rows in splits.items():
        check_split(rows, f"data.source {cfg.source}, split {name}")
    if transfer is not None:   # inputs only: the teacher labels them (its `transfer` unit)
        splits[TRANSFER] = transfer
    return splits


def input_template(cfg: DataConfig) -> Template | None:
    """The template a source builds its inputs with; None where an input is one field, content throughout (the
    built-in task's stories, SVAMP's problems, own data without data.input_template)."""
    if cfg.source == "files":
        return Template(cfg.input_template) if cfg.input_template else None
    return dsbs.template(cfg.source, cfg.nli_format) if cfg.source in dsbs.NAMES else None


def scaffolds(cfg: DataConfig, examples: list[Example]) -> list[list[int]]:
    """Per example, the word indices of its input's format (the template's own words): never rationale words."""
    template = input_template(cfg)
    if template is None:
        return [[] for _ in examples]
    out = []
    for ex in examples:
        marked = template.scaffold(ex.input)
        if marked is None:
            raise DataError(f"example {ex.id}: its input does not follow the template {template.pattern!r} that "
                            f"data.source {cfg.source} builds inputs with: {ex.input[:80]!r}")
        out.append(marked)
    return out


def check_split(examples: list[Example], where: str) -> None:
    """Refuse an empty split, an empty input or label, or a repeated id (ids key rationales and predictions)."""
    if not examples:
        raise DataError(f"{where}: the split is empty")
    seen: set[str] = set()
    for ex in examples:
        if not ex.input.strip() or not ex.label.strip():
            raise DataError(f"{where}: example {ex.id!r} has an empty {'input' if not ex.input.strip() else 'label'}")
        if ex.id in seen:
            raise DataError(f"{where}: id {ex.id!r} occurs more than once; ids must be unique within a split")
        seen.add(ex.id)


def paper_split(cfg: DataConfig, split: str) -> list[Example] | None:
    """One split of a paper dataset from the configured loader; None for a valid split the source lacks."""
    if cfg.loader == "hub":
        if split == "valid" and not hub.has_split(cfg.source, split):
            return None
        return hub.load_hub(cfg.source, split, cfg.hub_id, cfg.nli_format)
    if cfg.loader == "esnli_csv":
        return esnli_csv.load_esnli_csv(Path(cfg.path), split, cfg.nli_format)
    root = Path(cfg.path)
    if not root.is_dir():
        raise FileNotFoundError(f"data.path: {root} is not a folder (expected the DSbS release with {cfg.source}/)")
    if split == "valid" and split not in dsbs.available_splits(root, cfg.source):
        return None
    return dsbs.load_dsbs(root, cfg.source, split, cfg.nli_format)


def _rows(path: Path) -> list[tuple[int, dict]]:
    """(line, row) of each row of a .jsonl or .csv file."""
    if path.suffix == ".csv":
        reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
        rows, start = [], 2   # line 1 is the header; a quoted field may span lines, so count from the reader
        for row in reader:
            rows.append((start, row))
            start = reader.line_num + 1
        return rows
    if path.suffix in (".jsonl", ".json"):
        return read_jsonl_lines(path)
    raise DataError(f"{path}: expected a .jsonl or .csv file")


def read_table(path: Path, input_field: str = "input", label_field: str = "label", rationale_field: str | None = None,
               decisive_field: str | None = None, human_field: str | None = None,
               template: Template | None = None) -> list[Example]:
    """A user's own .jsonl or .csv file: one example per row, with the named input, label (and rationale) fields,
    and optionally the label's decisive words and human-highlighted words (see `word_indices`). With a
    template, the input is the template filled with the columns it names (input_field is not read)."""
    out, first_line = [], {}
    for n, row in _rows(path):
        text = _input_of(row, f"{path}:{n}", input_field, template, label_field)
        ex_id = _row_id(row, f"{path.stem}-{n}", first_line, path, n)
        rationale = str(row.get(rationale_field) or "") if rationale_field else None
        marked = {f: word_indices(row.get(f), text, f"{path}:{n}: field {f!r}") if f else None
                  for f in (decisive_field, human_field)}
        human = marked[human_field] if human_field else None
        out.append(Example(id=ex_id, input=text, label=str(row[label_field]), rationale=rationale,
                           decisive=marked[decisive_field] if decisive_field else None,
                           human=sorted(set(human)) if human is not None else None))
    if not out:
        raise DataError(f"{path}: no examples (the file has no rows)")
    return out


def read_transfer(path: Path, input_field: str = "input", label_field: str = "label",
                  template: Template | None = None) -> list[Example]:
    """A transfer file: unlabelled inputs (the input column, or the template's), one example each with an empty
    label; a row that has a label is refused (labelled rows belong in train_file or student_train_file)."""
    out, first_line = [], {}
    for n, row in _rows(path):
        if str(row.get(label_field) or "").strip():
            raise DataError(f"{path}:{n}: has a {label_field!r}; a transfer file holds unlabelled inputs (put labelled "
                            "rows in data.train_file or data.student_train_file)")
        text = _input_of(row, f"{path}:{n}", input_field, template)
        out.append(Example(id=_row_id(row, f"transfer-{n}", first_line, path, n), input=text, label=""))
    if not out:
        raise DataError(f"{path}: no inputs (the file has no rows)")
    return out


def _input_of(row: dict, where: str, input_field: str, template: Template | None,
              label_field: str | None = None) -> str:
    """A row's input: its input_field, or the template filled with the columns it names; a missing or empty one
    (or label_field, when given) refused naming them."""
    needed = (*(template.fields if template else (input_field,)), *((label_field,) if label_field else ()))
    missing = [f for f in needed if not str(row.get(f) or "").strip()]
    if missing:
        named = " (data.input_template names them)" if template and set(missing) - {label_field} else ""
        raise DataError(f"{where}: missing or empty field(s) {', '.join(missing)}{named}")
    return template.fill({f: str(row[f]) for f in template.fields}) if template else str(row[input_field])


def _row_id(row: dict, default: str, first_line: dict[str, int], path: Path, n: int) -> str:
    """A row's id (its own, or `default`), refused where an earlier line of the file used it."""
    ex_id = str(row.get("id", default))
    if ex_id in first_line:
        raise DataError(f"{path}:{n}: id {ex_id!r} is already used on line {first_line[ex_id]}; ids must be unique")
    first_line[ex_id] = n
    return ex_id


def word_indices(value: object, text: str, where: str) -> list[int]:
    """Indices into words(text) of marked words, given as a list of indices or of the words themselves (JSON, or in
    a CSV cell a JSON list or 'w1, w2'); a word given twice takes its next occurrence. Order is kept."""
    if isinstance(value, str):
        value = value.strip()
        if value.startswith("["):
            try:
                value = json.loads(value)
            except ValueError:
                raise DataError(f"{where}: not a valid JSON list: {value[:60]!r}") from None
        else:
            value = [w.strip() for w in value.split(",") if w.strip()]
    if value is None:
        raise DataError(f"{where}: missing (expected a list of word indices or words)")
    if not isinstance(value, list):
        raise DataError(f"{where}: expected a list of word indices or words, got {type(value).__name__}")
    ws = words(text)
    out: list[int] = []
    for item in value:
        if isinstance(item, int) and not isinstance(item, bool):
            if not 0 <= item < len(ws):
                raise DataError(f"{where}: word index {item} is outside the input's {len(ws)} words")
            out.append(item)
        elif isinstance(item, str):
            found = [i for i, w in enumerate(ws) if w.lower() == item.strip().lower() and i not in out]
            if not found:
                raise DataError(f"{where}: the word {item!r} is not in the input (or not that often)")
            out.append(found[0])
        else:
            raise DataError(f"{where}: expected word indices or words, got {item!r}")
    return out


def show(source: str, dsbs_root: Path, n: int = 3, split: str | None = None, input_field: str = "input",
         label_field: str = "label", loader: str = "dsbs", hub_id: str | None = None) -> str:
    """Split sizes and the first `n` formatted examples of a dataset name, a DSbS folder or a file."""
    path = Path(source)
    if path.is_file():
        splits = {path.name: read_table(path, input_field, label_field)}
    else:
        name, root = (path.name, path.parent) if path.is_dir() and loader == "dsbs" else (source, dsbs_root)
        if name not in dsbs.NAMES:
            raise DataError(f"{source}: expected a dataset name ({', '.join(dsbs.NAMES)}), a DSbS folder or a "
                            ".jsonl/.csv file")
        cfg = DataConfig(source=name, path=str(root), loader=loader, hub_id=hub_id)
        if loader == "dsbs":   # every row is read and checked; only the examples shown are formatted
            names = dsbs.available_splits(root, name)
            sizes = {s: dsbs.split_size(root, name, s) for s in names}
            chosen = split or names[0]
            if chosen not in sizes:
                raise DataError(f"--split {chosen}: expected one of {', '.join(sizes)}")
            return _shown(sizes, chosen, dsbs.load_dsbs(root, name, chosen, first=max(n, 1))[:n])
        names = [s for s in ("train", "valid", "test") if loader == "esnli_csv" or hub.has_split(name, s)]
        splits = {s: paper_split(cfg, s) for s in names}
    chosen = split or next(iter(splits))
    if chosen not in splits:
        raise DataError(f"--split {chosen}: expected one of {', '.join(splits)}")
    return _shown({k: len(v) for k, v in splits.items()}, chosen, splits[chosen][:n])


def _shown(sizes: dict[str, int], chosen: str, examples: list[Example]) -> str:
    lines = ["split sizes: " + ", ".join(f"{k} {v}" for k, v in sizes.items())]
    for ex in examples:
        lines += ["", f"[{chosen}] {ex.id}", f"input: {ex.input!r}", f"label: {ex.label!r}"]
        if ex.rationale is not None:
            lines.append(f"rationale: {ex.rationale!r}")
        if ex.human:
            lines.append(f"human: {', '.join(words(ex.input)[i] for i in ex.human)!r}")
    return "\n".join(lines)
