"""Image Studio: presets and model-family defaults in, an engine job out, PNGs with their
recipe stored per person."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from webapp.engine import Engine, ImageRequest, ImageResult, Job, LoraWeight
from webapp.engine.requests import (
    MAX_IMAGES_PER_REQUEST,
    MIN_SIDE,
    check_mask_matches,
    random_seed,
)
from webapp.engine.tokens import WORDS_PER_TOKEN, DroppedWords
from webapp.errors import Forbidden, ValidationError
from webapp.image_presets import (
    ASPECTS,
    LCM_QUALITY,
    QUALITIES,
    Family,
    Style,
    check_blocklist,
    family_of,
    load_blocklist,
    load_styles,
    uses_lcm,
)
from webapp.image_store import StoredImage
from webapp.png_recipe import recipe_of
from webapp.registry import ModelEntry, lora_names
from webapp.services.image_saving import ImageSaver
from webapp.settings import Settings
from webapp.text_tools import clean_text
from webapp.uploads import decode_upload
from webapp.users import User

# Memory one image needs while it is made (activations and VAE decode), per pixel.
BYTES_PER_PIXEL = {"cpu": 4000, "cuda": 2000}
MAX_IMAGES = MAX_IMAGES_PER_REQUEST
LONG_PROMPT = "Only about the first {words} words are used; shorten it for best results."
PREVIEW_PIXELS = 768  # the longer side of the picture shown for painting a mask


@dataclass(frozen=True)
class ImageForm:
    """What a person fills in; None means "the preset or model default"."""

    prompt: str
    model: str | None = None
    style: str | None = None
    aspect: str | None = None
    num_images: int = 1
    quality: str = "Balanced"
    seed: int | None = None
    negative_prompt: str | None = None
    scheduler: str | None = None
    steps: int | None = None
    guidance: float | None = None
    width: int | None = None
    height: int | None = None
    loras: tuple[LoraWeight, ...] = ()
    init_image: bytes | None = None  # an uploaded file, as it came
    strength: float = 0.6
    mask: bytes | None = None


@dataclass(frozen=True)
class PicturePreview:
    """A picture to change, checked, as a small JPEG to show and paint on."""

    jpeg: bytes
    width: int  # the picture's own size: a painted mask is made at this size
    height: int


@dataclass
class ImageRun:
    job: Job
    request: ImageRequest
    style: str | None
    warnings: list[str] = field(default_factory=list)
    dropped_words: str = ""  # the end of a long prompt the model does not read
    stored: list[StoredImage] | None = None
    blacked_out: int = 0  # images the safety checker held back


class ImageService:
    def __init__(self, settings: Settings, engine: Engine, saver: ImageSaver, client: str = "page"):
        self._settings = settings
        self._engine = engine
        self._saver = saver
        self._client = client  # where the jobs come from, for the audit log
        self.store = saver.store

    # -- what there is --------------------------------------------------------------------

    def image_models(self, user: User) -> list[ModelEntry]:
        return self._engine.registry().of_kind("image")

    def styles(self, user: User) -> list[Style]:
        return list(load_styles(self._settings.library_dir)[0].values())

    def style_problems(self, user: User) -> list[str]:
        return load_styles(self._settings.library_dir)[1]

    def loras(self, user: User) -> list[str]:
        return lora_names(self._settings.models_dir)

    def family(self, model: str) -> Family:
        return family_of(self._image_model(model))

    def recent(self, user: User, limit: int = 24) -> list[StoredImage]:
        return self.store.recent(user, limit)

    def stored(self, path: Path, user: User) -> StoredImage:
        """One of this person's stored images (never another person's)."""
        stored = self.store.read(path) if self.store.owns(user, path) else None
        if stored is None:
            raise Forbidden("That image does not exist or is not yours.")
        return stored

    def preview(self, picture: bytes, user: User) -> PicturePreview:
        """Check an uploaded picture as soon as it is chosen, and make a preview of it."""
        image = decode_upload(picture, "init_image", "picture", self._upload_max_bytes)
        shown = image.convert("RGB")
        shown.thumbnail((PREVIEW_PIXELS, PREVIEW_PIXELS))
        buffer = io.BytesIO()
        shown.save(buffer, format="JPEG", quality=85)
        return PicturePreview(buffer.getvalue(), *image.size)

    def max_pixels(self) -> int:
        per_pixel = BYTES_PER_PIXEL.get(self._engine.device.type, 4000)
        return self._engine.memory_budget_bytes() // per_pixel

    # -- making images ---------------------------------------------------------------------

    def generate(self, form: ImageForm, user: User) -> ImageRun:
        # 1. Check the prompt and the model.
        prompt = clean_text(form.prompt, "prompt", "What should the picture show?")
        check_blocklist(prompt, load_blocklist(self._settings.library_dir))
        entry = self._image_model(form.model or self._default_model())
        family = family_of(entry)

        # 2. The style preset: its template around the prompt; its locked fields win.
        style = self._style(form.style)
        locked = style.locked if style else ()
        if style:
            prompt = style.apply(prompt)
        negative = self._negative_prompt(form, style, family)
        aspect = (
            style.aspect
            if "aspect" in locked
            else (form.aspect or (style.aspect if style else "square"))
        )
        if aspect not in ASPECTS:
            raise ValidationError(f"Aspect must be one of {', '.join(ASPECTS)}.", field="aspect")
        loras = self._loras(form.loras, style)

        # 3. Model-family defaults: size for the aspect, steps and guidance for the quality.
        if form.quality not in QUALITIES:
            raise ValidationError(
                f"Quality must be one of {', '.join(QUALITIES)}.", field="quality"
            )
        lcm = uses_lcm([lora.name for lora in loras])
        steps, guidance = (LCM_QUALITY if lcm else family.quality)[form.quality]
        scheduler = form.scheduler or ("lcm" if lcm else family.scheduler)
        width, height = family.sizes[aspect]

        # 4. A picture to change (image to image), and where to change it (inpainting).
        init_image = mask = None
        if form.init_image is not None:
            init_image, mask, width, height = self._pictures(form, family)
        width = width if form.width is None else form.width
        height = height if form.height is None else form.height

        # 5. Limits: a valid request, inside the memory, and words the model will read.
        seed = random_seed() if form.seed is None else form.seed
        request = ImageRequest(
            model=entry.name,
            prompt=prompt,
            negative_prompt=negative,
            width=width,
            height=height,
            steps=steps if form.steps is None else form.steps,
            guidance=guidance if form.guidance is None else form.guidance,
            seed=seed,
            num_images=form.num_images,
            scheduler=scheduler,
            init_image=init_image,
            strength=form.strength,
            mask=mask,
            loras=tuple(loras),
            style=style.id if style else None,
        )
        request.check()
        self._check_memory(request)
        dropped = self._engine.tokens.dropped_words(entry.name, prompt)

        # 6. Queue it.
        return self._run_of(self._engine.submit(request, user, client=self._client), dropped)

    def run_of(self, job_id: str, user: User) -> ImageRun | None:
        """One of the person's own image jobs, to follow again (a page reloaded while it
        runs, or its address shared back to them); None if forgotten or not theirs."""
        try:
            job = self._engine.get_job(job_id, user)
        except Forbidden:
            return None
        if job.kind != "image" or job.user.id != user.id:
            return None
        return self._run_of(job)

    def running(self, user: User) -> ImageRun | None:
        """The person's newest image job from a page that has not ended yet, if any."""
        for job in self._engine.jobs(user):  # newest first
            mine = job.user.id == user.id and job.client == "page"
            if mine and job.kind == "image" and not job.finished:
                return self._run_of(job)
        return None

    def form_of(self, recipe: dict, user: User | None = None) -> ImageForm:
        """The form that makes a picture again ("Use these settings"): the style it was made
        with (while that style exists) around the person's own words, and its settings."""
        request = recipe.get("request", {})
        prompt = request.get("prompt", "")
        style = load_styles(self._settings.library_dir)[0].get(recipe.get("style") or "")
        words = style.words_of(prompt) if style else None
        if words is None:
            style, words = None, prompt
        negative = request.get("negative_prompt")
        if negative is not None and style and negative == style.negative_prompt:
            negative = None  # the style gives it again
        return ImageForm(
            prompt=words,
            model=request.get("model"),
            style=style.id if style else None,
            num_images=int(request.get("num_images", 1)),
            seed=request.get("seed"),
            negative_prompt=negative,
            scheduler=request.get("scheduler"),
            steps=request.get("steps"),
            guidance=request.get("guidance"),
            width=request.get("width"),
            height=request.get("height"),
            loras=tuple(LoraWeight(**lora) for lora in request.get("loras", [])),
        )

    def form_of_run(self, run: ImageRun) -> ImageForm:
        """The form a running job was made with, to show it again after a reload."""
        recipe = recipe_of(run.request, run.request.seed)
        recipe["request"]["num_images"] = run.request.num_images
        return self.form_of(recipe)

    def finish(self, run: ImageRun, user: User, timeout: float | None = None) -> list[StoredImage]:
        """Wait for the job and for its images, stored with their recipes as it ended."""
        if run.job.user.id != user.id:
            raise Forbidden("That picture does not exist or is not yours.")
        if run.stored is None:
            run.stored = self._saver.saved(run.job, timeout)
            result: ImageResult = run.job.result(timeout)
            run.blacked_out = sum(result.flagged)
        return run.stored

    # -- the steps' details ------------------------------------------------------------------

    def _run_of(self, job: Job, dropped: DroppedWords | None | bool = True) -> ImageRun:
        """A run of `job`; `dropped`: the words its model does not read, if known."""
        request = job.request
        run = ImageRun(job, request, request.style)
        if dropped is True:
            dropped = self._engine.tokens.dropped_words(request.model, request.prompt)
        if dropped:
            words = max(10, round(dropped.limit * WORDS_PER_TOKEN, -1))
            run.warnings.append(LONG_PROMPT.format(words=int(words)))
            run.dropped_words = dropped.words
        return run

    @property
    def upload_max_mb(self) -> int:
        return self._settings.upload_max_mb

    @property
    def _upload_max_bytes(self) -> int:
        return self._settings.upload_max_mb * 2**20

    def _default_model(self) -> str:
        models = self._engine.registry().of_kind("image")
        if not models:
            raise ValidationError(
                "No image model is installed yet. An admin copies a Stable Diffusion model "
                "into the models dir (a diffusers folder or a .safetensors checkpoint) and "
                "presses Rescan on the Models page.",
                field="model",
            )
        return models[0].name

    def _image_model(self, name: str) -> ModelEntry:
        return self._engine.registry().get(name, kind="image")

    def _style(self, style_id: str | None) -> Style | None:
        if not style_id:
            return None
        styles = load_styles(self._settings.library_dir)[0]
        if style_id not in styles:
            raise ValidationError(
                f"Unknown style {style_id!r}. Styles: {', '.join(styles) or 'none'}.",
                field="style",
            )
        return styles[style_id]

    @staticmethod
    def _negative_prompt(form: ImageForm, style: Style | None, family: Family) -> str:
        if style and "negative_prompt" in style.locked:
            return style.negative_prompt
        if form.negative_prompt is not None:
            return clean_text(
                form.negative_prompt, "negative_prompt", "Negative prompt", required=False
            )
        if style and style.negative_prompt:
            return style.negative_prompt
        return family.negative_prompt

    def _loras(self, chosen: tuple[LoraWeight, ...], style: Style | None) -> list[LoraWeight]:
        loras = list(chosen)
        if style and style.lora and all(lora.name != style.lora for lora in loras):
            loras.append(LoraWeight(style.lora, style.lora_weight))
        return loras

    def _pictures(self, form: ImageForm, family: Family):
        max_bytes = self._upload_max_bytes
        picture = decode_upload(form.init_image, "init_image", "picture", max_bytes)
        mask = None
        if form.mask is not None:
            mask = decode_upload(form.mask, "mask", "mask", max_bytes)
            check_mask_matches(picture.size, mask.size)
        # Work near the model's native pixel count, keeping the picture's shape.
        native = family.sizes["square"][0] * family.sizes["square"][1]
        scale = math.sqrt(native / (picture.size[0] * picture.size[1]))
        scale = max(scale, MIN_SIDE / min(picture.size))  # no side below the smallest allowed
        width = int(picture.size[0] * scale) // 8 * 8
        height = int(picture.size[1] * scale) // 8 * 8
        picture = picture.convert("RGB").resize((width, height), Image.LANCZOS)
        if mask is not None:
            mask = mask.convert("L").resize((width, height), Image.NEAREST)
        return picture, mask, width, height

    def _check_memory(self, request: ImageRequest) -> None:
        allowed = self.max_pixels()
        if request.width * request.height * request.num_images > allowed:
            side = int(math.sqrt(allowed / request.num_images)) // 64 * 64
            raise ValidationError(
                f"{request.num_images} × {request.width}×{request.height} is more than this "
                f"server's memory allows: the largest is about {side}×{side} per image for "
                f"{request.num_images} image(s). Choose a smaller size or fewer images.",
                field="width",
            )
