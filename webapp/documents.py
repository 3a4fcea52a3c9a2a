"""Results as files people download, and word-level differences for the proofreader."""

from __future__ import annotations

import difflib
import io
import re
from dataclasses import dataclass

from docx import Document

XML_INCOMPATIBLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def to_docx(text: str, title: str = "") -> bytes:
    """A Word document with the text, one paragraph per paragraph (characters Word cannot
    store, such as control characters, are left out)."""
    text = XML_INCOMPATIBLE.sub("", text)
    document = Document()
    if title:
        document.add_heading(title, level=1)
    for paragraph in text.split("\n\n"):
        document.add_paragraph(paragraph.strip())
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


@dataclass(frozen=True)
class Change:
    before: str
    after: str


def word_changes(before: str, after: str) -> list[Change]:
    """The words that differ between two texts, as before/after pairs (unchanged runs left out)."""
    old, new = re.findall(r"\S+|\s+", before), re.findall(r"\S+|\s+", after)
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    return [
        Change("".join(old[a0:a1]).strip(), "".join(new[b0:b1]).strip())
        for tag, a0, a1, b0, b1 in matcher.get_opcodes()
        if tag != "equal" and ("".join(old[a0:a1]).strip() or "".join(new[b0:b1]).strip())
    ]
