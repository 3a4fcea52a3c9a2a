"""Stable Diffusion pipelines from diffusers folders and single-file checkpoints."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoPipelineForImage2Image,
    AutoPipelineForInpainting,
    AutoPipelineForText2Image,
    DDIMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
)

from webapp.errors import ModelLoadError
from webapp.registry import ModelEntry

# diffusers logs the part of a long prompt that CLIP does not read: a person's words, up to
# thousands of them, in the server log (where the audit setting may keep only a hash).
CLIP_CUT = "The following part of your input was truncated because CLIP"
CLIP_CUT_LOGGED = (
    "A prompt was longer than the text encoder reads; the rest was left out "
    "(the page tells the person which words)."
)


class NoPromptWords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith(CLIP_CUT):
            record.msg, record.args = CLIP_CUT_LOGGED, None
        return True


def keep_prompt_words_out_of_the_log() -> None:
    """On the handlers of diffusers' own logger, where every diffusers record goes (it does
    not pass them on to the root logger)."""
    for handler in logging.getLogger("diffusers").handlers:
        if not any(isinstance(f, NoPromptWords) for f in handler.filters):
            handler.addFilter(NoPromptWords())


keep_prompt_words_out_of_the_log()

SINGLE_FILE_PIPELINES = {
    "sd15": StableDiffusionPipeline,
    "sd2": StableDiffusionPipeline,
    "sd-turbo": StableDiffusionPipeline,
    "sdxl": StableDiffusionXLPipeline,
    "sdxl-turbo": StableDiffusionXLPipeline,
}


def load_pipeline(
    entry: ModelEntry,
    device: torch.device,
    dtype: torch.dtype,
    allow_pickle: bool = False,
    config_folder: Path | None = None,
    channels_last: bool = False,
    compile_unet: bool = False,
) -> Any:
    if entry.format == "single-file":
        pipe = _load_single_file(entry, dtype, config_folder)
    else:
        pipe = DiffusionPipeline.from_pretrained(
            str(entry.path),
            dtype=dtype,
            local_files_only=True,
            use_safetensors=None if allow_pickle else True,
        )
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    apply_speedups(pipe, channels_last, compile_unet)
    return pipe


def apply_speedups(pipe: Any, channels_last: bool, compile_unet: bool) -> None:
    """Opt-in speed-ups: channels-last memory layout, and regional torch.compile of the UNet
    (only its repeated transformer blocks, so the warm-up stays short)."""
    denoiser = getattr(pipe, "unet", None)
    if denoiser is None:
        return
    if channels_last:
        denoiser.to(memory_format=torch.channels_last)
    if compile_unet:
        denoiser.compile_repeated_blocks(fullgraph=True)


def _load_single_file(entry: ModelEntry, dtype: torch.dtype, config_folder: Path | None) -> Any:
    """Offline single-file loading borrows the configs of an installed folder of its family."""
    pipeline_class = SINGLE_FILE_PIPELINES.get(entry.family)
    if pipeline_class is None:
        raise ModelLoadError(f"{entry.name}: unknown checkpoint family {entry.family!r}.")
    if config_folder is None:
        raise ModelLoadError(
            f"{entry.name} is a single-file {entry.family} checkpoint. Loading it offline needs "
            f"the configuration of a diffusers folder of the same family ({entry.family}) in the "
            "models dir: copy one there (its weights are not used)."
        )
    return pipeline_class.from_single_file(
        str(entry.path), config=str(config_folder), dtype=dtype, local_files_only=True
    )


# -- generation -------------------------------------------------------------------------

SCHEDULER_CLASSES = {
    "euler": (EulerDiscreteScheduler, {}),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "dpmpp_2m_karras": (DPMSolverMultistepScheduler, {"use_karras_sigmas": True}),
    "ddim": (DDIMScheduler, {}),
    "lcm": (LCMScheduler, {}),
}

# Approximate latent -> RGB projections, for cheap previews without the VAE.
LATENT_RGB_SD = torch.tensor(
    [
        [0.3512, 0.2297, 0.3227],
        [0.3250, 0.4974, 0.2350],
        [-0.2829, 0.1762, 0.2721],
        [-0.2120, -0.2616, -0.7177],
    ]
)
LATENT_RGB_SDXL = torch.tensor(
    [
        [0.3651, 0.4232, 0.4341],
        [-0.2533, -0.0042, 0.1068],
        [0.1076, 0.1111, -0.0362],
        [-0.3165, -0.2492, -0.2188],
    ]
)


@dataclass(frozen=True)
class ImageRow:
    """One image to make: the prompt pair, its own seed, and an optional picture and mask."""

    prompt: str
    negative_prompt: str
    seed: int
    init_image: Any = None
    mask: Any = None


@dataclass(frozen=True)
class BatchSettings:
    """What all images of one pipeline call share."""

    mode: str  # text-to-image | image-to-image | inpaint
    width: int
    height: int
    steps: int
    guidance: float
    scheduler: str
    strength: float


StepCallback = Callable[[int, torch.Tensor], bool]


def generate_images(
    pipe: Any, rows: list[ImageRow], settings: BatchSettings, on_step: StepCallback
) -> list[Any]:
    """Run one pipeline call for `rows`; `on_step(step, latents)` returns True to stop."""
    # 1. A pipeline for this mode and scheduler, sharing the loaded components.
    call_pipe = _pipeline_for(pipe, settings)
    # 2. One generator per image, so each image is the one it would be alone.
    device = call_pipe.device
    generators = [torch.Generator(device).manual_seed(row.seed) for row in rows]

    # 3. A per-step callback for progress, previews and cancel.
    def callback(running_pipe, step, timestep, tensors):
        if on_step(step + 1, tensors["latents"]):
            running_pipe._interrupt = True
        return tensors

    call_pipe.set_progress_bar_config(disable=True)

    # 4. Denoise and decode.
    arguments = dict(
        prompt=[row.prompt for row in rows],
        negative_prompt=[row.negative_prompt for row in rows],
        num_inference_steps=settings.steps,
        guidance_scale=settings.guidance,
        generator=generators,
        callback_on_step_end=callback,
        callback_on_step_end_tensor_inputs=["latents"],
        output_type="pil",
    )
    if settings.mode == "text-to-image":
        arguments.update(width=settings.width, height=settings.height)
    else:
        arguments.update(image=[row.init_image for row in rows], strength=settings.strength)
    if settings.mode == "inpaint":
        arguments.update(
            mask_image=[row.mask for row in rows], width=settings.width, height=settings.height
        )
    with torch.inference_mode():
        images = list(call_pipe(**arguments).images)
    # 5. Inpainting: outside the mask, the person's own pixels, exactly.
    if settings.mode == "inpaint":
        overlay = call_pipe.image_processor.apply_overlay
        images = [
            overlay(row.mask, row.init_image, image)
            for row, image in zip(rows, images, strict=True)
        ]
    return images


@contextmanager
def loras_applied(pipe: Any, loras: list[tuple[str, Path, float]]) -> Iterator[None]:
    """LoRA adapters (name, file, weight) active on the pipeline for the block only."""
    if not loras:
        yield
        return
    names = [name for name, _, _ in loras]
    try:
        for name, path, _ in loras:
            pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=name)
        pipe.set_adapters(names, adapter_weights=[weight for _, _, weight in loras])
        yield
    finally:
        pipe.delete_adapters(names)


def _pipeline_for(pipe: Any, settings: BatchSettings) -> Any:
    scheduler_class, options = SCHEDULER_CLASSES[settings.scheduler]
    scheduler = scheduler_class.from_config(pipe.scheduler.config, **options)
    if settings.mode == "image-to-image":
        return AutoPipelineForImage2Image.from_pipe(pipe, scheduler=scheduler)
    if settings.mode == "inpaint":
        return AutoPipelineForInpainting.from_pipe(pipe, scheduler=scheduler)
    return AutoPipelineForText2Image.from_pipe(pipe, scheduler=scheduler)


def latent_preview(latents: torch.Tensor, family: str) -> list[Any]:
    """A small RGB picture per latent, by a fixed linear projection (no model involved)."""
    from PIL import Image

    factors = LATENT_RGB_SDXL if family.startswith("sdxl") else LATENT_RGB_SD
    rgb = torch.einsum("bchw,cr->bhwr", latents.float().cpu(), factors)
    pixels = ((rgb + 1) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
    return [Image.fromarray(frame) for frame in pixels]


# -- the NSFW safety checker -----------------------------------------------------------------


@dataclass
class SafetyChecker:
    model: Any
    processor: Any

    @torch.inference_mode()
    def flags(self, images: list[Any]) -> list[bool]:
        """True for each image the checker finds unsafe."""
        import numpy as np

        pixels = self.processor(images, return_tensors="pt").pixel_values
        pixels = pixels.to(self.model.device, self.model.dtype)
        _, flagged = self.model(clip_input=pixels, images=np.zeros((len(images), 1, 1, 3)))
        return [bool(flag) for flag in flagged]


def load_safety_checker(entry: ModelEntry, device: torch.device, dtype: torch.dtype) -> Any:
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPImageProcessor

    model = StableDiffusionSafetyChecker.from_pretrained(
        str(entry.path), dtype=dtype, local_files_only=True, use_safetensors=True
    )
    processor = CLIPImageProcessor.from_pretrained(str(entry.path), local_files_only=True)
    return SafetyChecker(model.to(device).eval(), processor)
