"""Brand kits on the Admin page: image styles and brand voices, created and edited by admins.

They stay what they were: TOML files in the library folder (`styles/`, `voices/`), the
seed that ships with Atelier and what an admin may still drop in by hand. The page writes
the same files, each checked first by the very parser every load uses (a file the app
writes is one it can read), written whole or not at all, and recorded in the audit log
with what it now says. A style's locked fields are what members cannot change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webapp.datafiles import remove_item, write_item
from webapp.errors import AtelierError, NotFound, ValidationError
from webapp.image_presets import ASPECTS, LOCKABLE, Style, _parse_style, load_styles
from webapp.registry import lora_names
from webapp.services.audit import AuditService
from webapp.settings import Settings
from webapp.text_tools import Voice, _parse_voice, clean_text, load_library
from webapp.users import User

MAX_NAME, MAX_TEMPLATE, MAX_EXAMPLE = 80, 2000, 2000
MAX_WORDS, MAX_EXAMPLES = 50, 10


@dataclass(frozen=True)
class Kits:
    styles: dict[str, Style]
    voices: dict[str, Voice]
    problems: list[str]  # files that could not be read, with why


class BrandKitService:
    def __init__(self, settings: Settings, audit: AuditService, client: str = "page"):
        self._settings = settings
        self._audit = audit
        self._client = client

    @property
    def _styles_dir(self) -> Path:
        return self._settings.library_dir / "styles"

    @property
    def _voices_dir(self) -> Path:
        return self._settings.library_dir / "voices"

    def kits(self, caller: User) -> Kits:
        self._admin(caller, "kits.list", "edit brand kits")
        styles, problems = load_styles(self._settings.library_dir)
        library = load_library(self._settings.library_dir)
        voice_problems = [p for p in library.problems if p.startswith("voices/")]
        return Kits(styles, dict(library.voices), problems + voice_problems)

    # -- image styles ----------------------------------------------------------------------

    def save_style(
        self,
        caller: User,
        style_id: str,
        *,
        name: str,
        prompt: str,
        negative_prompt: str = "",
        aspect: str = "square",
        lora: str = "",
        lora_weight: float = 1.0,
        locked: tuple[str, ...] = (),
    ) -> Style:
        """Create or replace a style."""
        self._admin(caller, "style.save", "edit image styles")
        if aspect not in ASPECTS:
            raise ValidationError(f"A shape is one of {', '.join(ASPECTS)}.", field="aspect")
        if lora and lora not in lora_names(self._settings.models_dir):
            raise ValidationError(f"No LoRA called {lora!r} is installed.", field="lora")
        if not -2.0 <= float(lora_weight) <= 2.0:
            raise ValidationError("A LoRA weight is between -2 and 2.", field="lora_weight")
        unknown = set(locked) - set(LOCKABLE)
        if unknown:
            raise ValidationError(f"Only {', '.join(LOCKABLE)} can be locked.", field="locked")
        data: dict[str, Any] = {
            "name": _line(name, "name", "Name"),
            "prompt": _text(prompt, "prompt", "Prompt template", MAX_TEMPLATE),
            "negative_prompt": _text(
                negative_prompt, "negative_prompt", "Negative prompt", MAX_TEMPLATE, False
            ),
            "aspect": aspect,
            "lora": lora,
            "lora_weight": float(lora_weight),
            "locked": [field for field in LOCKABLE if field in locked],
        }
        style = self._write(self._styles_dir, style_id, data, _parse_style)
        self._record(caller, "style.save", style_id, data)
        return style

    def delete_style(self, caller: User, style_id: str) -> None:
        self._admin(caller, "style.delete", "delete image styles")
        self._remove(caller, self._styles_dir, style_id, "style.delete", "style")

    # -- brand voices ----------------------------------------------------------------------

    def save_voice(
        self,
        caller: User,
        voice_id: str,
        *,
        name: str,
        description: str,
        use: list[str] | tuple[str, ...] = (),
        avoid: list[str] | tuple[str, ...] = (),
        examples: list[str] | tuple[str, ...] = (),
    ) -> Voice:
        """Create or replace a brand voice."""
        self._admin(caller, "voice.save", "edit brand voices")
        data: dict[str, Any] = {
            "name": _line(name, "name", "Name"),
            "description": _text(description, "description", "Description", MAX_TEMPLATE),
            "use": _words(use, "use", "Words to use"),
            "avoid": _words(avoid, "avoid", "Words to avoid"),
            "examples": _examples(examples),
        }
        voice = self._write(self._voices_dir, voice_id, data, _parse_voice)
        self._record(caller, "voice.save", voice_id, data)
        return voice

    def delete_voice(self, caller: User, voice_id: str) -> None:
        self._admin(caller, "voice.delete", "delete brand voices")
        self._remove(caller, self._voices_dir, voice_id, "voice.delete", "brand voice")

    # -- the steps' details ----------------------------------------------------------------

    def _admin(self, caller: User, kind: str, action: str) -> None:
        self._audit.require_admin(caller, kind, action, self._client)

    def _write(self, folder: Path, item_id: str, data: dict[str, Any], parse) -> Any:
        try:
            return write_item(folder, item_id, data, parse)
        except ValueError as error:
            field = "id" if "name of at most" in str(error) else None
            raise ValidationError(f"This cannot be saved: {error}.", field=field) from None
        except OSError as error:
            raise AtelierError(
                f"The library folder cannot be written ({error.strerror}): give the Atelier "
                "server's user write access to it, or edit the files by hand."
            ) from error

    def _remove(self, caller: User, folder: Path, item_id: str, kind: str, what: str) -> None:
        try:
            removed = remove_item(folder, item_id)
        except OSError as error:
            raise AtelierError(f"The {what} file cannot be deleted ({error.strerror}).") from error
        if not removed:
            raise NotFound(f"There is no {what} called {item_id!r}.")
        self._record(caller, kind, item_id, None)

    def _record(self, caller: User, kind: str, subject: str, data: dict[str, Any] | None) -> None:
        self._audit.record(
            caller, kind, "ok", subject=subject, parameters=data, client=self._client
        )


def _line(value: str, field: str, label: str) -> str:
    text = " ".join(clean_text(value, field, label).split())
    if len(text) > MAX_NAME:
        raise ValidationError(f"“{label}” has at most {MAX_NAME} characters.", field=field)
    return text


def _text(value: str, field: str, label: str, most: int, required: bool = True) -> str:
    text = clean_text(value, field, label, required=required)
    if len(text) > most:
        raise ValidationError(f"“{label}” has at most {most:,} characters.", field=field)
    return text


def _words(values: list[str] | tuple[str, ...], field: str, label: str) -> list[str]:
    words = [_line(v, field, label) for v in values if str(v).strip()]
    if len(words) > MAX_WORDS:
        raise ValidationError(f"“{label}” holds at most {MAX_WORDS} entries.", field=field)
    return words


def _examples(values: list[str] | tuple[str, ...]) -> list[str]:
    examples = [_text(v, "examples", "Examples", MAX_EXAMPLE) for v in values if str(v).strip()]
    if len(examples) > MAX_EXAMPLES:
        raise ValidationError(f"Give at most {MAX_EXAMPLES} examples.", field="examples")
    return examples
