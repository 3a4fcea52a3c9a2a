"""Documents with known text on known pages, made offline: for the tests and the bench.

PDFs are written with fpdf2 (a dev extra), Word files with python-docx. Each page of a
sample contract carries a sentence that names its page, so a test can tell whether page
numbers survive extraction, chunking and citation.
"""

from __future__ import annotations

import io
import random

FILLER = [
    "The parties agree that the services are provided with reasonable skill and care.",
    "Each party keeps its own costs unless this agreement says otherwise.",
    "Notices are given in writing to the addresses stated above.",
    "The supplier keeps records of the work for the term of the agreement.",
    "Invoices are paid within thirty days of receipt by bank transfer.",
    "Nothing in this clause limits liability for fraud or for death caused by negligence.",
    "Confidential information is used only for the purpose of this agreement.",
    "A change to the scope of work is agreed in writing by both parties.",
]


def page_sentence(page: int) -> str:
    """The sentence only page `page` of a sample contract carries."""
    return f"Clause {page}: the supplier delivers batch number {page * 7} in week {page}."


def contract_pages(count: int, words_per_page: int = 120, seed: int = 0) -> list[str]:
    """`count` pages of a plausible contract, each with its own `page_sentence`."""
    chooser = random.Random(seed)
    pages = []
    for page in range(1, count + 1):
        sentences = [page_sentence(page)]
        while sum(len(s.split()) for s in sentences) < words_per_page:
            sentences.append(chooser.choice(FILLER))
        pages.append(" ".join(sentences))
    return pages


def make_pdf(pages: list[str], title: str = "") -> bytes:
    """A text PDF with one given text per page (Helvetica; Latin-1 characters)."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_font("Helvetica", size=10)
    if title:
        pdf.set_title(title)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 5, text)
    return bytes(pdf.output())


def make_scanned_pdf(pages: int = 2) -> bytes:
    """A PDF whose pages are pictures only, as a scanner makes them: no text layer."""
    from fpdf import FPDF
    from PIL import Image, ImageDraw

    pdf = FPDF(format="A4")
    for number in range(pages):
        picture = Image.new("L", (200, 280), 255)
        ImageDraw.Draw(picture).text((20, 20), f"Scanned page {number + 1}", fill=0)
        pdf.add_page()
        pdf.image(picture, x=10, y=10, w=190)
    return bytes(pdf.output())


def make_encrypted_pdf(pages: list[str], password: str) -> bytes:
    """A text PDF that opens only with `password` (AES-256)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(pages))))
    writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="AES-256")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def make_docx(paragraphs: list[str], headings: tuple[int, ...] = ()) -> bytes:
    """A Word file with these paragraphs; those at the indices in `headings` are headings."""
    from docx import Document

    document = Document()
    for index, text in enumerate(paragraphs):
        if index in headings:
            document.add_heading(text, level=1)
        else:
            document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()
