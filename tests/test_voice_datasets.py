"""A dataset from a team's approved texts: every kind of source read, every bad input
refused with where it came from and what to do, duplicates set aside, a share held back."""

from __future__ import annotations

import io
import json

import pytest
from docx import Document

from webapp.errors import ValidationError
from webapp.tuning.dataset import (
    GOOD_EXAMPLES,
    MIN_EXAMPLES,
    Example,
    build_dataset,
    from_jsonl,
    read_paste,
    read_upload,
    to_jsonl,
)

MB = 2**20


def texts(count: int) -> list[str]:
    return [
        f"Hello friend, kettle {i} boils fast and we think you'll love it." for i in range(count)
    ]


def jsonl(records: list[dict]) -> bytes:
    return "\n".join(json.dumps(r) for r in records).encode()


def test_jsonl_texts_and_pairs_are_read_with_their_line():
    data = jsonl([{"text": "One."}, {"input": "Buy now.", "output": "Treat yourself!"}])
    one, pair = read_upload(data, "voice.jsonl", MB)
    assert one == Example("One.", source="voice.jsonl, line 1")
    assert pair.is_pair and pair.input == "Buy now." and pair.source == "voice.jsonl, line 2"


def test_malformed_jsonl_names_its_line():
    data = b'{"text": "fine"}\n\n{"text": "broken\n'
    with pytest.raises(ValidationError, match=r"voice.jsonl, line 3 is not JSON") as refused:
        read_upload(data, "voice.jsonl", MB)
    assert refused.value.field == "file"


def test_a_pair_without_its_input_says_what_to_add():
    with pytest.raises(ValidationError, match="line 1 has an “output” but no “input”"):
        read_upload(jsonl([{"output": "Treat yourself!"}]), "voice.jsonl", MB)


def test_a_csv_without_a_text_column_lists_its_columns():
    data = b"title,body\nA,Some words\n"
    with pytest.raises(ValidationError, match=r"no “text” column \(its columns: title, body\)"):
        read_upload(data, "texts.csv", MB)


def test_a_csv_with_a_text_column_is_read_row_by_row():
    data = b'text,notes\n"Hi there, friend",x\n,\n"Second, with a comma",y\n'
    read = read_upload(data, "texts.csv", MB)
    assert [e.output for e in read] == ["Hi there, friend", "Second, with a comma"]
    assert read[1].source == "texts.csv, row 4"


def test_a_file_in_the_wrong_encoding_is_refused_with_what_to_do():
    with pytest.raises(ValidationError, match="not UTF-8 text: save it as UTF-8"):
        read_upload("text\ncafé crème\n".encode("latin-1"), "texts.csv", MB)


def test_txt_and_docx_give_one_example_per_paragraph():
    assert [e.output for e in read_upload(b"First one.\n\nSecond one.\n", "a.txt", MB)] == [
        "First one.",
        "Second one.",
    ]
    document = Document()
    document.add_paragraph("From Word, first.")
    document.add_paragraph("From Word, second.")
    buffer = io.BytesIO()
    document.save(buffer)
    read = read_upload(buffer.getvalue(), "approved.docx", MB)
    assert [e.output for e in read] == ["From Word, first.", "From Word, second."]
    assert read[0].source == "approved.docx, paragraph 1"


def test_an_unknown_kind_of_file_is_refused():
    with pytest.raises(ValidationError, match="upload TXT, DOCX, Markdown, CSV or JSONL"):
        read_upload(b"x", "texts.xlsx", MB)


def test_too_few_examples_says_how_many_more_would_help():
    examples = read_paste("\n\n".join(texts(4) + texts(2)))  # two are repeats
    with pytest.raises(ValidationError) as refused:
        build_dataset(examples)
    message = refused.value.message
    assert "4 different example(s) (2 repeated ones were set aside)" in message
    assert f"add at least {MIN_EXAMPLES - 4} more" in message
    assert refused.value.field == "examples"


def test_duplicates_are_set_aside_and_a_share_is_held_back_the_same_every_time():
    examples = read_paste(
        "\n\n".join(texts(20) + ["Hello friend, KETTLE 3 boils fast and we think you'll love it."])
    )
    dataset = build_dataset(examples)
    assert len(dataset.duplicates) == 1
    assert dataset.duplicates[0].first == "The pasted text, paragraph 4"
    assert len(dataset.held_back) == 2 and len(dataset.train) == 18
    assert set(build_dataset(examples[10:] + examples[:10]).held_back) == set(dataset.held_back)
    assert f"so {GOOD_EXAMPLES} in all" in dataset.notes[0]
    assert dataset.lengths.shortest == dataset.lengths.longest == 12


def test_a_dataset_is_stored_and_read_back_whole():
    dataset = build_dataset([Example(t, source=f"line {i}") for i, t in enumerate(texts(12))])
    again = from_jsonl(to_jsonl(dataset))
    assert again.train == dataset.train and again.held_back == dataset.held_back
