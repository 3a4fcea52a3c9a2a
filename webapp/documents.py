"""Results as files people download, and word-level differences for the proofreader."""

from __future__ import annotations

import difflib
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from docx import Document

XML_INCOMPATIBLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
HEADING = re.compile(r"^(#{1,6})\s+(.+)$")
BULLET = re.compile(r"^[-*•]\s+(.+)$")
NUMBERED = re.compile(r"^\d{1,3}[.)]\s+(.+)$")


def to_docx(text: str, title: str = "", author: str = "Atelier") -> bytes:
    """A Word document with the text: a paragraph per line (blank lines only separate),
    markdown bullets and numbered items as Word lists, `#` headings as headings. The
    document names its author and title, not the library that wrote it. Characters Word
    cannot store, such as control characters, are left out."""
    text = XML_INCOMPATIBLE.sub("", text)
    document = Document()
    properties = document.core_properties
    properties.author = properties.last_modified_by = author
    properties.title = title
    properties.comments = ""
    properties.created = properties.modified = datetime.now(UTC).replace(tzinfo=None)
    if title:
        document.add_heading(title, level=1)
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if heading := HEADING.match(line):
            document.add_heading(heading.group(2), level=min(len(heading.group(1)) + 1, 9))
        elif bullet := BULLET.match(line):
            document.add_paragraph(bullet.group(1), style="List Bullet")
        elif number := NUMBERED.match(line):
            document.add_paragraph(number.group(1), style="List Number")
        else:
            document.add_paragraph(line)
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
