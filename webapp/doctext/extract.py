"""The text of an uploaded document, with its page (PDF) or paragraph (DOCX, text, Markdown,
paste) numbers, or a ValidationError that says what to do.

1. Size, then the kind from the name, then the content's own signature (magic bytes): a file
   whose content is not what its name says is refused before any parser sees it.
2. PDF and DOCX are parsed in a separate process (`parse.py`) with caps on memory, CPU time
   and wall time, no files written; at most two such processes run at once.
3. Text and Markdown are decoded here (UTF-8, or UTF-16 with its byte-order mark).
4. A document with no text is refused: a PDF whose pages are pictures "looks like a scan".
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path, PurePath

from webapp.errors import ValidationError

log = logging.getLogger(__name__)
KINDS = {".pdf": "pdf", ".docx": "docx", ".txt": "txt", ".md": "md", ".markdown": "md"}
UNIT = {"pdf": "page", "docx": "paragraph", "txt": "paragraph", "md": "paragraph"}
MAX_CHARS = 3_000_000  # about 1,500 dense pages; more is split by the person
PARSE_SCRIPT = Path(__file__).resolve().parent / "parse.py"
_parsers = threading.BoundedSemaphore(2)  # parser processes at once


@dataclass(frozen=True)
class Limits:
    """What one parser process may use."""

    memory_bytes: int = 1024 * 2**20
    cpu_seconds: int = 60
    wall_seconds: float = 90.0


@dataclass(frozen=True)
class Unit:
    number: int  # the page or paragraph number people see
    text: str
    heading: bool = False


@dataclass(frozen=True)
class ExtractedText:
    kind: str  # pdf | docx | txt | md | paste
    unit: str  # page | paragraph
    units: tuple[Unit, ...]  # those with text, in order
    unit_count: int  # pages (blank ones too) or paragraphs
    blank: tuple[int, ...] = ()  # pages with no text on them

    @property
    def chars(self) -> int:
        return sum(len(unit.text) for unit in self.units)


# -- what a file is -------------------------------------------------------------------------

SIGNATURES = (
    (b"%PDF-", "a PDF"),
    (b"PK\x03\x04", "a ZIP archive (such as a Word or Excel file)"),
    (b"\xd0\xcf\x11\xe0", "an old Office file (.doc, .xls); save it as .docx"),
    (b"\x89PNG", "a PNG picture"),
    (b"\xff\xd8\xff", "a JPEG picture"),
    (b"GIF8", "a GIF picture"),
    (b"{\\rtf", "an RTF file; save it as .docx"),
)
NAMES = {
    "pdf": "a PDF",
    "docx": "a Word (.docx) file",
    "txt": "a text file",
    "md": "a Markdown file",
}
BYTE_ORDER_MARKS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def content_kind(data: bytes, pdf_after_junk: bool = True) -> str | None:
    """What the first bytes say the file is, in words; None for no known signature. A PDF's
    signature may follow up to 1 KB of junk (readers accept that)."""
    if pdf_after_junk and b"%PDF-" in data[:1024]:
        return "a PDF"
    return next((words for magic, words in SIGNATURES if data.startswith(magic)), None)


def kind_of(filename: str) -> str:
    suffix = PurePath(filename).suffix.lower()
    if suffix not in KINDS:
        raise ValidationError(
            f"“{_shown(filename)}” is not a file Atelier reads: upload a PDF, a Word file "
            "(.docx), a text file (.txt) or Markdown (.md).",
            field="file",
        )
    return KINDS[suffix]


def _shown(filename: str) -> str:
    name = PurePath(filename or "document").name
    return name if len(name) <= 80 else name[:77] + "…"


# -- the steps ------------------------------------------------------------------------------


def extract_upload(
    data: bytes,
    filename: str,
    max_bytes: int,
    password: str = "",
    limits: Limits = Limits(),
) -> ExtractedText:
    """The text of an uploaded file, or a ValidationError for the field `file` (or
    `password` for a protected PDF)."""
    name = _shown(filename)
    # 1. Size, kind by name, kind by content.
    if len(data) > max_bytes:
        raise ValidationError(
            f"“{name}” is {len(data) / 2**20:.1f} MB; the most is {max_bytes / 2**20:.0f} MB. "
            "Upload a smaller file, or split the document.",
            field="file",
        )
    kind = kind_of(filename)
    if not data.strip():
        raise ValidationError(f"“{name}” is empty: there is no text to read.", field="file")
    found = content_kind(data, pdf_after_junk=kind == "pdf")
    expected = {"pdf": "a PDF", "docx": "a ZIP archive (such as a Word or Excel file)"}.get(kind)
    if (expected is not None and found != expected) or (expected is None and found is not None):
        really = found or "not " + NAMES[kind]
        raise ValidationError(
            f"“{name}” is named as {NAMES[kind]}, but its content is {really}. Upload the "
            "document itself, saved in the format its name says.",
            field="file",
        )
    # 2. and 3. The text, numbered.
    if kind in ("pdf", "docx"):
        raw_units = _parse_in_subprocess(kind, data, password, name, limits)
    else:
        raw_units = _paragraph_units(decode_text(data, name), markdown=kind == "md")
    return _checked(kind, raw_units, name)


def extract_paste(text: str) -> ExtractedText:
    """Pasted text, numbered by paragraph."""
    if len(text) > MAX_CHARS:
        raise ValidationError(
            f"The text has more than {MAX_CHARS:,} characters: paste it in parts.", field="text"
        )
    units = _paragraph_units(text, markdown=True)
    if not units:
        raise ValidationError("Paste some text first.", field="text")
    return _checked("paste", units, "The pasted text")


def _checked(kind: str, raw_units: list[dict], name: str) -> ExtractedText:
    """4. Refuse a document with no text; note the pages that have none."""
    units = tuple(
        Unit(int(u["number"]), u["text"], bool(u.get("heading"))) for u in raw_units if u["text"]
    )
    unit = "page" if kind == "pdf" else "paragraph"
    count = len(raw_units) if kind == "pdf" else len(units)
    blank = tuple(int(u["number"]) for u in raw_units if not u["text"]) if kind == "pdf" else ()
    if not units:
        if kind == "pdf" and any(u.get("images") for u in raw_units):
            raise ValidationError(
                "This looks like a scan; text recognition is not available. Upload a PDF with "
                "a text layer (one in which you can select the words).",
                field="file",
            )
        subject = name if name.startswith("The ") else f"“{name}”"
        raise ValidationError(f"{subject} has no text to read.", field="file")
    return ExtractedText(kind, unit, units, count, blank)


def decode_text(data: bytes, name: str) -> str:
    """UTF-8 text (or UTF-16/UTF-8 with a byte-order mark), or a ValidationError for `file`."""
    for bom, encoding in BYTE_ORDER_MARKS:
        if data.startswith(bom):
            try:
                return data.decode(encoding).lstrip("\ufeff")
            except UnicodeDecodeError:
                break
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(
            f"“{name}” is not UTF-8 text: save it as UTF-8 (or upload it as PDF or Word).",
            field="file",
        ) from None
    if "\x00" in text:
        raise ValidationError(
            f"“{name}” is named as a text file, but its content is not text.", field="file"
        )
    if len(text) > MAX_CHARS:
        raise ValidationError(
            f"“{name}” has more than {MAX_CHARS:,} characters of text: split it into parts.",
            field="file",
        )
    return text


def _paragraph_units(text: str, markdown: bool) -> list[dict]:
    """Paragraphs (blocks between blank lines), numbered; a Markdown heading line is a
    paragraph of its own."""
    from webapp.doctext.parse import clean

    blocks: list[tuple[str, bool]] = []
    for block in clean(text).split("\n\n"):
        lines: list[str] = []
        for line in block.split("\n"):
            if markdown and line.lstrip().startswith("#"):
                if lines:
                    blocks.append(("\n".join(lines), False))
                    lines = []
                blocks.append((line.strip(), True))
            else:
                lines.append(line)
        if lines:
            blocks.append(("\n".join(lines), False))
    kept = [(text.strip(), heading) for text, heading in blocks if text.strip()]
    return [{"number": i, "text": t, "heading": h} for i, (t, h) in enumerate(kept, start=1)]


# -- the parser process ---------------------------------------------------------------------

MESSAGES = {
    "corrupt": "“{name}” is damaged or incomplete, so Atelier could not read it. Save or "
    "download it again, then upload it.",
    "not_docx": "“{name}” is a ZIP archive but not a Word document. Upload the .docx itself.",
    "zip_bomb": "“{name}” is not a normal Word file: it unpacks to far more than a document "
    "does (a zip bomb?), so it was not opened.",
    "xml_entities": "“{name}” contains XML declarations that Word never writes (a DOCTYPE or "
    "ENTITY), so it was not opened. Save it again from Word and upload that.",
    "encryption_unsupported": "“{name}” is encrypted in a way Atelier cannot open. Save a copy "
    "without a password and upload that.",
    "too_long": f"“{{name}}” has more than {MAX_CHARS:,} characters of text: split it into parts.",
    "memory": "Reading “{name}” needed more memory than one document may use, so it was "
    "stopped. The file may be damaged or built to exhaust memory; save it again (print to "
    "PDF) and upload that.",
    "reader_missing": "Atelier's reader for this kind of file is not installed, so “{name}” "
    "could not be read. Tell your Atelier admin (the server log has the details).",
    "time": "Reading “{name}” took longer than {seconds:.0f} seconds, so it was stopped. The "
    "file may be damaged or built to stall readers; save it again (print to PDF) and upload "
    "that.",
}
PASSWORD_MESSAGES = {
    "password": "“{name}” is protected by a password. Enter its password and add it again.",
    "wrong_password": "That password does not open “{name}”. Check it and try again.",
}


def _parse_in_subprocess(
    kind: str, data: bytes, password: str, name: str, limits: Limits
) -> list[dict]:
    secret = password.encode("utf-8")
    command = [
        sys.executable,
        "-I",  # no environment variables, user site or script folder on the path
        str(PARSE_SCRIPT),
        kind,
        str(limits.memory_bytes),
        str(limits.cpu_seconds),
        str(MAX_CHARS),
    ]
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    with _parsers:
        try:
            done = subprocess.run(
                command,
                input=len(secret).to_bytes(4, "big") + secret + data,
                capture_output=True,
                timeout=limits.wall_seconds,
                env=environment,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise _refused("time", name, limits) from None
    try:
        answer = json.loads(done.stdout.decode("utf-8")) if done.stdout else None
    except (UnicodeDecodeError, ValueError):
        answer = None
    if answer is None:
        # Killed by its limits (SIGXCPU for CPU time; an allocation refused mid-import), or
        # crashed: no answer at all.
        code = "time" if done.returncode in (-24, -9) else "memory"
        raise _refused(code, name, limits)
    if not answer.get("ok"):
        log.info("%s was refused: %s %s", name, answer.get("code"), answer.get("detail", ""))
        raise _refused(answer.get("code", "corrupt"), name, limits)
    return answer["units"]


def _refused(code: str, name: str, limits: Limits) -> ValidationError:
    if code in PASSWORD_MESSAGES:
        return ValidationError(PASSWORD_MESSAGES[code].format(name=name), field="password")
    template = MESSAGES.get(code, MESSAGES["corrupt"])
    seconds = min(limits.cpu_seconds, limits.wall_seconds)
    return ValidationError(template.format(name=name, seconds=seconds), field="file")
