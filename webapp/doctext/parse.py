"""Reading a PDF or DOCX, in a process of its own with limits on memory and CPU time.

Run as a script (`python -I parse.py KIND MEMORY_BYTES CPU_SECONDS MAX_CHARS`) by
`webapp.doctext.extract`: the limits are set before any parser is imported, the document
(and an optional password) come on standard input, and one JSON object goes to standard
output: `{"ok": true, "units": [...]}` or `{"ok": false, "code": ..., "detail": ...}`.

This file imports nothing from Atelier, so a parser that loops, or a file built to exhaust
memory, can only take this process down, never the app.
"""

from __future__ import annotations

import io
import json
import re
import resource
import struct
import sys
import zipfile

# DOCX is a ZIP of XML parts. A zip bomb declares (or packs) far more than a Word file ever
# holds; these caps are checked from the central directory before anything is unpacked.
DOCX_MAX_ENTRIES = 1000
DOCX_MAX_ENTRY_BYTES = 64 * 2**20
DOCX_MAX_TOTAL_BYTES = 160 * 2**20
DOCX_MAX_RATIO = 100  # unpacked / packed, for entries over DOCX_RATIO_FROM bytes
DOCX_RATIO_FROM = 2**20
DOCX_REQUIRED = ("[Content_Types].xml", "word/document.xml")
# Word never writes a DTD; one in a part can only be there to declare entities.
XML_DECLARATIONS = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class Refused(Exception):
    """The document cannot be read; `code` says why (the parent words the message)."""

    def __init__(self, code: str, detail: str = ""):
        super().__init__(code)
        self.code, self.detail = code, detail


def limit(memory_bytes: int, cpu_seconds: int) -> None:
    """Cap this process: address space, CPU seconds, no files written, no core dumps."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def clean(text: str) -> str:
    """Control characters out, spaces at line ends out, at most one blank line in a row."""
    text = CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# -- PDF ------------------------------------------------------------------------------------


def read_pdf(data: bytes, password: str) -> list[dict]:
    from pypdf import PasswordType, PdfReader
    from pypdf.errors import DependencyError

    reader = PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted:
        try:
            opened = reader.decrypt(password)
            if opened == PasswordType.NOT_DECRYPTED and password:
                raise Refused("wrong_password")
            if opened == PasswordType.NOT_DECRYPTED:
                raise Refused("password")
        except (DependencyError, NotImplementedError) as error:
            raise Refused("encryption_unsupported", str(error)) from None
    units = []
    for number, page in enumerate(reader.pages, start=1):
        text = clean(page.extract_text() or "")
        units.append({"number": number, "text": text, "images": _has_images(page)})
    return units


def _has_images(page) -> bool:
    """Whether the page draws a picture (a scanned page is one big picture)."""
    try:
        resources = page.get("/Resources")
        resources = resources.get_object() if resources is not None else {}
        objects = resources.get("/XObject")
        objects = objects.get_object() if objects is not None else {}
        return any(
            objects[name].get_object().get("/Subtype") in ("/Image", "/Form") for name in objects
        )
    except Exception:  # a damaged resource dictionary says nothing either way
        return False


# -- DOCX -----------------------------------------------------------------------------------


def check_docx_archive(data: bytes) -> None:
    """Refuse a ZIP that is not a Word file, or that unpacks to far more than one."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, struct.error):
        raise Refused("corrupt") from None
    with archive:
        entries = archive.infolist()
        if len(entries) > DOCX_MAX_ENTRIES:
            raise Refused("zip_bomb", f"{len(entries)} entries")
        total = 0
        for entry in entries:
            total += entry.file_size
            ratio = entry.file_size / max(entry.compress_size, 1)
            if (
                entry.file_size > DOCX_MAX_ENTRY_BYTES
                or total > DOCX_MAX_TOTAL_BYTES
                or (entry.file_size > DOCX_RATIO_FROM and ratio > DOCX_MAX_RATIO)
            ):
                raise Refused("zip_bomb", f"{entry.filename}: {entry.file_size} bytes")
        names = {entry.filename for entry in entries}
        if not all(name in names for name in DOCX_REQUIRED):
            raise Refused("not_docx")
        for entry in entries:
            if entry.filename.endswith((".xml", ".rels")):
                try:
                    part = archive.read(entry)
                except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
                    raise Refused("corrupt") from None
                if XML_DECLARATIONS.search(part):
                    raise Refused("xml_entities", entry.filename)


def read_docx(data: bytes) -> list[dict]:
    """Non-empty paragraphs in reading order (a table row counts as one, its cells joined
    by " | "), numbered from 1; headings marked."""
    check_docx_archive(data)
    from docx import Document
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    document = Document(io.BytesIO(data))
    units: list[dict] = []

    def add(text: str, heading: bool) -> None:
        text = clean(text)
        if text:
            units.append({"number": len(units) + 1, "text": text, "heading": heading})

    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            style = (block.style.name if block.style is not None else "") or ""
            add(block.text, style.startswith(("Heading", "Title")))
        elif isinstance(block, Table):
            for row in block.rows:
                cells = list(dict.fromkeys(clean(cell.text) for cell in row.cells))
                add(" | ".join(cell for cell in cells if cell), False)
    return units


# -- the process ----------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    kind, memory, seconds, max_chars = argv[1], int(argv[2]), int(argv[3]), int(argv[4])
    limit(memory, seconds)
    raw = sys.stdin.buffer.read()
    size = int.from_bytes(raw[:4], "big")
    password, data = raw[4 : 4 + size].decode("utf-8"), raw[4 + size :]
    try:
        units = read_pdf(data, password) if kind == "pdf" else read_docx(data)
        if sum(len(unit["text"]) for unit in units) > max_chars:
            raise Refused("too_long")
        answer = {"ok": True, "units": units}
    except Refused as refused:
        answer = {"ok": False, "code": refused.code, "detail": refused.detail[:300]}
    except MemoryError:
        answer = {"ok": False, "code": "memory"}
    except ImportError as error:  # the reader is not installed: not the document's fault
        answer = {"ok": False, "code": "reader_missing", "detail": str(error)}
    except RecursionError:
        answer = {"ok": False, "code": "corrupt", "detail": "nested too deeply"}
    except Exception as error:  # every parser error of a damaged file ends here
        answer = {"ok": False, "code": "corrupt", "detail": f"{type(error).__name__}: {error}"}
    sys.stdout.write(json.dumps(answer, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
