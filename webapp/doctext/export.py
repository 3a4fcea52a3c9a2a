"""Extracted fields as files people download: CSV and XLSX, a row per item with its page.

A value that a spreadsheet would read as a formula (=, +, -, @ first) is written with a
leading apostrophe, so text from a document can never run as a formula on a colleague's
machine.
"""

from __future__ import annotations

import csv
import io

from webapp.doctext.prompts import cite
from webapp.doctext.tasks import ExtractionResult

HEADERS = ("Field", "Value", "Where")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _safe(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_START) else value


def rows(result: ExtractionResult, unit: str) -> list[tuple[str, str, str]]:
    return [
        (item.field, _safe(item.value), cite(unit, item.units).strip("()")) for item in result.items
    ]


def to_csv(result: ExtractionResult, unit: str) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADERS)
    writer.writerows(rows(result, unit))
    return buffer.getvalue().encode("utf-8-sig")  # Excel reads UTF-8 with the mark


def to_xlsx(result: ExtractionResult, unit: str, title: str = "Extracted") -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = title[:31] or "Extracted"
    sheet.append(HEADERS)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows(result, unit):
        sheet.append(row)
        for cell in sheet[sheet.max_row]:
            cell.data_type = "s"  # text, never a formula
    sheet.column_dimensions["A"].width = 18
    sheet.column_dimensions["B"].width = 80
    sheet.column_dimensions["C"].width = 14
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
