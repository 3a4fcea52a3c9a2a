"""Version floors, checked at start by the CLI and the app (and shown by `atelier doctor`).

Each floor is the first release that closes a hole Atelier relies on being closed. Start-up
also stops when the environment turns off torch's safe loading of checkpoints.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata

from packaging.version import InvalidVersion, Version

from webapp.errors import SettingsError

UNSAFE_LOAD_ENV = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


@dataclass(frozen=True)
class Floor:
    package: str
    minimum: str
    why: str
    optional: bool = False  # checked only where it is installed


FLOORS = (
    Floor(
        "torch",
        "2.6",
        "torch.load with weights_only could still run code in a crafted checkpoint before "
        "2.6 (CVE-2025-32434)",
    ),
    Floor(
        "jinja2",
        "3.1.6",
        "the sandbox that runs chat templates and tool prompts could be escaped through the "
        "attr filter before 3.1.6 (CVE-2025-27516)",
    ),
    Floor(
        "pillow",
        "12.3",
        "uploads are decoded by Pillow; 12.2 closes a FITS decompression bomb "
        "(CVE-2026-40192) and a heap overflow through nested coordinates, and 12.3.0 is "
        "the release five later advisories (PYSEC-2026-2253 to 2257) name as fixed",
    ),
    Floor(
        "streamlit",
        "1.67",
        "the server is started through st.App with Atelier's security headers (1.67), "
        "which includes the security fixes of 1.54",
    ),
    Floor(
        "pypdf",
        "6.16.1",
        "crafted PDFs could loop for ever or run for hours in older releases (circular /Prev "
        "references, CVE-2026-27628; unterminated inline images, fixed in 6.14.2; outlines "
        "and XForms, fixed in 6.16.1)",
        optional=True,
    ),
)


@dataclass(frozen=True)
class VersionCheck:
    name: str
    ok: bool
    detail: str
    advice: str = ""


def _installed(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def version_checks(
    environ: Mapping[str, str] | None = None,
    installed: Callable[[str], str | None] = _installed,
) -> list[VersionCheck]:
    """One check per floor, then one for torch's safe loading."""
    environ = os.environ if environ is None else environ
    checks = [_floor_check(floor, installed(floor.package)) for floor in FLOORS]
    unsafe = environ.get(UNSAFE_LOAD_ENV)
    checks.append(
        VersionCheck(
            "torch safe loading",
            unsafe is None,
            f"{UNSAFE_LOAD_ENV}={unsafe!r} turns off torch's refusal to run code in checkpoints"
            if unsafe is not None
            else "on (weights only)",
            f"Unset {UNSAFE_LOAD_ENV} in the environment that starts Atelier.",
        )
    )
    return checks


def _floor_check(floor: Floor, version: str | None) -> VersionCheck:
    name = f"{floor.package} version"
    advice = f"Upgrade: pip install --upgrade '{floor.package}>={floor.minimum}'."
    if version is None:
        detail = f"{floor.package} is not installed" + (" (optional)" if floor.optional else "")
        return VersionCheck(name, floor.optional, detail, advice)
    try:
        # Release numbers only: a vendor's 2.6.0a0+build is a 2.6.
        ok = Version(version).release >= Version(floor.minimum).release
    except InvalidVersion:
        ok = False
    detail = f"{version} (at least {floor.minimum})"
    if not ok:
        detail = f"{floor.package} {version} is older than {floor.minimum}: {floor.why}"
    return VersionCheck(name, ok, detail, advice)


def require_safe_versions(
    environ: Mapping[str, str] | None = None,
    installed: Callable[[str], str | None] = _installed,
) -> None:
    """Raise SettingsError naming every failed check and what to do about it."""
    failed = [check for check in version_checks(environ, installed) if not check.ok]
    if failed:
        raise SettingsError(" ".join(f"{check.detail}. {check.advice}" for check in failed))
