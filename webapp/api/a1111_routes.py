"""The AUTOMATIC1111-compatible API under /sdapi/v1, for the plugins and scripts that speak
it (the `webuiapi` client, Photoshop and Figma plugins): models, samplers, options, txt2img,
img2img, progress and interrupt, on the app's engine.

A request is read whole, as clients send it (every A1111 field, hires fix and scripts
included), and becomes the Image Studio form: the same seed and settings make the same
pixels as the page, and the PNGs carry the same recipe. A feature asked for that Atelier
does not have (hires fix, face restoration, tiling, scripts…) is refused by name rather
than ignored. Errors are A1111's `{"detail": "..."}`.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import threading
import time
from dataclasses import replace
from typing import Any

from PIL import ImageFilter, ImageOps
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from webapp.api.access import Handler, keyed_route, shared_services
from webapp.api.bodies import Fields, picture_body_limit, read_json
from webapp.api.config import ApiConfig
from webapp.api.job_waiting import until_finished
from webapp.api.refusals import Refusal
from webapp.engine import Job, JobStatus
from webapp.engine.jobs import JobCancelled
from webapp.errors import ValidationError
from webapp.png_recipe import SAMPLER_NAMES
from webapp.services.images import ImageForm, ImageRun, ImageService
from webapp.uploads import decode_upload
from webapp.users import User

# A1111's sampler names (and the schedulers that go with them) for Atelier's samplers.
SAMPLERS = {name: scheduler for scheduler, name in SAMPLER_NAMES.items()}
SAMPLER_ALIASES = {"DPM++ 2M": "dpmpp_2m_karras", "k_euler": "euler", "k_euler_a": "euler_a"}
SCHEDULERS = ("automatic", "karras")  # karras: part of "DPM++ 2M Karras"
# Fields whose only value Atelier can honour is "off" (null is always off): what each asks
# for, to name it when it is refused.
OFF_VALUES: dict[str, tuple[tuple[Any, ...], str]] = {
    "enable_hr": ((False,), "hires fix (enable_hr)"),
    "restore_faces": ((False,), "face restoration (restore_faces)"),
    "tiling": ((False,), "tiling"),
    "subseed_strength": ((0,), "variation seeds (subseed_strength)"),
    "seed_resize_from_w": ((0, -1), "seed resize (seed_resize_from_w)"),
    "seed_resize_from_h": ((0, -1), "seed resize (seed_resize_from_h)"),
    "s_churn": ((0,), "sampler noise settings (s_churn)"),
    "s_tmin": ((0,), "sampler noise settings (s_tmin)"),
    "s_tmax": ((0,), "sampler noise settings (s_tmax)"),
    "s_noise": ((1,), "sampler noise settings (s_noise)"),
    "script_name": (("",), "scripts (script_name)"),
    "refiner_checkpoint": (("",), "a refiner (refiner_checkpoint)"),
    "include_init_images": ((False,), "include_init_images"),
    "initial_noise_multiplier": ((1,), "initial_noise_multiplier"),
    "resize_mode": ((0,), "resize modes other than 0 (just resize)"),
    "inpainting_fill": ((0, 1), "inpainting fill 2 and 3 (latent noise, latent nothing)"),
}
OPTIONS = ("sd_model_checkpoint",)  # the one option a person sets (their current model)


def a1111_error(refusal: Refusal) -> JSONResponse:
    # No WWW-Authenticate on a 401: a browser would ask for the key and then send it with
    # every request any page makes to this server. A1111 clients send it unasked.
    return JSONResponse(
        {"detail": refusal.message}, status_code=refusal.status, headers=refusal.headers
    )


class Checkpoints:
    """Each person's current image model, as A1111 clients set it through the options (kept
    while the server runs; a request's override_settings wins)."""

    def __init__(self) -> None:
        self._chosen: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, user: User) -> str | None:
        with self._lock:
            return self._chosen.get(user.id)

    def set(self, user: User, model: str) -> None:
        with self._lock:
            self._chosen[user.id] = model


def a1111_routes(config: ApiConfig) -> list[Route]:
    checkpoints = Checkpoints()

    def route(path: str, handler: Handler, method: str) -> Route:
        return keyed_route(config, "/sdapi/v1" + path, handler, method, a1111_error)

    async def services():
        return await shared_services(config)

    # -- what there is ------------------------------------------------------------------------

    async def sd_models(request: Request, user: User) -> Response:
        entries = (await services()).api.images.image_models(user)
        return JSONResponse([_checkpoint(entry.name) for entry in entries])

    async def samplers(request: Request, user: User) -> Response:
        aliases = {name: [a for a, s in SAMPLER_ALIASES.items() if s == SAMPLERS[name]]
                   for name in SAMPLERS}  # fmt: skip
        return JSONResponse([{"name": n, "aliases": aliases[n], "options": {}} for n in SAMPLERS])

    async def schedulers(request: Request, user: User) -> Response:
        return JSONResponse([{"name": name, "label": name.title()} for name in SCHEDULERS])

    async def scripts(request: Request, user: User) -> Response:
        return JSONResponse({"txt2img": [], "img2img": []})

    async def get_options(request: Request, user: User) -> Response:
        model = checkpoints.get(user) or _default_model((await services()).api.images, user)
        return JSONResponse({"sd_model_checkpoint": model, "sd_checkpoint_hash": None,
                             "samples_format": "png"})  # fmt: skip

    async def set_options(request: Request, user: User) -> Response:
        fields = Fields(await read_json(request))
        unknown = sorted(set(fields.body) - set(OPTIONS))
        if unknown:
            raise ValidationError(
                f"Atelier keeps only sd_model_checkpoint for each person; it has no "
                f"{', '.join(unknown)} option.",
                field=unknown[0],
            )
        model = fields.text("sd_model_checkpoint")
        if model is not None:
            registry = (await services()).engine.registry()
            checkpoints.set(user, registry.get(model, kind="image").name)
        return JSONResponse(None)

    # -- making pictures ----------------------------------------------------------------------

    async def txt2img(request: Request, user: User) -> Response:
        fields = Fields(await read_json(request))
        image_service = (await services()).api.images
        form = _form(fields, checkpoints.get(user))
        return await _generate(request, user, image_service, form, fields)

    async def img2img(request: Request, user: User) -> Response:
        image_service = (await services()).api.images
        limit = picture_body_limit(image_service.upload_max_mb)
        fields = Fields(await read_json(request, limit))
        form = _form(fields, checkpoints.get(user))
        pictures = fields.items("init_images")
        if len(pictures) != 1:
            raise ValidationError("Send one picture in init_images.", field="init_images")
        picture = _base64(pictures[0], "init_images")
        mask = None
        if fields.present("mask"):
            mask = await run_in_threadpool(
                _mask,
                _base64(fields.body["mask"], "mask"),
                image_service.upload_max_mb,
                fields.integer("mask_blur", 0),
                fields.integer("inpainting_mask_invert", 0),
            )
        strength = fields.number("denoising_strength", 0.75)
        form = _with_picture(form, picture, mask, strength)
        return await _generate(request, user, image_service, form, fields)

    # -- the caller's own jobs ----------------------------------------------------------------

    async def progress(request: Request, user: User) -> Response:
        engine = (await services()).engine
        jobs = [j for j in engine.jobs(user) if j.user.id == user.id and j.kind == "image"]
        waiting = [job for job in jobs if not job.finished]
        job = waiting[-1] if waiting else (jobs[0] if jobs else None)  # the oldest running
        skip_image = request.query_params.get("skip_current_image", "").lower() == "true"
        return JSONResponse(await run_in_threadpool(_progress, job, len(waiting), skip_image))

    async def interrupt(request: Request, user: User) -> Response:
        engine = (await services()).engine
        theirs = [
            job
            for job in engine.jobs(user)
            if job.user.id == user.id and job.client == "api" and not job.finished
        ]
        for job in theirs:
            await run_in_threadpool(job.cancel, user)
        return JSONResponse(None)

    return [
        route("/sd-models", sd_models, "GET"),
        route("/samplers", samplers, "GET"),
        route("/schedulers", schedulers, "GET"),
        route("/scripts", scripts, "GET"),
        route("/options", get_options, "GET"),
        route("/options", set_options, "POST"),
        route("/txt2img", txt2img, "POST"),
        route("/img2img", img2img, "POST"),
        route("/progress", progress, "GET"),
        route("/interrupt", interrupt, "POST"),
    ]


# -- reading a request ---------------------------------------------------------------------------


def _form(fields: Fields, current_model: str | None) -> ImageForm:
    """The Image Studio form an A1111 request asks for (unset fields: the model's defaults,
    as on the page); anything it asks that Atelier cannot do is refused here."""
    _refuse_what_is_not_there(fields)
    seed = fields.integer("seed", -1)
    overrides = fields.mapping("override_settings")
    unknown = sorted(set(overrides) - set(OPTIONS))
    if unknown:
        raise ValidationError(
            f"override_settings may set only sd_model_checkpoint; Atelier has no "
            f"{', '.join(unknown)}.",
            field="override_settings",
        )
    model = overrides.get("sd_model_checkpoint") or current_model
    if model is not None and not isinstance(model, str):
        raise ValidationError("sd_model_checkpoint must be a model's name.", "override_settings")
    styles = fields.strings("styles", 1)
    return ImageForm(
        prompt=fields.text("prompt", ""),
        model=model,
        style=styles[0] if styles else None,
        num_images=fields.integer("batch_size", 1) * fields.integer("n_iter", 1),
        seed=None if seed == -1 else seed,
        negative_prompt=fields.text("negative_prompt", ""),
        scheduler=_scheduler(fields),
        steps=fields.integer("steps"),
        guidance=fields.number("cfg_scale"),
        width=fields.integer("width"),
        height=fields.integer("height"),
    )


def _refuse_what_is_not_there(fields: Fields) -> None:
    for name, (off, what) in OFF_VALUES.items():
        value = fields.body.get(name)
        if value is not None and value not in off:
            raise ValidationError(
                f"Atelier does not do {what}: send {name} as {json.dumps(off[0])} (or leave it "
                "out).",
                field=name,
            )
    for name, script in fields.mapping("alwayson_scripts").items():
        args = script.get("args") if isinstance(script, dict) else None
        if args not in ([], None) and not (isinstance(args, list) and args[0] is False):
            raise ValidationError(
                f"Atelier has no {name!r} script: leave it out of alwayson_scripts.",
                field="alwayson_scripts",
            )


def _scheduler(fields: Fields) -> str | None:
    name = fields.text("sampler_name") or fields.text("sampler_index")
    scheduler = (fields.text("scheduler", "automatic") or "automatic").lower()
    if scheduler not in SCHEDULERS:
        raise ValidationError(
            f"Scheduler {scheduler!r} is not available: use {' or '.join(SCHEDULERS)}.",
            field="scheduler",
        )
    if name is None:
        return None
    chosen = SAMPLERS.get(name) or SAMPLER_ALIASES.get(name)
    if chosen is None:
        raise ValidationError(
            f"Sampler {name!r} is not available. Samplers: {', '.join(SAMPLERS)}.",
            field="sampler_name",
        )
    return chosen


def _base64(value: Any, field: str) -> bytes:
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a base64-encoded picture.", field=field)
    data = value.partition(",")[2] if value.startswith("data:") else value
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(f"{field} is not valid base64.", field=field) from None


def _mask(data: bytes, upload_max_mb: int, blur: int, invert: int) -> bytes:
    """The mask as the page takes it (white = change): inverted and blurred as asked."""
    if not 0 <= blur <= 64:
        raise ValidationError("mask_blur must be from 0 to 64.", field="mask_blur")
    if invert not in (0, 1):
        raise ValidationError("inpainting_mask_invert must be 0 or 1.", "inpainting_mask_invert")
    mask = decode_upload(data, "mask", "mask", upload_max_mb * 2**20).convert("L")
    if invert:
        mask = ImageOps.invert(mask)
    if blur:
        mask = mask.filter(ImageFilter.GaussianBlur(blur))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()


def _with_picture(form: ImageForm, picture: bytes, mask: bytes | None, strength: float):
    return replace(form, init_image=picture, mask=mask, strength=strength)


# -- answering ------------------------------------------------------------------------------------


async def _generate(
    request: Request, user: User, images: ImageService, form: ImageForm, fields: Fields
) -> Response:
    run = await run_in_threadpool(images.generate, form, user)
    await until_finished(run.job, request, user)
    try:
        stored = await run_in_threadpool(images.finish, run, user, 60)
    except JobCancelled as cancelled:  # interrupted: A1111 answers with what it has
        info = {"interrupted": True, "message": cancelled.message}
        return JSONResponse({"images": [], "parameters": {}, "info": json.dumps(info)})
    pictures = await run_in_threadpool(lambda: [item.path.read_bytes() for item in stored])
    parameters = {k: v for k, v in fields.body.items() if k not in ("init_images", "mask")}
    return JSONResponse(
        {
            "images": [base64.b64encode(png).decode("ascii") for png in pictures],
            "parameters": parameters,
            "info": json.dumps(_info(run, [item.parameters for item in stored])),
        }
    )


def _info(run: ImageRun, infotexts: list[str]) -> dict[str, Any]:
    request = run.request
    seeds = run.job.result(0).seeds
    return {
        "prompt": request.prompt,
        "all_prompts": [request.prompt] * len(seeds),
        "negative_prompt": request.negative_prompt,
        "all_negative_prompts": [request.negative_prompt] * len(seeds),
        "seed": seeds[0],
        "all_seeds": seeds,
        "subseed": -1,
        "all_subseeds": [-1] * len(seeds),
        "width": request.width,
        "height": request.height,
        "sampler_name": SAMPLER_NAMES[request.scheduler],
        "cfg_scale": request.guidance,
        "steps": request.steps,
        "batch_size": request.num_images,
        "sd_model_name": request.model,
        "denoising_strength": request.strength if request.init_image is not None else None,
        "styles": [request.style] if request.style else [],
        "infotexts": infotexts,
        "job_timestamp": time.strftime("%Y%m%d%H%M%S", time.gmtime(run.job.submitted_at)),
    }


def _checkpoint(name: str) -> dict[str, Any]:
    return {"title": name, "model_name": name, "hash": None, "sha256": None,
            "filename": name, "config": None}  # fmt: skip


def _default_model(images: ImageService, user: User) -> str | None:
    models = images.image_models(user)
    return models[0].name if models else None


def _progress(job: Job | None, waiting: int, skip_image: bool) -> dict[str, Any]:
    """A1111's progress of the caller's job: its step, an estimate and the latest preview."""
    state = {
        "skipped": False, "interrupted": False, "job": "", "job_count": waiting,
        "job_timestamp": "0", "job_no": 0, "sampling_step": 0, "sampling_steps": 0,
    }  # fmt: skip
    if job is None or job.finished:
        if job is not None:
            state["interrupted"] = job.status == JobStatus.CANCELLED
        return {"progress": 0.0, "eta_relative": 0.0, "state": state, "current_image": None,
                "textinfo": None}  # fmt: skip
    state.update(
        job=job.id,
        job_timestamp=time.strftime("%Y%m%d%H%M%S", time.gmtime(job.submitted_at)),
        sampling_step=job.progress.step,
        sampling_steps=job.progress.total,
    )
    preview = None
    if job.preview is not None and not skip_image:
        buffer = io.BytesIO()
        job.preview.save(buffer, format="PNG")
        preview = base64.b64encode(buffer.getvalue()).decode("ascii")
    where = f"Waiting in line (place {job.position})" if job.position else "Making the picture"
    return {"progress": job.progress.fraction, "eta_relative": job.eta_seconds or 0.0,
            "state": state, "current_image": preview, "textinfo": where}  # fmt: skip
