"""Widgets of the Documents page: a document job's progress, and each result with citations
that open their passage. Model text goes through `model_text` (safe markdown); document
text is shown as plain text, never as markdown or HTML."""

from __future__ import annotations

import re
from collections.abc import Iterable

import streamlit as st

from webapp.doctext.chunks import Passage
from webapp.doctext.export import rows, to_csv, to_xlsx
from webapp.doctext.prompts import cite
from webapp.engine import Job
from webapp.job_words import progress_text, waiting_text
from webapp.ui.text_widgets import downloads, model_text

CHECK_NOTE = (
    "Written by a model from the document's text: check each point against the cited pages "
    "before you rely on it."
)


def follow(job: Job, refresh) -> None:
    """A running document job, drawn again as it moves: its place in line or its stage, a
    progress bar, and the answer as it is written. `refresh(job)` gives the estimates."""
    status, text = st.empty(), st.empty()
    shown = None
    while True:
        job = refresh(job)
        with status.container():
            if job.status == "queued":
                st.caption(waiting_text(job))
            else:
                st.progress(job.progress.fraction, progress_text(job))
        if job.text != shown:
            with text.container():
                model_text(job.text)
            shown = job.text
        if job.finished:
            return
        job.wait_for_update(0.25)


def by_unit(passages: Iterable[Passage]) -> dict[int, list[Passage]]:
    found: dict[int, list[Passage]] = {}
    for passage in passages:
        for unit in range(passage.unit_start, passage.unit_end + 1):
            found.setdefault(unit, []).append(passage)
    return found


def citations(units: Iterable[int], unit: str, passages: dict[int, list[Passage]], key: str):
    """A button per cited page; each opens the passages on that page."""
    units = list(units)
    if not units:
        st.caption(f"No {unit} given for this: look for it in the document.")
        return
    with st.container(horizontal=True):
        for number in units:
            with st.popover(cite(unit, [number]).strip("()"), key=f"{key}-{number}"):
                st.caption(f"{unit.capitalize()} {number}, as the document has it:")
                for passage in passages.get(number, []):
                    st.text(passage.text)


def coverage(result) -> None:
    message = result.coverage.message
    (st.success if result.coverage.complete else st.warning)(message, icon=":material/menu_book:")


def summary_view(result, unit: str, passages: list[Passage], name: str, key: str) -> None:
    coverage(result)
    found = by_unit(passages)
    if not result.points:
        st.warning("The model wrote no summary points. Try again, or choose another model.")
    for number, point in enumerate(result.points, start=1):
        model_text(f"{number}. {point.text}")
        citations(point.units, unit, found, f"{key}-{number}")
    st.caption(CHECK_NOTE)
    text = "\n".join(f"- {p.text} {cite(unit, p.units)}".rstrip() for p in result.points)
    downloads(f"{text}\n\n{result.coverage.message}\n", name, f"Summary of {name}", key)


def extraction_view(result, unit: str, passages: list[Passage], name: str, key: str) -> None:
    coverage(result)
    if not result.items:
        st.info(f"None of these was found: {', '.join(result.fields)}.")
        return
    table = rows(result, unit)
    st.dataframe(
        [{"Field": f, "Value": v, "Where": w} for f, v, w in table],
        hide_index=True,
    )
    st.caption(CHECK_NOTE)
    left, right = st.columns(2)
    left.download_button(
        "Download .csv", to_csv(result, unit), f"{name}.csv", "text/csv", key=f"{key}-csv"
    )
    right.download_button(
        "Download .xlsx",
        to_xlsx(result, unit),
        f"{name}.xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        key=f"{key}-xlsx",
    )
    labels = [f"{i.field}: {i.value[:60]} {cite(unit, i.units)}" for i in result.items]
    chosen = st.selectbox(
        "Open the passage of", range(len(labels)), format_func=labels.__getitem__, key=f"{key}-open"
    )
    item = result.items[chosen]
    found = by_unit(passages)
    held = [p for p in passages if p.position == item.passage] or [
        p for u in item.units for p in found.get(u, [])
    ]
    for passage in held:
        st.text(passage.text)


def answer_view(result, unit: str, passages: list[Passage], key: str) -> None:
    if not result.found:
        st.info(result.answer, icon=":material/search_off:")
        return
    model_text(re.sub(r"\n{3,}", "\n\n", result.answer))
    citations([c.unit for c in result.citations], unit, by_unit(passages), key)
    st.caption(CHECK_NOTE)
    given = [p for p in passages if p.position in set(result.sources)]
    with st.expander(f"The passages the answer was written from ({len(given)})"):
        for passage in given:
            st.caption(cite(unit, range(passage.unit_start, passage.unit_end + 1)).strip("()"))
            st.text(passage.text)


def comparison_view(result, unit: str, passages: list[Passage], key: str) -> None:
    if not result.changes:
        st.success("The two versions have the same text.", icon=":material/done_all:")
        return
    st.dataframe(
        [
            {
                "Section": change.title,
                "Change": change.kind,
                "Old": cite(unit, change.old_units).strip("()") or "—",
                "New": cite(unit, change.new_units).strip("()") or "—",
            }
            for change in result.changes
        ],
        hide_index=True,
    )
    for change in result.changes:
        if change.words:
            with st.expander(f"Words changed in “{change.title}”"):
                st.dataframe([{"Before": b, "After": a} for b, a in change.words], hide_index=True)
    st.subheader("What changed, in short")
    found = by_unit(passages)
    for number, point in enumerate(result.points, start=1):
        model_text(f"{number}. {point.text}")
        citations(point.units, unit, found, f"{key}-{number}")
    st.caption(CHECK_NOTE + " Pages are the new version's.")
