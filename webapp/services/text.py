"""Text tools, brand voices and chat: validate, build the prompt, guard the context, submit."""

from __future__ import annotations

from dataclasses import dataclass, replace

from webapp.embedded import DEFAULT_TEXT_MODEL
from webapp.engine import ChatMessage, Engine, Job, TextRequest
from webapp.engine.requests import random_seed
from webapp.errors import ValidationError
from webapp.registry import ModelEntry
from webapp.services.text_saving import TextKeeper, asked_text
from webapp.settings import Settings
from webapp.text_tools import (
    PRESETS,
    Library,
    Tool,
    Voice,
    build_messages,
    clean_inputs,
    clean_text,
    load_library,
)
from webapp.users import User

CHAT_TOOL = "chat"


@dataclass(frozen=True)
class Generation:
    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int


@dataclass(frozen=True)
class ToolRun:
    tool: Tool
    model: str
    messages: tuple[ChatMessage, ...]
    prompt_tokens: int
    generation: Generation
    jobs: list[Job]  # one, or one per variant


class TextService:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        keeper: TextKeeper | None = None,
        client: str = "page",
    ):
        self._settings = settings
        self._engine = engine
        self._keeper = keeper  # keeps finished answers in the person's work
        self._client = client  # where the jobs come from, for the audit log

    # -- what there is --------------------------------------------------------------------

    def library(self) -> Library:
        """Read fresh each time, so a file an admin drops in shows up at once."""
        return load_library(self._settings.library_dir)

    def tools(self, user: User) -> list[Tool]:
        return list(self.library().tools.values())

    def voices(self, user: User) -> list[Voice]:
        return list(self.library().voices.values())

    def problems(self, user: User) -> list[str]:
        return list(self.library().problems)

    def text_models(self, user: User) -> list[ModelEntry]:
        return self._engine.registry().of_kind("text")

    def default_model(self, tool: Tool | None = None) -> str:
        names = [entry.name for entry in self._engine.registry().of_kind("text")]
        for candidate in (tool.preferred_model if tool else "", DEFAULT_TEXT_MODEL):
            if candidate and candidate in names:
                return candidate
        if not names:
            raise ValidationError(
                "No text model is installed. An admin can run `atelier prepare-default-model`.",
                field="model",
            )
        return names[0]

    def tool(self, tool_id: str) -> Tool:
        library = self.library()
        if tool_id not in library.tools:
            raise ValidationError(
                f"Unknown tool {tool_id!r}. Tools: {', '.join(library.tools) or 'none'}.",
                field="tool",
            )
        return library.tools[tool_id]

    def voice(self, voice_id: str) -> Voice:
        voices = self.library().voices
        if voice_id not in voices:
            raise ValidationError(
                f"Unknown brand voice {voice_id!r}. Voices: {', '.join(voices) or 'none'}.",
                field="voice",
            )
        return voices[voice_id]

    # -- running ---------------------------------------------------------------------------

    def generation(
        self,
        tool: Tool,
        preset: str | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        max_new_tokens: int | None = None,
        seed: int | None = None,
    ) -> Generation:
        """Parameters: the preset (the tool's by default), then any advanced overrides."""
        preset = preset or tool.preset
        if preset not in PRESETS:
            raise ValidationError(
                f"Unknown preset {preset!r}: use {', '.join(PRESETS)}.", field="preset"
            )
        chosen = PRESETS[preset]
        return Generation(
            temperature=chosen["temperature"] if temperature is None else temperature,
            top_p=chosen["top_p"] if top_p is None else top_p,
            max_new_tokens=max_new_tokens or tool.max_new_tokens,
            seed=random_seed() if seed is None else seed,
        )

    def run_tool(
        self,
        tool_id: str,
        inputs: dict[str, object],
        user: User,
        model: str | None = None,
        voice: str | None = None,
        history: tuple[ChatMessage, ...] = (),
        system: str | None = None,
        **parameters,
    ) -> ToolRun:
        """Check the inputs, build the prompt, check it fits, and queue the job(s)."""
        # 1. The tool (with the person's own instructions, if any), its inputs and the voice.
        tool = self.tool(tool_id)
        if system is not None:
            tool = replace(tool, system=clean_text(system, "system", "Instructions", False))
        values = clean_inputs(tool, inputs)
        chosen_voice = self.voice(voice) if voice else None
        if chosen_voice is not None and not tool.takes_voice:
            raise ValidationError(f"{tool.name} does not use a brand voice.", field="voice")
        # 2. The model and the parameters.
        model = model or self.default_model(tool)
        generation = self.generation(tool, **parameters)
        # 3. The prompt; the engine checks at submit that it fits the model's context.
        messages = build_messages(tool, values, chosen_voice, history)
        # 4. One job, or one per variant (they batch together in the engine).
        variants = int(values.get("variants", 1)) if tool.mode == "variants" else 1
        jobs = [
            self._engine.submit(
                TextRequest(
                    model=model,
                    messages=messages,
                    max_new_tokens=generation.max_new_tokens,
                    temperature=generation.temperature,
                    top_p=generation.top_p,
                    seed=generation.seed + index,
                    title=tool.name,
                ),
                user,
                client=self._client,
            )
            for index in range(variants)
        ]
        if self._keeper is not None:
            asked = asked_text([(f.label, values.get(f.id, "")) for f in tool.fields])
            earlier = tuple(history) if tool.mode == "chat" else None
            for job in jobs:
                self._keeper.track(job, tool.id, tool.name, asked, earlier)
        return ToolRun(tool, model, messages, len(jobs[0].prompt_ids), generation, jobs)

    def chat(
        self,
        message: str,
        history: list[ChatMessage],
        user: User,
        model: str | None = None,
        voice: str | None = None,
        system: str | None = None,
        **parameters,
    ) -> ToolRun:
        """The next turn of a chat: earlier turns are passed as history."""
        message = clean_text(message, "message", "Message")
        try:
            return self.run_tool(
                CHAT_TOOL,
                {"message": message},
                user,
                model=model,
                voice=voice,
                history=tuple(history),
                system=system,
                **parameters,
            )
        except ValidationError as error:
            if error.field != "input" or not history:
                raise
            raise ValidationError(
                f"{error.message} The conversation so far counts too: start a new chat "
                "to continue.",
                field="message",
            ) from None
