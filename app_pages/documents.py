"""Documents: upload or paste a document, then summarise it, pull out its fields, ask it
questions or compare it with another version; every answer cites its pages."""

import streamlit as st

from webapp.doctext.tasks import FIELDS, LENGTHS
from webapp.errors import AtelierError
from webapp.ui.document_widgets import (
    answer_view,
    comparison_view,
    extraction_view,
    follow,
    summary_view,
)
from webapp.ui.resources import get_documents, get_services
from webapp.ui.session import current_user, flash
from webapp.ui.widgets import show_error, show_flash

documents = get_documents()
engine = get_services().engine
user = current_user()
state = st.session_state
state.setdefault("doc_selected", None)
state.setdefault("doc_runs", {})  # (document id, kind) -> DocumentRun


def count(number: int, unit: str) -> str:
    return f"{number:,} {unit}{'' if number == 1 else 's'}"


def refresh(job):
    return engine.get_job(job.id, user)


def cancel(job) -> None:
    if not job.finished:
        job.cancel(user)


def select(document_id) -> None:
    state["doc_selected"] = document_id


st.title("Documents")
st.caption(
    "Summaries, fields, questions and comparisons of your contracts and reports, read whole "
    "on this company's own server: nothing is sent anywhere. A document is yours alone "
    "unless you share it."
)
show_flash()

# -- adding a document ------------------------------------------------------------------------

mine = documents.documents(user)
with st.expander("Add a document", expanded=not mine, icon=":material/upload_file:"):
    upload_tab, paste_tab = st.tabs(["Upload a file", "Paste text"])
    with upload_tab, st.form("doc-upload"):
        file = st.file_uploader(
            "PDF, Word (.docx), text (.txt) or Markdown (.md)",
            type=["pdf", "docx", "txt", "md", "markdown"],
            key="doc-file",
        )
        password = st.text_input("Password (only for a protected PDF)", type="password")
        upload_slot = st.empty()
        if st.form_submit_button("Add", type="primary"):
            try:
                if file is None:
                    raise AtelierError("Choose a file first.", field="file")
                with st.spinner("Reading the document…"):
                    added = documents.upload(user, file.name, file.getvalue(), password)
            except AtelierError as error:
                with upload_slot.container():
                    show_error(error, {"file": "File", "password": "Password"})
            else:
                select(added.id)
                flash("success", f"Added “{added.title}”: {count(added.pages, added.unit)}.")
                st.rerun()
    with paste_tab, st.form("doc-paste"):
        title = st.text_input("Title")
        text = st.text_area("Text", height=200)
        paste_slot = st.empty()
        if st.form_submit_button("Add", type="primary"):
            try:
                added = documents.paste(user, title, text)
            except AtelierError as error:
                with paste_slot.container():
                    show_error(error, {"text": "Text"})
            else:
                select(added.id)
                flash("success", f"Added “{added.title}”.")
                st.rerun()

shared = [d for d in documents.documents(user, "shared") if d.owner_id != user.id]
available = {d.id: d for d in [*mine, *shared]}
if not available:
    st.info("Add a document to begin.", icon=":material/description:")
    st.stop()

# -- the chosen document --------------------------------------------------------------------


def describe(document_id) -> str:
    d = available[document_id]
    whose = "" if d.owner_id == user.id else f" · shared by {d.owner_name}"
    return f"{d.title} · {count(d.pages, d.unit)}{whose}"


ids = list(available)
chosen = state["doc_selected"] if state["doc_selected"] in available else ids[0]
document_id = st.selectbox(
    "Document", ids, index=ids.index(chosen), format_func=describe, on_change=None
)
state["doc_selected"] = document_id
document = available[document_id]
passages = documents.passages(user, document_id)

models = documents.text_models(user)
if not models:
    st.warning("No text model is installed. An admin can run `atelier prepare-default-model`.")
    st.stop()
default = documents.default_model()
model = st.selectbox("Model", models, index=models.index(default), key="doc-model")

if document.owner_id == user.id:
    share, remove = st.columns([3, 1])
    shared_now = share.toggle(
        "Shared with the team", value=document.shared, key=f"share-{document.id}"
    )
    if shared_now != document.shared:
        documents.share(user, document.id, shared_now)
        st.rerun()
    with remove.popover("Delete", icon=":material/delete:"):
        st.write("Delete the file, its text and its index? This cannot be undone.")
        if st.button("Delete for good", type="primary", key=f"delete-{document.id}"):
            documents.delete(user, document.id)
            state["doc_selected"] = None
            flash("success", f"Deleted “{document.title}”.")
            st.rerun()

st.info(
    "Answers are written by a model: check them against the cited pages before you rely on them.",
    icon=":material/fact_check:",
)

# -- the four actions ----------------------------------------------------------------------


def start(kind: str, slot, call) -> None:
    try:
        state["doc_runs"][(document.id, kind)] = call()
    except AtelierError as error:
        with slot.container():
            show_error(error)


def show(kind: str, render) -> None:
    run = state["doc_runs"].get((document.id, kind))
    if run is None:
        return
    if run.job is not None and not run.job.finished:
        st.button(
            "Cancel", icon=":material/stop:", key=f"cancel-{kind}", on_click=cancel, args=(run.job,)
        )
        follow(run.job, refresh)
        st.rerun()
    if run.job is not None and run.job.status == "cancelled":
        st.warning("Cancelled.")
        return
    if run.job is not None and run.job.status == "failed":
        st.error(run.job.error or "This failed.")
        return
    render(run, run.result())


# Keyed, so the chosen tab stays chosen when a finished job redraws the page.
summary_tab, fields_tab, ask_tab, compare_tab = st.tabs(
    ["Summary", "Fields", "Ask a question", "Compare versions"], key="doc-tab", on_change="rerun"
)
name = document.title.replace("/", "-")[:60] or "document"

with summary_tab:
    length = st.segmented_control("Length", list(LENGTHS), default="medium", key="doc-length")
    slot = st.empty()
    if st.button("Summarise the whole document", type="primary"):
        start(
            "summary",
            slot,
            lambda: documents.summarize(user, document.id, length or "medium", model),
        )
    show(
        "summary",
        lambda run, result: summary_view(result, document.unit, passages, f"{name}-summary", "sum"),
    )

with fields_tab:
    picked = st.multiselect("Fields", list(FIELDS), default=list(FIELDS), key="doc-fields")
    more = st.text_input("Other fields, separated by commas", key="doc-more-fields")
    slot = st.empty()
    if st.button("Find the fields", type="primary"):
        wanted = [*picked, *(f.strip() for f in more.split(",") if f.strip())]
        start("extraction", slot, lambda: documents.extract(user, document.id, wanted, model))
    show(
        "extraction",
        lambda run, result: extraction_view(
            result, document.unit, passages, f"{name}-fields", "ext"
        ),
    )

with ask_tab:
    question = st.text_input(
        "Question", key="doc-question", placeholder="When can either party end the agreement?"
    )
    slot = st.empty()
    if st.button("Ask", type="primary"):
        start("answer", slot, lambda: documents.ask(user, document.id, question, model))
    show("answer", lambda run, result: answer_view(result, document.unit, passages, "ans"))

with compare_tab:
    others = [i for i in ids if i != document.id]
    if not others:
        st.caption("Add the other version of this document to compare them.")
    else:
        old_id = st.selectbox("The earlier version", others, format_func=describe, key="doc-old")
        slot = st.empty()
        if st.button("Compare", type="primary"):
            start("comparison", slot, lambda: documents.compare(user, old_id, document.id, model))
        show(
            "comparison",
            lambda run, result: comparison_view(result, document.unit, passages, "cmp"),
        )
