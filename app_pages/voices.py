"""Brand voices: approved texts in, a tuned voice out. An editor adds a dataset, tunes a
voice with a preset and sees it evaluated; an admin approves it for Text tools."""

import streamlit as st

from webapp.errors import AtelierError
from webapp.safe_markdown import literal_markdown
from webapp.tuning.dataset import read_paste, read_upload
from webapp.tuning.presets import PRESETS
from webapp.ui.resources import get_services, get_settings
from webapp.ui.session import current_user, flash
from webapp.ui.voice_widgets import (
    REDRAW_SECONDS,
    dataset_summary,
    evaluation,
    run_title,
    training_progress,
)
from webapp.ui.widgets import show_error, show_flash

services = get_services()
voices = services.voices
user = current_user()
MAX_BYTES = get_settings().document_max_mb * 2**20

st.title("Brand voices")
st.caption(
    "Tune an open model on your team's approved texts, here on the company's own server. "
    "Your datasets and voices are yours alone until an admin approves a voice; then it "
    "appears in Text tools for everyone."
)
show_flash()

# -- 1. a dataset -----------------------------------------------------------------------------

datasets = voices.datasets(user)
adding = st.expander("Add approved texts", expanded=not datasets, icon=":material/upload_file:")
with adding, st.form("voice-dataset"):
    name = st.text_input("Dataset name", placeholder="Newsletter 2026")
    files = st.file_uploader(
        "Files: TXT, DOCX or Markdown (one text per paragraph), CSV (a “text” column, "
        'or “input” and “output”), JSONL ({"text": …} or {"input": …, "output": …})',
        accept_multiple_files=True,
        key="voice-files",
    )
    pasted = st.text_area("Or paste texts, a blank line between them", height=150)
    slot = st.empty()
    if st.form_submit_button("Check and add", type="primary"):
        try:
            examples = [] if not pasted.strip() else read_paste(pasted)
            for file in files or []:
                examples += read_upload(file.getvalue(), file.name, MAX_BYTES)
            if not examples:
                raise AtelierError("Upload a file or paste texts first.", field="file")
            added = voices.save_dataset(user, name, examples)
        except AtelierError as error:
            with slot.container():
                show_error(error, {"file": "Files", "text": "Texts", "examples": "Examples"})
        else:
            flash("success", f"Added “{added.name}”: {added.examples:,} examples.")
            st.rerun()

if not datasets:
    st.info("Add approved texts to begin.", icon=":material/record_voice_over:")
    st.stop()

for info in datasets[:3]:
    with st.container(border=True):
        st.markdown(f"**Dataset:** {literal_markdown(info.name)}")
        dataset_summary(info)

# -- 2. tuning --------------------------------------------------------------------------------

models = [m for m in services.text.text_models(user) if m.format == "transformers"]
tuning = st.expander("Tune a voice", expanded=True, icon=":material/tune:")
with tuning, st.form("voice-train"):
    voice = st.text_input("Voice name", placeholder="Friendly expert")
    by_id = {d.id: d for d in datasets}
    dataset_id = st.selectbox(
        "Dataset", list(by_id), format_func=lambda i: f"{by_id[i].name} ({by_id[i].examples})"
    )
    names = {m.name: m.display_name or m.name for m in models}
    base = st.selectbox("Base model", list(names), format_func=names.get)
    preset = st.radio(
        "Preset",
        list(PRESETS),
        index=1,
        horizontal=True,
        help="Light: a quick first voice. Standard: a good default. Thorough: for a few "
        "hundred examples or more.",
    )
    with st.expander("Advanced"):
        chosen = PRESETS[preset]
        rank = st.number_input("Rank", 1, 256, value=None, placeholder=str(chosen.rank))
        alpha = st.number_input("Alpha", 1, 512, value=None, placeholder=str(chosen.alpha))
        rate = st.number_input(
            "Learning rate", 1e-6, 1e-2, value=None, format="%.6f",
            placeholder=str(chosen.learning_rate),
        )  # fmt: skip
        epochs = st.number_input("Epochs", 1, 50, value=None, placeholder=str(chosen.epochs))
    slot = st.empty()
    if st.form_submit_button("Start tuning", type="primary"):
        try:
            if base is None:
                raise AtelierError("No text model that can be tuned is installed.", "model")
            run = voices.train(
                user, voice, dataset_id, base, preset,
                rank=rank, alpha=alpha, learning_rate=rate, epochs=epochs,
            )  # fmt: skip
        except AtelierError as error:
            with slot.container():
                show_error(error, {"name": "Voice name", "model": "Base model"})
        else:
            flash("success", f"Tuning “{run.voice}” version {run.version}.")
            st.rerun()

# -- 3. the person's voices -------------------------------------------------------------------


@st.fragment(run_every=REDRAW_SECONDS)
def running(run_id: int) -> None:
    job = voices.job(user, run_id)
    if job is None:
        st.caption("This run is not in the queue any more.")
        return
    if job.finished:
        st.rerun()  # the run ended: draw it as it is now kept
    training_progress(job)
    if st.button("Cancel", key=f"cancel-{run_id}"):
        job.cancel(user)
        st.rerun()


st.subheader("Your voices")
mine = voices.versions(user)
if not mine:
    st.caption("No voice yet.")
for run in mine:
    with st.container(border=True):
        st.markdown(f"**{run_title(run)}**")
        if run.status in ("queued", "running"):
            running(run.id)
            continue
        if run.error:
            st.text(run.error)
        if run.can_resume and st.button("Resume", key=f"resume-{run.id}"):
            try:
                voices.resume(user, run.id)
            except AtelierError as error:
                show_error(error)
            else:
                st.rerun()
        if run.status == "done":
            evaluation(run)
            if not run.approved:
                st.caption("Waiting for an admin's approval before the team can use it.")
            st.download_button(
                "Export adapter (.zip)",
                lambda run_id=run.id: voices.export(user, run_id)[1],  # made when clicked
                f"{run.voice}-v{run.version}.zip",
                "application/zip",
                key=f"export-{run.id}",
            )

# -- 4. approval (admins) ---------------------------------------------------------------------

if user.is_admin:
    st.subheader("Approval")
    everyone = voices.versions(user, everyone=True)
    waiting = [r for r in everyone if r.status == "done" and not r.approved]
    if not waiting:
        st.caption("No voice is waiting for approval.")
    for run in waiting:
        with st.container(border=True):
            st.markdown(f"**{run_title(run)}** · by {literal_markdown(run.owner_id)}")
            evaluation(run)
            if st.button("Approve for the team", key=f"approve-{run.id}", type="primary"):
                voices.approve(user, run.id)
                flash("success", f"“{run.voice}” version {run.version} is live in Text tools.")
                st.rerun()
    for run in [r for r in everyone if r.live]:
        cols = st.columns([4, 1])
        cols[0].markdown(f"Live: **{run.voice}** version {run.version}")
        if run.version > 1 and cols[1].button("Roll back", key=f"roll-{run.voice}"):
            try:
                voices.roll_back(user, run.voice)
            except AtelierError as error:
                show_error(error)
            else:
                st.rerun()
