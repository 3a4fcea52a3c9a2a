"""A dataset of a team's approved texts: read from what people paste or upload, checked,
counted, with duplicates set aside and a share held back for evaluation.

Sources: pasted text or TXT / DOCX / Markdown files (one example per paragraph, read by
`webapp.doctext.extract`, the one reader of documents), CSV (a `text` column, or `input`
and `output` columns) and JSONL (one object a line: `{"text": …}` or
`{"input": …, "output": …}`). Every problem names where it came from (a file's line, a
paragraph) and says what to do.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import statistics
from dataclasses import dataclass, field
from pathlib import PurePath

from webapp.doctext.extract import decode_text, extract_paste, extract_upload
from webapp.errors import ValidationError

MIN_EXAMPLES = 10  # fewer and an adapter learns the texts, not the voice
GOOD_EXAMPLES = 50  # from here on a voice is clearly better than a prompt's few examples
MAX_EXAMPLES = 20_000
MAX_EXAMPLE_CHARS = 20_000
HOLD_BACK_SHARE = 0.1
MIN_HELD_BACK = 2
DATASET_KINDS = (".txt", ".md", ".docx", ".csv", ".jsonl")


@dataclass(frozen=True)
class Example:
    output: str  # the approved text (the brand rewrite, for a pair)
    input: str = ""  # the plain text a pair rewrites; empty for an approved text alone
    source: str = ""  # where it came from, in words: "texts.csv, row 4"

    @property
    def is_pair(self) -> bool:
        return bool(self.input)


@dataclass(frozen=True)
class Duplicate:
    source: str  # the repeat, set aside
    first: str  # where the same text came first


@dataclass(frozen=True)
class LengthStats:
    shortest: int  # words
    median: int
    longest: int


@dataclass(frozen=True)
class Dataset:
    train: tuple[Example, ...]
    held_back: tuple[Example, ...]
    duplicates: tuple[Duplicate, ...] = ()
    notes: tuple[str, ...] = field(default=())  # advice that does not stop training

    @property
    def examples(self) -> tuple[Example, ...]:
        return (*self.train, *self.held_back)

    @property
    def pairs(self) -> int:
        return sum(example.is_pair for example in self.examples)

    @property
    def lengths(self) -> LengthStats:
        words = sorted(len(example.output.split()) for example in self.examples)
        return LengthStats(words[0], int(statistics.median(words)), words[-1])


# -- reading sources ------------------------------------------------------------------------


def read_paste(text: str) -> list[Example]:
    """Pasted approved texts, one per paragraph (blank lines between them)."""
    extracted = extract_paste(text)
    return [
        Example(unit.text, source=f"The pasted text, paragraph {unit.number}")
        for unit in extracted.units
    ]


def read_upload(data: bytes, filename: str, max_bytes: int) -> list[Example]:
    """The examples of one uploaded file, by its kind; a ValidationError for `file` names
    the file (and its line or row) and what to do."""
    name = PurePath(filename or "upload").name
    suffix = PurePath(name).suffix.lower()
    if suffix not in DATASET_KINDS:
        raise ValidationError(
            f"“{name}” is not a kind of file a dataset is read from: upload TXT, DOCX, "
            "Markdown, CSV or JSONL.",
            field="file",
        )
    if suffix in (".txt", ".md", ".docx"):
        extracted = extract_upload(data, name, max_bytes)
        return [
            Example(unit.text, source=f"{name}, paragraph {unit.number}")
            for unit in extracted.units
            if not unit.heading
        ]
    if len(data) > max_bytes:
        raise ValidationError(
            f"“{name}” is {len(data) / 2**20:.1f} MB; the most is {max_bytes / 2**20:.0f} MB.",
            field="file",
        )
    text = decode_text(data, name)
    return _read_csv(text, name) if suffix == ".csv" else _read_jsonl(text, name)


def _read_jsonl(text: str, name: str) -> list[Example]:
    examples = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name}, line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValidationError(
                f"{where} is not JSON ({error.msg}, column {error.colno}). Each line must be "
                'one JSON object: {"text": "…"} or {"input": "…", "output": "…"}.',
                field="file",
            ) from None
        if not isinstance(record, dict):
            raise ValidationError(
                f'{where} is not a JSON object: write {{"text": "…"}} or '
                '{"input": "…", "output": "…"}.',
                field="file",
            )
        examples.append(_example(record, where))
    return examples


def _read_csv(text: str, name: str) -> list[Example]:
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        columns = [(column or "").strip().lower() for column in reader.fieldnames or []]
        if "text" not in columns and not {"input", "output"} <= set(columns):
            shown = ", ".join(c for c in columns if c) or "none"
            raise ValidationError(
                f"“{name}” has no “text” column (its columns: {shown}). Name the column of "
                "approved texts “text”, or give “input” and “output” columns for rewrites.",
                field="file",
            )
        examples = []
        for row in reader:
            record = {(k or "").strip().lower(): v for k, v in row.items() if k is not None}
            if not any((value or "").strip() for value in record.values()):
                continue
            examples.append(_example(record, f"{name}, row {reader.line_num}"))
    except csv.Error as error:
        raise ValidationError(
            f"“{name}” is not a readable CSV file ({error}). Save it again as CSV (UTF-8).",
            field="file",
        ) from None
    return examples


def _example(record: dict, where: str) -> Example:
    """An example from a JSONL object or a CSV row."""
    if "output" in record or "input" in record:
        output, given = record.get("output"), record.get("input")
        if not isinstance(output, str) or not output.strip():
            raise ValidationError(f"{where} has no “output” text: add the brand rewrite.", "file")
        if not isinstance(given, str) or not given.strip():
            raise ValidationError(
                f"{where} has an “output” but no “input”: add the plain text it rewrites, "
                "or name the field “text” for an approved text on its own.",
                field="file",
            )
        return Example(_clean(output, where), _clean(given, where), where)
    value = record.get("text")
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(
            f"{where} has no “text”: give each example a “text” field (or “input” and "
            "“output” for a rewrite).",
            field="file",
        )
    return Example(_clean(value, where), source=where)


def _clean(text: str, where: str) -> str:
    text = text.replace("\r\n", "\n").strip()
    if len(text) > MAX_EXAMPLE_CHARS:
        raise ValidationError(
            f"{where} is {len(text):,} characters; an example may have at most "
            f"{MAX_EXAMPLE_CHARS:,}. Split it into shorter texts.",
            field="file",
        )
    return text


# -- building the dataset -------------------------------------------------------------------


def build_dataset(examples: list[Example], hold_back: float = HOLD_BACK_SHARE) -> Dataset:
    """Duplicates set aside, too few refused, a share held back for evaluation (the same
    examples every time: chosen by a hash of their text, not by chance)."""
    if len(examples) > MAX_EXAMPLES:
        raise ValidationError(
            f"{len(examples):,} examples is more than one dataset takes ({MAX_EXAMPLES:,}). "
            "Choose the best of them.",
            field="examples",
        )
    unique, duplicates = _without_duplicates(examples)
    if len(unique) < MIN_EXAMPLES:
        more = MIN_EXAMPLES - len(unique)
        repeats = f" ({len(duplicates)} repeated ones were set aside)" if duplicates else ""
        raise ValidationError(
            f"{len(unique)} different example(s){repeats} is too few to tune a voice: add at "
            f"least {more} more ({MIN_EXAMPLES} is the least; {GOOD_EXAMPLES} or more give a "
            "clearly better voice).",
            field="examples",
        )
    count = max(MIN_HELD_BACK, round(len(unique) * hold_back))
    ranked = sorted(unique, key=lambda e: hashlib.sha256(e.output.encode()).hexdigest())
    held = set(map(id, ranked[:count]))
    notes = []
    if len(unique) < GOOD_EXAMPLES:
        notes.append(
            f"{len(unique)} examples will train a voice, but about {GOOD_EXAMPLES - len(unique)} "
            f"more (so {GOOD_EXAMPLES} in all) would make it clearly better."
        )
    return Dataset(
        train=tuple(e for e in unique if id(e) not in held),
        held_back=tuple(e for e in unique if id(e) in held),
        duplicates=tuple(duplicates),
        notes=tuple(notes),
    )


def _without_duplicates(examples: list[Example]) -> tuple[list[Example], list[Duplicate]]:
    seen: dict[tuple[str, str], Example] = {}
    unique, duplicates = [], []
    for example in examples:
        key = (
            " ".join(example.input.casefold().split()),
            " ".join(example.output.casefold().split()),
        )
        if key in seen:
            duplicates.append(Duplicate(example.source, seen[key].source))
            continue
        seen[key] = example
        unique.append(example)
    return unique, duplicates


# -- stored as JSONL under the data dir -----------------------------------------------------


def to_jsonl(dataset: Dataset) -> bytes:
    lines = [
        json.dumps(
            {"input": e.input, "output": e.output, "source": e.source, "held_back": held},
            ensure_ascii=False,
        )
        for held, part in ((False, dataset.train), (True, dataset.held_back))
        for e in part
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def from_jsonl(data: bytes) -> Dataset:
    train, held = [], []
    for line in data.decode("utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            example = Example(record["output"], record["input"], record["source"])
            (held if record["held_back"] else train).append(example)
    return Dataset(tuple(train), tuple(held))
