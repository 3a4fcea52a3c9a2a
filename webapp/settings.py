"""One validated Settings object, from `atelier.toml` and `ATELIER_*` environment variables.

Environment variables win over the file. A bad value raises `SettingsError` naming the
variable (or file key) and what is allowed, so start-up stops with one clear message.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from webapp.errors import SettingsError

ENV_PREFIX = "ATELIER_"
CONFIG_ENV = "ATELIER_CONFIG"
DEFAULT_CONFIG_FILE = "atelier.toml"

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
DTYPES = ("auto", "float16", "bfloat16", "float32")


@dataclass(frozen=True)
class Settings:
    models_dir: Path = Path("models")
    data_dir: Path = Path("data")
    # Text tools, brand voices and other admin-editable data files.
    library_dir: Path = Path("library")
    device: str = "auto"
    dtype: str = "auto"
    # None means automatic: most of free VRAM on a GPU, half of RAM on the CPU.
    memory_budget_gb: float | None = None
    queue_max_per_user: int = 8
    queue_max_total: int = 64
    max_batch_images: int = 8
    # How long the first image job of a batch waits for others to join it (people pressing
    # Generate together share one batch); never longer for a lone request.
    batch_window_ms: int = 100
    upload_max_mb: int = 20
    # Opt-in speed-ups for diffusion UNets (measured by `atelier bench engine`).
    channels_last: bool = False
    compile_unet: bool = False
    # The NSFW safety checker for images (needs its weights in the models dir).
    safety_checker: bool = False
    # Pickle weights can run arbitrary code when loaded; only an admin may allow them.
    allow_pickle: bool = False
    # Single-user mode: the person at the browser is the admin unless this is turned off.
    local_user_is_admin: bool = True


def _path(value: Any) -> Path:
    if not isinstance(value, str | Path) or not str(value).strip():
        raise ValueError("a folder path")
    return Path(value).expanduser()


def _device(value: Any) -> str:
    text = str(value).strip().lower()
    if not DEVICE_PATTERN.match(text):
        raise ValueError("auto, cpu, cuda or cuda:N (N a GPU number, e.g. cuda:0)")
    return text


def _dtype(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in DTYPES:
        raise ValueError(", ".join(DTYPES))
    return text


def _budget(value: Any) -> float | None:
    if value is None or str(value).strip().lower() in ("", "auto"):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if not number > 0:
        raise ValueError("auto, or a number of gigabytes greater than 0 (e.g. 12 or 7.5)")
    return number


def _positive_int(value: Any) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number < 1 or isinstance(value, bool):
        raise ValueError("a whole number of 1 or more")
    return number


def _non_negative_int(value: Any) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = -1
    if number < 0 or isinstance(value, bool):
        raise ValueError("a whole number of 0 or more")
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("true or false")


PARSERS: dict[str, Callable[[Any], Any]] = {
    "models_dir": _path,
    "data_dir": _path,
    "library_dir": _path,
    "device": _device,
    "dtype": _dtype,
    "memory_budget_gb": _budget,
    "queue_max_per_user": _positive_int,
    "queue_max_total": _positive_int,
    "max_batch_images": _positive_int,
    "batch_window_ms": _non_negative_int,
    "upload_max_mb": _positive_int,
    "channels_last": _bool,
    "compile_unet": _bool,
    "safety_checker": _bool,
    "allow_pickle": _bool,
    "local_user_is_admin": _bool,
}


def env_name(key: str) -> str:
    return ENV_PREFIX + key.upper()


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(
            f"{path} is not valid TOML: {error}. Fix the file or remove it."
        ) from error
    unknown = sorted(set(data) - set(PARSERS))
    if unknown:
        raise SettingsError(
            f"{path} has unknown setting(s) {', '.join(unknown)}. "
            f"Known settings: {', '.join(PARSERS)}."
        )
    return data


def load_settings(
    environ: Mapping[str, str] | None = None, config_file: Path | None = None
) -> Settings:
    """Build Settings from the config file (if any) then the environment."""
    environ = os.environ if environ is None else environ
    if config_file is None:
        config_file = Path(environ.get(CONFIG_ENV, DEFAULT_CONFIG_FILE))
        if CONFIG_ENV in environ and not config_file.is_file():
            raise SettingsError(f"{CONFIG_ENV}={config_file} does not name a readable file.")
    from_file = _read_config_file(config_file) if config_file.is_file() else {}

    values: dict[str, Any] = {}
    for field in fields(Settings):
        key = field.name
        if env_name(key) in environ:
            source, raw = env_name(key), environ[env_name(key)]
        elif key in from_file:
            source, raw = f"{key} in {config_file}", from_file[key]
        else:
            continue
        try:
            values[key] = PARSERS[key](raw)
        except ValueError as error:
            raise SettingsError(
                f"{source}={raw!r} is not allowed: use {error}.", field=key
            ) from None
    settings = Settings(**values)
    if settings.queue_max_per_user > settings.queue_max_total:
        raise SettingsError(
            f"{env_name('queue_max_per_user')} ({settings.queue_max_per_user}) is larger than "
            f"{env_name('queue_max_total')} ({settings.queue_max_total}): lower the first "
            "or raise the second.",
            field="queue_max_per_user",
        )
    return settings
