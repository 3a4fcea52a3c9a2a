"""Image Studio: a short form with good defaults, everything else one "Advanced" away.

The job being made lives in the address (`?job=…`): a reload, or coming back to the page
while the person's job runs, follows that job again and then shows its pictures.
"""

import hashlib

import streamlit as st

from webapp.errors import AtelierError
from webapp.image_presets import ASPECTS, QUALITIES
from webapp.services.images import MAX_IMAGES, ImageForm, PicturePreview
from webapp.ui.image_widgets import (
    RECENT_IMAGES,
    fill_form,
    form_defaults,
    job_panel,
    lora_table,
    recent_grid,
    results_grid,
)
from webapp.ui.mask_painter import paint_mask
from webapp.ui.resources import get_services
from webapp.ui.scroll import scroll_into_view
from webapp.ui.session import current_user
from webapp.ui.widgets import (
    add_image_model_help,
    seed_from_text,
    set_url,
    show_error,
    url_value,
)

# What each field is called on this page, for the messages shown next to Generate.
FIELD_LABELS = {
    "prompt": "What should the picture show?",
    "style": "Style",
    "aspect": "Shape",
    "quality": "Quality",
    "num_images": "Images",
    "seed": "Seed",
    "model": "Model (under Advanced)",
    "negative_prompt": "Negative prompt (under Advanced)",
    "scheduler": "Sampler (under Advanced)",
    "steps": "Steps (under Advanced)",
    "guidance": "Guidance (under Advanced)",
    "width": "Width (under Advanced)",
    "height": "Height (under Advanced)",
    "loras": "LoRAs (under Advanced)",
    "init_image": "Picture to change (under “Start from a picture”)",
    "mask": "Mask (under “Start from a picture”)",
    "strength": "How much to change it",
}
MODE_WORDS = {
    "text-to-image": "",
    "image-to-image": " · your picture changed",
    "inpaint": " · the painted area changed",
}

services = get_services()
user = current_user()
state = st.session_state
state.setdefault("image_run", None)
state.setdefault("image_sent", None)
state.setdefault("recent_shown", RECENT_IMAGES)

st.title("Image Studio")
models = {entry.name: entry.label for entry in services.images.image_models(user)}
if not models:
    add_image_model_help(services.settings.models_dir, for_admin=user.is_admin)
    st.stop()
for problem in services.images.style_problems(user):
    st.warning(f"A style file could not be loaded: {problem}", icon=":material/build:")

styles = {style.id: style.name for style in services.images.styles(user)}
loras = services.images.loras(user)

# The job this page follows: the one in the address, else one of the person's still running.
run, fresh = state["image_run"], False
job_id = url_value("job")
if job_id and (run is None or run.job.id != job_id):
    run = state["image_run"] = services.images.run_of(job_id, user)
    fresh = run is not None
elif not job_id:
    running = None if run is not None and not run.job.finished else services.images.running(user)
    run = state["image_run"] = running or run
    fresh = running is not None
    if run is not None:
        set_url(job=run.job.id)
if run is not None and fresh and not run.job.finished and "img-prompt" not in state:
    fill_form(services.images.form_of_run(run))  # a reloaded page shows what was asked
form_defaults()
if state.get("img-model") not in models:
    state.pop("img-model", None)  # a recipe's model that is no longer installed


def cancel(job) -> None:
    job.cancel(user)


def remove_sent_picture() -> None:
    state["image_sent"] = None


def picture_preview(picture: bytes, picture_id: str, error_slot) -> PicturePreview | None:
    """The picture checked and shrunk to paint on (once per picture), or its error shown."""
    cached = state.get("picture_preview")
    if cached is None or cached[0] != picture_id:
        try:
            cached = state["picture_preview"] = (picture_id, services.images.preview(picture, user))
        except AtelierError as error:
            with error_slot.container():
                show_error(error, FIELD_LABELS)
            return None
    return cached[1]


def show_more_recent() -> None:
    state["recent_shown"] += RECENT_IMAGES


def reuse_seed(seed: int) -> None:
    state["img-seed"] = str(seed)


form_column, result_column = st.columns([2, 3], gap="large")
upload_limit = services.settings.upload_max_mb

with (
    form_column,
    st.expander(
        "Start from a picture (image to image, inpainting)",
        expanded=state["image_sent"] is not None,
        icon=":material/add_photo_alternate:",
    ),
):
    # Any file is taken, and checked here: a PDF or a text file gets Atelier's own words
    # next to the uploader (PNG, JPEG or WebP), not the browser's bare refusal.
    upload = st.file_uploader(
        "Picture to change (PNG, JPEG or WebP)", key="img-init", max_upload_size=upload_limit
    )
    picture = upload.getvalue() if upload is not None else state["image_sent"]
    if upload is None and picture is not None:
        st.caption("Sent from a result. Upload another picture to replace it.")
        st.button("Remove the sent picture", on_click=remove_sent_picture)
    picture_error = st.empty()
    painted = mask_upload = None
    picture_id = hashlib.sha256(picture).hexdigest()[:16] if picture is not None else ""
    preview = picture_preview(picture, picture_id, picture_error) if picture_id else None
    if preview is not None:
        st.slider("How much to change it", 0.05, 1.0, 0.6, 0.05, key="img-strength")
        st.caption(
            "Paint over the part to change, or upload a mask. With neither, the whole "
            "picture changes."
        )
        painted = paint_mask(preview, picture_id)
        mask_upload = st.file_uploader(
            "Mask: white where the picture should change",
            key="img-mask",
            max_upload_size=upload_limit,
        )
        if mask_upload is not None and painted is not None:
            st.caption("The uploaded mask is used. Remove it to use the painted area.")

with form_column, st.form("image-form"):
    prompt = st.text_area(
        "What should the picture show?",
        key="img-prompt",
        height=110,
        placeholder="a ceramic coffee mug on a wooden table, morning light",
    )
    style = st.selectbox(
        "Style",
        [None, *styles],
        key="img-style",
        format_func=lambda s: "No style" if s is None else styles.get(s, s),
    )
    aspect = st.segmented_control(
        "Shape", ASPECTS, default="square", key="img-aspect", format_func=str.capitalize
    )
    quality = st.segmented_control("Quality", QUALITIES, default="Balanced", key="img-quality")
    num_images = st.slider("Images", 1, MAX_IMAGES, key="img-n")
    seed_text = st.text_input("Seed (a number repeats a picture exactly)", key="img-seed")
    with st.expander("Advanced"):
        model = st.selectbox(
            "Model", list(models), key="img-model", format_func=lambda m: models.get(m, m)
        )
        family = services.images.family(model)
        if state.get("img-scheduler") not in (None, *family.schedulers):
            state["img-scheduler"] = None  # a recipe's sampler this model does not offer
        negative = st.text_area(
            "Negative prompt (what to avoid)",
            key="img-negative",
            placeholder=family.negative_prompt or "nothing",
        )
        scheduler = st.selectbox(
            "Sampler",
            [None, *family.schedulers],
            key="img-scheduler",
            format_func=lambda s: "Automatic" if s is None else s,
        )
        # One number a row: beside each other they cut their "automatic" hints short.
        steps = st.number_input(
            "Steps", 1, 150, value=None, key="img-steps", placeholder="automatic"
        )
        guidance = st.number_input(
            "Guidance", 0.0, 30.0, value=None, step=0.5, key="img-guidance", placeholder="automatic"
        )
        width = st.number_input(
            "Width", 64, 4096, value=None, step=8, key="img-width", placeholder="from the shape"
        )
        height = st.number_input(
            "Height", 64, 4096, value=None, step=8, key="img-height", placeholder="from the shape"
        )
        if loras:
            st.caption("LoRAs: add a row for each, with its weight (1 is full strength).")
            chosen_loras = lora_table(loras)
        else:
            if user.is_admin:
                st.caption("No LoRAs installed: add LoRA `.safetensors` files to `models/loras/`.")
            chosen_loras = []
    generate = st.form_submit_button("Generate", type="primary", icon=":material/brush:")

with form_column:
    refusal = st.empty()  # why Generate did not run, whichever field it concerns

if generate:
    try:
        form = ImageForm(
            prompt=prompt,
            model=model,
            style=style,
            aspect=aspect or "square",
            num_images=num_images,
            quality=quality or "Balanced",
            seed=seed_from_text(seed_text),
            negative_prompt=negative or None,
            scheduler=scheduler,
            steps=steps,
            guidance=guidance,
            width=width,
            height=height,
            loras=tuple(chosen_loras),
            init_image=picture,
            strength=state.get("img-strength", 0.6),
            mask=mask_upload.getvalue() if mask_upload is not None else painted,
        )
        run = state["image_run"] = services.images.generate(form, user)
        set_url(job=run.job.id)
    except AtelierError as error:
        with refusal.container():
            show_error(error, FIELD_LABELS)

if run is not None and not run.job.finished:
    with form_column:
        job_panel(run.job, cancel)

with result_column:
    if run is None:
        st.info(
            "Describe a picture and press **Generate**. Your images appear here.",
            icon=":material/image:",
        )
    elif not run.job.finished:
        st.info("Your pictures appear here when they are ready.", icon=":material/hourglass_top:")
    else:
        with st.container(key="img-result"):
            for warning in run.warnings:
                st.caption(f":material/content_cut: {warning}")
            if run.dropped_words:
                with st.expander("Words left out"):
                    st.text(run.dropped_words)  # the person's words, as plain text
            if run.job.status == "done":
                stored = services.images.finish(run, user)
                if run.blacked_out:
                    st.warning(
                        f"{run.blacked_out} image(s) were blacked out by the safety checker "
                        "because they may not be safe for work, and were not kept. Try another "
                        "prompt or seed.",
                        icon=":material/visibility_off:",
                    )
                made = MODE_WORDS[run.request.mode]
                seconds = run.job.result().seconds
                st.caption(f"{len(stored)} image(s) in {seconds:.1f} s{made}")
                st.button(
                    f"Reuse seed {run.request.seed}", on_click=reuse_seed, args=(run.request.seed,)
                )
                results_grid(stored, key=run.job.id)
            elif run.job.status == "cancelled":
                st.warning("Cancelled.")
            else:
                st.error(run.job.error or "Making the images failed.")
        scroll_into_view("img-result", token=run.job.id)

shown = state["recent_shown"]
recent = services.images.recent(user, limit=shown + 1)  # one more tells if there are more
if recent:
    st.subheader("Your recent images", divider="gray")
    recent_grid(recent[:shown])
    if len(recent) > shown:
        st.button("Show more", icon=":material/expand_more:", on_click=show_more_recent)
