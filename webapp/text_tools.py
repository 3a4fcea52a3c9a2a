"""Text tools and brand voices: data files an admin adds without code.

A tool's prompt is a Jinja2 template, rendered in a sandbox with limits on time and size
(`webapp.template_limits`) and the user's inputs passed as data: text a person types is
never itself rendered as a template.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, meta

from webapp.datafiles import ID_PATTERN, load_toml_folder, require
from webapp.engine import ChatMessage
from webapp.engine.requests import VoiceAdapter
from webapp.errors import ValidationError
from webapp.template_limits import LimitedSandbox

FIELD_TYPES = ("text", "long_text", "choice", "number")
MODES = ("single", "variants", "diff", "chat")
PRESETS = {
    "Precise": {"temperature": 0.2, "top_p": 0.9},
    "Balanced": {"temperature": 0.7, "top_p": 0.9},
    "Creative": {"temperature": 1.0, "top_p": 0.95},
}
MAX_INPUT_CHARS = 200_000
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Characters that show nothing: text made only of these (and spaces) is empty.
INVISIBLE = re.compile(r"[\s\u00ad\u034f\u115f\u1160\u180e\u200b-\u200f\u2060-\u2064\ufeff]")

_templates = LimitedSandbox(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False
)


@dataclass(frozen=True)
class ToolField:
    id: str
    label: str
    type: str = "text"
    help: str = ""
    placeholder: str = ""
    choices: tuple[str, ...] = ()
    default: Any = None
    min: int | None = None
    max: int | None = None
    required: bool = True


@dataclass(frozen=True)
class Tool:
    id: str
    name: str
    description: str
    icon: str
    mode: str
    system: str
    prompt: str
    fields: tuple[ToolField, ...]
    preset: str = "Balanced"
    max_new_tokens: int = 512
    takes_voice: bool = False
    voice_required: bool = False  # the tool is about the voice: one is always chosen
    preferred_model: str = ""

    def field(self, field_id: str) -> ToolField | None:
        return next((f for f in self.fields if f.id == field_id), None)


@dataclass(frozen=True)
class Voice:
    id: str
    name: str
    description: str
    use: tuple[str, ...] = ()
    avoid: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    # A tuned voice (approved by an admin): its adapter runs on `base_model`, and the prompt
    # carries no description of the voice: the adapter has learned it.
    adapter: VoiceAdapter | None = None
    base_model: str = ""


@dataclass(frozen=True)
class Library:
    tools: dict[str, Tool] = field(default_factory=dict)
    voices: dict[str, Voice] = field(default_factory=dict)
    problems: tuple[str, ...] = ()


# -- loading --------------------------------------------------------------------------------


def load_library(folder: Path) -> Library:
    """Every tool and voice file under `folder`; a broken file becomes a problem, not a crash."""
    problems: list[str] = []
    tools = load_toml_folder(folder / "tools", _parse_tool, problems)
    voices = load_toml_folder(folder / "voices", _parse_voice, problems)
    return Library(tools=tools, voices=voices, problems=tuple(problems))


def _parse_field(data: dict[str, Any]) -> ToolField:
    known = {f for f in ToolField.__dataclass_fields__}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"field has unknown keys {sorted(unknown)}")
    item = ToolField(**{**data, "choices": tuple(data.get("choices", ()))})
    if not ID_PATTERN.match(item.id):
        raise ValueError(f"field id {item.id!r} must be lower-case letters, digits, '-' or '_'")
    if item.type not in FIELD_TYPES:
        raise ValueError(f"field {item.id!r} has type {item.type!r}; use one of {FIELD_TYPES}")
    if item.type == "choice" and not item.choices:
        raise ValueError(f"choice field {item.id!r} needs 'choices'")
    return item


def _parse_tool(tool_id: str, data: dict[str, Any]) -> Tool:
    fields = tuple(_parse_field(f) for f in require(data, "fields", list))
    mode = data.get("mode", "single")
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {MODES}")
    preset = data.get("preset", "Balanced")
    if preset not in PRESETS:
        raise ValueError(f"preset {preset!r} is not one of {tuple(PRESETS)}")
    prompt = require(data, "prompt", str)
    try:
        used = meta.find_undeclared_variables(_templates.parse(prompt))
    except TemplateSyntaxError as error:
        raise ValueError(f"prompt template error on line {error.lineno}: {error.message}") from None
    missing = used - {f.id for f in fields}
    if missing:
        raise ValueError(f"the prompt uses {sorted(missing)}, which are not fields of the tool")
    return Tool(
        id=tool_id,
        name=require(data, "name", str),
        description=data.get("description", ""),
        icon=data.get("icon", "🛠️"),
        mode=mode,
        system=data.get("system", ""),
        prompt=prompt,
        fields=fields,
        preset=preset,
        max_new_tokens=int(data.get("max_new_tokens", 512)),
        takes_voice=bool(data.get("takes_voice", False)) or bool(data.get("voice_required", False)),
        voice_required=bool(data.get("voice_required", False)),
        preferred_model=data.get("preferred_model", ""),
    )


def _parse_voice(voice_id: str, data: dict[str, Any]) -> Voice:
    return Voice(
        id=voice_id,
        name=require(data, "name", str),
        description=require(data, "description", str),
        use=tuple(data.get("use", ())),
        avoid=tuple(data.get("avoid", ())),
        examples=tuple(data.get("examples", ())),
    )


# -- inputs and prompts ---------------------------------------------------------------------


def clean_text(value: Any, field_id: str, label: str, required: bool = True) -> str:
    """Plain text from a person: present, not binary, not absurdly long."""
    text = "" if value is None else str(value)
    text = text.replace("\r\n", "\n").strip()
    if required and not INVISIBLE.sub("", text):
        raise ValidationError(f"Fill in “{label}”.", field=field_id)
    if CONTROL_CHARACTERS.search(text):
        raise ValidationError(
            f"“{label}” contains control characters, as if a binary file was pasted. "
            "Paste plain text.",
            field=field_id,
        )
    if len(text) > MAX_INPUT_CHARS:
        raise ValidationError(
            f"“{label}” is {len(text):,} characters; the most is {MAX_INPUT_CHARS:,}.",
            field=field_id,
        )
    return text


def clean_inputs(tool: Tool, raw: dict[str, Any]) -> dict[str, Any]:
    """Check every field of the tool; returns the values to render the prompt with."""
    unknown = set(raw) - {f.id for f in tool.fields}
    if unknown:
        raise ValidationError(
            f"{tool.name} has no field(s) {', '.join(sorted(unknown))}; its fields are "
            f"{', '.join(f.id for f in tool.fields)}.",
            field=sorted(unknown)[0],
        )
    values: dict[str, Any] = {}
    for item in tool.fields:
        value = raw.get(item.id, item.default)
        if item.type == "choice":
            if value not in item.choices:
                raise ValidationError(
                    f"“{item.label}” must be one of: {', '.join(item.choices)}.", field=item.id
                )
        elif item.type == "number":
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise ValidationError(
                    f"“{item.label}” must be a whole number.", field=item.id
                ) from None
            if (item.min is not None and value < item.min) or (
                item.max is not None and value > item.max
            ):
                raise ValidationError(
                    f"“{item.label}” must be between {item.min} and {item.max}.", field=item.id
                )
        else:
            value = clean_text(value, item.id, item.label, item.required)
        values[item.id] = value
    return values


def render_prompt(tool: Tool, values: dict[str, Any]) -> str:
    """The tool's template with the values as data (never as template source)."""
    try:
        return _templates.render_limited(tool.prompt, values).strip()
    except TemplateError as error:  # the sandbox refuses unsafe or runaway templates
        raise ValidationError(
            f"The tool file for {tool.name!r} has a template Atelier will not run ({error}). "
            "Tell your Atelier admin.",
            field="tool",
        ) from None


def voice_instructions(voice: Voice) -> str:
    lines = [f"Write in the brand voice “{voice.name}”: {voice.description}"]
    if voice.use:
        lines.append("Words and phrases to use: " + ", ".join(voice.use) + ".")
    if voice.avoid:
        lines.append("Never use: " + ", ".join(voice.avoid) + ".")
    return "\n".join(lines)


def voice_examples(voice: Voice) -> list[ChatMessage]:
    """The voice's example texts as few-shot turns."""
    turns: list[ChatMessage] = []
    for example in voice.examples:
        turns.append(ChatMessage("user", f"Show me a short text in the {voice.name} voice."))
        turns.append(ChatMessage("assistant", example))
    return turns


def build_messages(
    tool: Tool,
    values: dict[str, Any],
    voice: Voice | None = None,
    history: tuple[ChatMessage, ...] = (),
) -> tuple[ChatMessage, ...]:
    """System prompt (with the voice), the voice's examples, any chat history, the request."""
    if voice is not None and voice.adapter is not None:
        voice = None  # a tuned voice is in the adapter, not in the prompt
    system = tool.system
    if voice is not None:
        system = f"{system}\n\n{voice_instructions(voice)}".strip()
    messages = [ChatMessage("system", system)] if system else []
    if voice is not None:
        messages.extend(voice_examples(voice))
    messages.extend(history)
    messages.append(ChatMessage("user", render_prompt(tool, values)))
    return tuple(messages)
