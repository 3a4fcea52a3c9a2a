"""One validated Settings object, from `atelier.toml` and `ATELIER_*` environment variables.

Environment variables win over the file. A bad value raises `SettingsError` naming the
variable (or file key) and what is allowed, so start-up stops with one clear message.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from webapp.errors import SettingsError
from webapp.text_servers import TextServer, parse_text_servers

ENV_PREFIX = "ATELIER_"
CONFIG_ENV = "ATELIER_CONFIG"
DEFAULT_CONFIG_FILE = "atelier.toml"

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
DTYPES = ("auto", "float16", "bfloat16", "float32")
AUTH_MODES = ("none", "accounts", "oidc", "proxy")
AUDIT_PROMPTS = ("full", "hash")
# The URL schemes that reach a database Atelier supports, and the driver each one uses.
DATABASE_SCHEMES = {
    "sqlite": "sqlite",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}
HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
SECRET_SETTINGS = ("database_url", "hf_endpoint", "api_key")  # never repeated whole in a message
MIN_API_KEY_CHARS = 20


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
    # Documents (PDF, DOCX, TXT, Markdown): the largest upload, and how many days a document
    # is kept before it is deleted with its text and index (0 keeps documents until deleted).
    document_max_mb: int = 50
    document_retention_days: int = 0
    # Opt-in speed-ups for diffusion UNets (measured by `atelier bench engine`).
    channels_last: bool = False
    compile_unet: bool = False
    # The NSFW safety checker for images (needs its weights in the models dir).
    safety_checker: bool = False
    # Pickle weights can run arbitrary code when loaded; only an admin may allow them.
    allow_pickle: bool = False
    # Single-user mode: the person at the browser is the admin unless this is turned off.
    local_user_is_admin: bool = True
    # Storage: None is SQLite (WAL mode) at <data_dir>/atelier.db; or a postgresql:// URL.
    database_url: str | None = None
    # Sign-in: none (single-user mode), accounts (built-in), oidc (st.login) or proxy.
    auth_mode: str = "none"
    lockout_attempts: int = 5  # failed sign-ins in a row before a lockout
    lockout_minutes: int = 15
    session_hours: int = 12  # how long a sign-in lasts
    audit_prompts: str = "full"  # keep prompts in the audit log whole, or only their hash
    quota_jobs_per_hour: int = 0  # per person; 0 is no quota
    quota_images_per_day: int = 0
    # Proxy mode: the header naming the person, trusted only from these addresses/networks.
    proxy_header: str = "X-Forwarded-User"
    trusted_proxies: tuple[str, ...] = ()
    # OIDC (and proxy) mode: people signing in with these e-mails are admins.
    admin_emails: tuple[str, ...] = ()
    # Text models served by OpenAI-compatible servers (vLLM…); see webapp/text_servers.py.
    text_servers: tuple[TextServer, ...] = ()
    # Where admins install models from: the Hugging Face Hub, or a company mirror or proxy
    # of it (HF_ENDPOINT is honoured when this is not set).
    hf_endpoint: str = "https://huggingface.co"
    # Folders on the server that models may be imported from (nothing outside them).
    import_roots: tuple[Path, ...] = ()
    # Images on a Ray cluster (webapp/backends/ray_images.py): host:port of its head (the
    # GCS, e.g. 10.0.0.2:6379). Empty makes images on this server's own device.
    ray_address: str = ""
    ray_replicas: int = 1  # replicas of the image deployment, each one batch at a time
    ray_gpus_per_replica: float = 1.0  # 0 for CPU replicas (tests)
    ray_cpus_per_replica: float = 1.0
    # When the cluster cannot be reached: make images on this server's device instead of
    # failing them with a message.
    ray_fallback_local: bool = False
    # Several app replicas on one database: each writes its jobs to a shared board, so any
    # replica shows and cancels any job (webapp/services/job_board.py, docs/deploy.md).
    shared_queue: bool = False
    # Single-user mode: the one key the API accepts (the API is off without it). With
    # sign-in on, people make keys of their own instead.
    api_key: str | None = None

    @property
    def database(self) -> str:
        """The SQLAlchemy URL of the database, the embedded SQLite file by default."""
        return self.database_url or f"sqlite:///{self.data_dir / 'atelier.db'}"


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


def _count(value: Any) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = -1
    if number < 0 or isinstance(value, bool):
        raise ValueError("a whole number, 0 to turn it off")
    return number


def _choice(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise ValueError(", ".join(choices))
        return text

    return parse


def _database_url(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    if not text:
        return None
    scheme, separator, rest = text.partition("://")
    if not separator or scheme.lower() not in DATABASE_SCHEMES or not rest:
        raise ValueError(
            "a postgresql://user:password@host:port/database URL, or sqlite:///path/to/file.db "
            "(leave it unset for SQLite in the data dir)"
        )
    return f"{DATABASE_SCHEMES[scheme.lower()]}://{rest}"


def _ray_address(value: Any) -> str:
    text = str(value).strip()
    if not text:
        return ""
    host, separator, port = text.rpartition(":")
    if not separator or not host or "/" in text or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            "host:port of the Ray cluster's head (e.g. 10.0.0.2:6379), or empty for images "
            "on this server's device"
        )
    return text


def _api_key(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    if not text:
        return None
    if len(text) < MIN_API_KEY_CHARS or not text.isprintable() or " " in text:
        raise ValueError(
            f"a key of at least {MIN_API_KEY_CHARS} characters without spaces "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return text


def _resources(value: Any) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        number = -1.0
    if not number >= 0 or isinstance(value, bool):
        raise ValueError("a number of 0 or more (fractions share a device, e.g. 0.5)")
    return number


def _items(value: Any) -> list[str]:
    """A TOML list, or a comma-separated string (from the environment)."""
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def _networks(value: Any) -> tuple[str, ...]:
    networks = []
    for item in _items(value):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(
                f"a list of IP addresses or networks (e.g. 10.0.0.5, 10.1.0.0/16); "
                f"{item!r} is neither"
            ) from None
    return tuple(networks)


def _endpoint(value: Any) -> str:
    text = str(value).strip().rstrip("/")
    scheme, separator, rest = text.partition("://")
    host = rest.split("/", 1)[0]
    if scheme.lower() not in ("http", "https") or not separator or not host or "@" in host:
        raise ValueError(
            "the address of a Hugging Face Hub or of a mirror of it, e.g. "
            "https://huggingface.co or http://hf-mirror.intranet:8080 (no password in it)"
        )
    return text


def _folders(value: Any) -> tuple[Path, ...]:
    return tuple(_path(item) for item in _items(value))


def _header(value: Any) -> str:
    text = str(value).strip()
    if not HEADER_NAME.match(text):
        raise ValueError("an HTTP header name: letters, digits and '-' (e.g. X-Forwarded-User)")
    return text


def _emails(value: Any) -> tuple[str, ...]:
    emails = [item.lower() for item in _items(value)]
    for email in emails:
        if not EMAIL.match(email):
            raise ValueError(f"a list of e-mail addresses; {email!r} is not one")
    return tuple(emails)


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
    "document_max_mb": _positive_int,
    "document_retention_days": _count,
    "channels_last": _bool,
    "compile_unet": _bool,
    "safety_checker": _bool,
    "allow_pickle": _bool,
    "local_user_is_admin": _bool,
    "database_url": _database_url,
    "auth_mode": _choice(AUTH_MODES),
    "lockout_attempts": _positive_int,
    "lockout_minutes": _positive_int,
    "session_hours": _positive_int,
    "audit_prompts": _choice(AUDIT_PROMPTS),
    "quota_jobs_per_hour": _count,
    "quota_images_per_day": _count,
    "proxy_header": _header,
    "trusted_proxies": _networks,
    "admin_emails": _emails,
    "text_servers": parse_text_servers,
    "hf_endpoint": _endpoint,
    "import_roots": _folders,
    "ray_address": _ray_address,
    "ray_replicas": _positive_int,
    "ray_gpus_per_replica": _resources,
    "ray_cpus_per_replica": _resources,
    "ray_fallback_local": _bool,
    "shared_queue": _bool,
    "api_key": _api_key,
}
# Settings that another program's variable gives when Atelier's own is not set.
FALLBACK_ENV = {"hf_endpoint": "HF_ENDPOINT"}


def _shown(key: str, raw: Any) -> str:
    """A value as a message may repeat it: a database URL without its password, a key not
    at all."""
    if key == "api_key":
        return "'***'"
    if key in SECRET_SETTINGS:
        return repr(re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", str(raw)))
    return repr(raw)


def settings_in_effect(settings: Settings) -> list[tuple[str, str, str]]:
    """(environment variable, value, "default" or "set") for every setting, as an admin may
    read them: a database URL's password is masked."""
    defaults = Settings()
    rows = []
    for field in fields(Settings):
        value = getattr(settings, field.name)
        if isinstance(value, bool):
            shown = str(value).lower()
        elif isinstance(value, tuple):
            shown = ", ".join(str(item) for item in value) or "(none)"
        elif value is None:
            shown = "(automatic)" if field.name != "database_url" else "(SQLite in the data dir)"
        else:
            shown = (
                _shown(field.name, value).strip("'")
                if field.name in SECRET_SETTINGS
                else str(value)
            )
        source = "default" if value == getattr(defaults, field.name) else "set"
        rows.append((env_name(field.name), shown, source))
    return rows


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
        elif key in FALLBACK_ENV and FALLBACK_ENV[key] in environ:
            source, raw = FALLBACK_ENV[key], environ[FALLBACK_ENV[key]]
        else:
            continue
        try:
            values[key] = PARSERS[key](raw)
        except ValueError as error:
            raise SettingsError(
                f"{source}={_shown(key, raw)} is not allowed: use {error}.", field=key
            ) from None
    settings = Settings(**values)
    if settings.queue_max_per_user > settings.queue_max_total:
        raise SettingsError(
            f"{env_name('queue_max_per_user')} ({settings.queue_max_per_user}) is larger than "
            f"{env_name('queue_max_total')} ({settings.queue_max_total}): lower the first "
            "or raise the second.",
            field="queue_max_per_user",
        )
    if settings.auth_mode == "proxy" and not settings.trusted_proxies:
        raise SettingsError(
            f"{env_name('auth_mode')} is proxy but {env_name('trusted_proxies')} is empty: "
            "list the addresses of the reverse proxy that signs people in "
            "(e.g. 10.0.0.5), or nobody can sign in.",
            field="trusted_proxies",
        )
    return settings
