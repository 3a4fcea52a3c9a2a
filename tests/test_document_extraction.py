"""Text out of uploaded documents, with the page or paragraph each part comes from, and a
clear message for every file that cannot be read (nothing crashes, nothing hangs)."""

from __future__ import annotations

import io
import zipfile
import zlib

import pytest

from webapp.doctext.chunks import make_passages, make_windows
from webapp.doctext.extract import Limits, extract_paste, extract_upload
from webapp.doctext.samples import (
    contract_pages,
    make_docx,
    make_encrypted_pdf,
    make_pdf,
    make_scanned_pdf,
    page_sentence,
)
from webapp.errors import ValidationError

MB = 2**20
QUICK = Limits(memory_bytes=512 * MB, cpu_seconds=3, wall_seconds=8)


def refused(data: bytes, name: str, password: str = "", limits: Limits | None = None, most=50 * MB):
    with pytest.raises(ValidationError) as caught:
        extract_upload(data, name, most, password, limits or Limits())
    return caught.value


def test_pdf_text_keeps_its_page_numbers():
    pages = contract_pages(5)
    document = extract_upload(make_pdf(pages), "contract.pdf", 50 * MB)
    assert (document.kind, document.unit, document.unit_count) == ("pdf", "page", 5)
    for unit in document.units:
        assert page_sentence(unit.number) in unit.text
        assert all(page_sentence(n) not in unit.text for n in range(1, 6) if n != unit.number)


def test_blank_pdf_pages_are_counted_and_named_but_not_read_as_text():
    pages = contract_pages(3)
    document = extract_upload(make_pdf([pages[0], "", pages[2]]), "gaps.pdf", 50 * MB)
    assert document.unit_count == 3
    assert document.blank == (2,)
    assert [unit.number for unit in document.units] == [1, 3]


def test_docx_paragraphs_are_numbered_in_reading_order_with_headings_marked():
    data = make_docx(["Terms of supply", "The supplier delivers.", "", "The buyer pays."], (0,))
    document = extract_upload(data, "terms.docx", 50 * MB)
    assert document.unit == "paragraph"
    assert [(u.number, u.text, u.heading) for u in document.units] == [
        (1, "Terms of supply", True),
        (2, "The supplier delivers.", False),
        (3, "The buyer pays.", False),
    ]


def test_text_and_markdown_are_numbered_by_paragraph():
    text = "# Scope\nThe supplier delivers.\n\nThe buyer pays.\n"
    document = extract_upload(text.encode(), "notes.md", 50 * MB)
    assert [(u.number, u.text, u.heading) for u in document.units] == [
        (1, "# Scope", True),
        (2, "The supplier delivers.", False),
        (3, "The buyer pays.", False),
    ]
    plain = extract_upload("\ufeffOne.\n\nTwo.".encode("utf-8"), "plain.txt", 50 * MB)
    assert [u.text for u in plain.units] == ["One.", "Two."]


def test_pasted_text_is_a_document_too_and_empty_paste_is_refused():
    assert [u.text for u in extract_paste("First.\n\n\nSecond.").units] == ["First.", "Second."]
    with pytest.raises(ValidationError) as caught:
        extract_paste("  \n ")
    assert caught.value.field == "text"


# -- bad input --------------------------------------------------------------------------------


def test_an_encrypted_pdf_asks_for_its_password_and_opens_with_the_right_one():
    data = make_encrypted_pdf(contract_pages(2), "s3cret")
    asked = refused(data, "locked.pdf")
    assert asked.field == "password" and "protected by a password" in asked.message
    wrong = refused(data, "locked.pdf", password="guess")
    assert wrong.field == "password" and "does not open" in wrong.message
    document = extract_upload(data, "locked.pdf", 50 * MB, "s3cret")
    assert page_sentence(2) in document.units[1].text


@pytest.mark.parametrize("cut", [0.2, 0.6])
def test_a_truncated_or_corrupt_pdf_is_called_damaged(cut):
    data = make_pdf(contract_pages(3))
    error = refused(data[: int(len(data) * cut)], "cut.pdf")
    assert error.field == "file" and "damaged or incomplete" in error.message
    garbage = b"%PDF-1.7\n" + bytes(range(256)) * 40
    assert "damaged or incomplete" in refused(garbage, "garbage.pdf").message


@pytest.mark.parametrize(
    ("data", "name", "words"),
    [
        (b"PK\x03\x04 not really", "report.pdf", "ZIP archive"),
        (b"\x89PNG\r\n\x1a\n....", "report.docx", "PNG picture"),
        (b"%PDF-1.7 ...", "report.txt", "a PDF"),
        (b"\xd0\xcf\x11\xe0 old word", "report.docx", "old Office file"),
        ("caf\xe9".encode("latin-1"), "notes.txt", "not UTF-8"),
    ],
)
def test_content_that_does_not_match_the_name_is_refused_before_parsing(data, name, words):
    error = refused(data, name)
    assert error.field == "file" and words in error.message


def test_an_unknown_kind_of_file_is_refused_by_name():
    assert "upload a PDF" in refused(b"a,b\n1,2\n", "sheet.csv").message


def test_an_oversize_file_is_refused_with_the_limit():
    error = refused(make_pdf(contract_pages(2)), "big.pdf", most=1000)
    assert error.field == "file" and "the most is 0 MB" in error.message


def test_a_scan_with_no_text_layer_says_so():
    error = refused(make_scanned_pdf(), "scan.pdf")
    assert error.message.startswith("This looks like a scan; text recognition is not available")


@pytest.mark.parametrize(
    ("data", "name"),
    [(make_pdf(["", ""]), "blank.pdf"), (b"   \n\n ", "empty.txt"), (make_docx([""]), "e.docx")],
)
def test_an_empty_document_is_refused(data, name):
    error = refused(data, name)
    assert "no text to read" in error.message or "is empty" in error.message


def _docx_with(extra: dict[str, bytes], replace: dict[str, bytes] | None = None) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(make_docx(["Hello."])))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            target.writestr(item, (replace or {}).get(item.filename, source.read(item)))
        for name, content in extra.items():
            target.writestr(name, content)
    return buffer.getvalue()


def test_a_docx_zip_bomb_is_refused_before_it_is_unpacked():
    bomb = _docx_with({"word/media/padding.bin": b"\0" * (40 * MB)})
    assert len(bomb) < MB  # tiny on disk
    error = refused(bomb, "bomb.docx")
    assert "zip bomb" in error.message
    many = _docx_with({f"word/media/{i}.bin": b"x" for i in range(1500)})
    assert "zip bomb" in refused(many, "many.docx").message


def test_a_docx_declaring_xml_entities_is_not_opened():
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE w [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;">]>'
        b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        b"<w:body><w:p><w:r><w:t>&b;</w:t></w:r></w:p></w:body></w:document>"
    )
    error = refused(_docx_with({}, {"word/document.xml": laughs}), "laughs.docx")
    assert "DOCTYPE" in error.message


def _pdf(objects: list[bytes]) -> bytes:
    """A PDF from numbered object bodies, with a correct cross-reference table."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def test_a_pdf_crafted_to_stall_the_parser_is_stopped_by_the_time_limit():
    operations = b"BT /F1 12 Tf " + b"(a) Tj 1 0 0 1 0 0 Tm " * 3_000_000 + b"ET"
    packed = zlib.compress(operations, 9)
    stall = _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(packed)
            + packed
            + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        ]
    )
    assert len(stall) < 200_000
    error = refused(stall, "stall.pdf", limits=QUICK)
    assert error.field == "file" and "so it was stopped" in error.message


def test_a_pdf_whose_page_tree_refers_to_itself_is_refused_quickly():
    circular = _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
        ]
    )
    error = refused(circular, "circle.pdf", limits=QUICK)
    assert error.field == "file"
    assert any(words in error.message for words in ("damaged", "was stopped", "no text"))


# -- passages and windows -------------------------------------------------------------------


def test_passages_stay_on_their_page_and_keep_every_word():
    document = extract_upload(make_pdf(contract_pages(4, words_per_page=300)), "c.pdf", 50 * MB)
    passages = make_passages(document, words=100)
    assert all(p.unit_start == p.unit_end for p in passages)
    for unit in document.units:
        on_page = [p.text for p in passages if p.unit_start == unit.number]
        assert " ".join(" ".join(on_page).split()) == " ".join(unit.text.split())
        assert all(len(text.split()) <= 100 for text in on_page)
    assert [p.position for p in passages] == list(range(len(passages)))


def test_short_paragraphs_gather_into_passages_that_name_their_paragraph_range():
    document = extract_paste("\n\n".join(f"Point {i} is short." for i in range(1, 11)))
    passages = make_passages(document, words=12)
    assert [(p.unit_start, p.unit_end) for p in passages] == [(1, 3), (4, 6), (7, 9), (10, 10)]


def test_windows_pack_consecutive_passages_within_the_budget():
    document = extract_paste("\n\n".join(f"Point {i} is short." for i in range(1, 11)))
    passages = make_passages(document, words=4)
    windows = make_windows(passages, [30] * len(passages), budget=100)
    assert [len(w.passages) for w in windows] == [3, 3, 3, 1]
    assert [p for w in windows for p in w.passages] == passages
    assert windows[1].units == (4, 5, 6)
