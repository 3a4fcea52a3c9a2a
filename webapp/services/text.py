"""Text tools, brand voices and chat: validate, build the prompt, guard the context, submit.

Runs are remembered for a while (a page reloaded while its answer is written finds it again
by a job's id), and chat turns are kept in the person's work (`webapp.services.chats`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from threading import Lock
from typing import Any

from webapp.embedded import DEFAULT_TEXT_MODEL
from webapp.engine import ChatMessage, Engine, Job, JobStatus, TextRequest
from webapp.engine.requests import VoiceAdapter
from webapp.errors import NotFound, ValidationError
from webapp.generation import (
    BUILT_IN_SETTINGS,
    Generation,
    check_chosen,
    generation_of,
    layered_settings,
    model_settings,
)
from webapp.registry import ModelEntry
from webapp.services.chats import ChatKeeper, Turn, asked_text, join_answer, result_title
from webapp.settings import Settings
from webapp.text_tools import (
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
KEEP_RUNS = 500  # runs a reloaded page may find again by a job's id
# An API completion that names no length may use the room left in the context, up to this.
OPEN_ENDED_TOKENS = 4096


@dataclass(frozen=True)
class ToolRun:
    tool: Tool
    model: str
    messages: tuple[ChatMessage, ...]  # the prompt (a continued answer's start not included)
    generation: Generation
    jobs: list[Job]  # one, or one per variant
    values: dict[str, Any] = field(default_factory=dict)  # what the person filled in
    voice: str | None = None
    prefix: str = ""  # Continue: the answer so far; the job writes the rest
    adapter: VoiceAdapter | None = None  # a tuned voice's, switched on for these jobs

    @property
    def id(self) -> str:
        """What a page keeps in its address to find the run again."""
        return self.jobs[0].id

    def answer(self, job: Job | None = None) -> str:
        return join_answer(self.prefix, (job or self.jobs[0]).text)

    @property
    def ending(self) -> str | None:
        """How a finished single answer ended, when people need to know: "stopped" by the
        person, or "cut" at the length limit; None otherwise."""
        job = self.jobs[0]
        if len(self.jobs) != 1 or not job.finished:
            return None
        if job.status == JobStatus.CANCELLED:
            return "stopped"
        if job.status == JobStatus.DONE and job.result().finish_reason == "length":
            return "cut"
        return None


@dataclass(frozen=True)
class ChatView:
    """A chat as a page shows it: the kept turns, and the turn being written (or that
    failed), which a page draws from its job."""

    chat_id: int | None
    turns: list[ChatMessage]  # kept; while a turn is live, those before it
    live: ToolRun | None = None
    question: str = ""  # the live turn's question
    ending: str | None = None  # how the last kept answer ended, when known (see ToolRun)
    problem: str | None = None  # the chat asked for could not be opened


class TextService:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        chats: ChatKeeper | None = None,
        client: str = "page",
        tuned_voices: Callable[[], list[Voice]] | None = None,
    ):
        self._settings = settings
        self._engine = engine
        self._tuned_voices = tuned_voices or list  # approved tuned voices, for everyone
        self._chats = chats or ChatKeeper(None)  # keeps finished answers in the person's work
        self._client = client  # where the jobs come from, for the audit log
        self._runs: OrderedDict[str, ToolRun] = OrderedDict()  # by each of their jobs' ids
        self._lock = Lock()

    # -- what there is --------------------------------------------------------------------

    def library(self) -> Library:
        """Read fresh each time, so a file an admin drops in shows up at once."""
        return load_library(self._settings.library_dir)

    def tools(self, user: User) -> list[Tool]:
        return list(self.library().tools.values())

    def voices(self, user: User) -> list[Voice]:
        """The library's voices (written as prompts), then the approved tuned ones."""
        return list(self._all_voices().values())

    def _all_voices(self) -> dict[str, Voice]:
        return {**self.library().voices, **{v.id: v for v in self._tuned_voices()}}

    def problems(self, user: User) -> list[str]:
        return list(self.library().problems)

    def text_models(self, user: User) -> list[ModelEntry]:
        return self._engine.registry().of_kind("text")

    def default_model(self, tool: Tool | None = None) -> str:
        ready = self._engine.registry().of_kind("text")
        names = [entry.name for entry in ready]
        chosen = next((entry.name for entry in ready if entry.default), "")
        for candidate in (tool.preferred_model if tool else "", chosen, DEFAULT_TEXT_MODEL):
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
        voices = self._all_voices()
        if voice_id not in voices:
            raise ValidationError(
                f"Unknown brand voice {voice_id!r}. Voices: {', '.join(voices) or 'none'}.",
                field="voice",
            )
        return voices[voice_id]

    # -- generation settings: in one place ----------------------------------------------------

    def settings_for(
        self, tool: Tool, model: str | None = None, preset: str | None = None
    ) -> dict[str, Any]:
        """The settings a run starts from (`webapp.generation.layered_settings`)."""
        defaults = self._model_defaults(model or self.default_model(tool))
        return layered_settings(tool, defaults, preset)

    def _model_defaults(self, model: str) -> dict[str, Any]:
        entry = self._engine.registry().entries.get(model)
        return entry.defaults if entry is not None else {}

    def generation(
        self,
        tool: Tool,
        model: str | None = None,
        preset: str | None = None,
        seed: int | None = None,
        **chosen: Any,
    ) -> Generation:
        """The settings of one run: `settings_for`, then what the person set (None: not set)."""
        check_chosen(chosen)
        return generation_of(self.settings_for(tool, model, preset), seed, chosen)

    # -- running ---------------------------------------------------------------------------

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
        run = self._prepare(tool_id, inputs, user, model, voice, history, system, parameters)
        # 4. One job, or one per variant (they batch together in the engine).
        variants = int(run.values.get("variants", 1)) if run.tool.mode == "variants" else 1
        jobs = [self._submit(run, user, seed_offset=index) for index in range(variants)]
        if run.tool.mode != "chat":
            asked = asked_text([(f.label, run.values.get(f.id, "")) for f in run.tool.fields])
            result = Turn(user, None, (), asked, tool=run.tool.id, model=run.model,
                          result_title=result_title(run.tool.name, asked))  # fmt: skip
            for job in jobs:
                self._chats.track(job, result)
        return self._remember(replace(run, jobs=jobs))

    def continue_run(self, run_id: str, user: User, max_new_tokens: int | None = None) -> ToolRun:
        """Go on with a single answer that was stopped or cut at the limit, from where it
        ends; the new run's answer is the whole of it."""
        run = self._own_run(run_id, user)
        if run.ending is None:
            raise ValidationError("Only a stopped or cut answer can be continued.", "run")
        if max_new_tokens is not None:
            run = replace(run, generation=replace(run.generation, max_new_tokens=max_new_tokens))
        prefix = run.answer()
        job = self._submit(run, user, prefix=prefix)
        return self._remember(replace(run, jobs=[job], prefix=prefix if prefix.strip() else ""))

    def run(self, run_id: str, user: User) -> ToolRun | None:
        """One of the person's recent runs, by any of its jobs' ids (None if forgotten, or
        not theirs: a shared address opens nothing of someone else's)."""
        with self._lock:
            run = self._runs.get(run_id)
        if run is None or run.jobs[0].user.id != user.id:
            return None
        return run

    def complete(
        self,
        messages: tuple[ChatMessage, ...],
        user: User,
        model: str | None = None,
        *,
        max_new_tokens: int | None = None,
        seed: int | None = None,
        stop: tuple[str, ...] = (),
        **chosen: Any,
    ) -> Job:
        """A chat completion of messages written elsewhere (the API's clients keep their
        own conversations, so nothing is kept in the person's work). Unset settings come
        from the model's catalog defaults; an unset length is the room left in the context
        (at most OPEN_ENDED_TOKENS)."""
        model = model or self.default_model()
        if max_new_tokens is None:  # (no messages: the request's own check says so)
            max_new_tokens = self._room_left(model, messages) if messages else 1
        values = {**BUILT_IN_SETTINGS, **model_settings(self._model_defaults(model))}
        generation = generation_of({**values, "max_new_tokens": max_new_tokens}, seed, chosen)
        return self._engine.submit(
            TextRequest(
                model=model,
                messages=messages,
                max_new_tokens=generation.max_new_tokens,
                temperature=generation.temperature,
                top_p=generation.top_p,
                seed=generation.seed,
                stop=stop,
                repetition_penalty=generation.repetition_penalty,
            ),
            user,
            client=self._client,
        )

    def _room_left(self, model: str, messages: tuple[ChatMessage, ...]) -> int:
        self._engine.registry().get(model, kind="text")  # a clear error for a wrong name
        tokens = self._engine.tokens
        prompt = tokens.chat_ids(model, [vars(m) for m in messages])
        return max(1, min(OPEN_ENDED_TOKENS, tokens.context_length(model) - len(prompt)))

    # -- chats kept in the person's work -------------------------------------------------------

    def chat(
        self,
        message: str,
        history: list[ChatMessage],
        user: User,
        model: str | None = None,
        voice: str | None = None,
        system: str | None = None,
        chat_id: int | None = None,
        **parameters,
    ) -> ToolRun:
        """The next turn of a chat: earlier turns are passed as `history`, or read from the
        person's kept chat `chat_id`. The turn is kept in that chat (or a new one)."""
        message = clean_text(message, "message", "Message")
        earlier = tuple(history) if chat_id is None else tuple(self.chat_turns(chat_id, user))
        turn = Turn(user, chat_id, earlier, message, tool=CHAT_TOOL)
        return self._chat_run(turn, model, voice, system, parameters)

    def chat_again(
        self,
        chat_id: int,
        user: User,
        go_on: bool = False,
        model: str | None = None,
        voice: str | None = None,
        system: str | None = None,
        **parameters,
    ) -> ToolRun:
        """The last answer of a kept chat written again (Regenerate), or continued from where
        it ends (`go_on`: Continue)."""
        turns = self.chat_turns(chat_id, user)
        if len(turns) < 2 or [t.role for t in turns[-2:]] != ["user", "assistant"]:
            raise ValidationError("This chat has no answer to write again.", field="chat_id")
        question, answer = turns[-2].content, turns[-1].content
        prefix = answer if go_on and answer.strip() else ""
        turn = Turn(user, chat_id, tuple(turns[:-2]), question, prefix, tool=CHAT_TOOL)
        return self._chat_run(turn, model, voice, system, parameters)

    def chat_turns(self, chat_id: int, user: User) -> list[ChatMessage]:
        """The person's and the model's messages of one of their kept chats."""
        history = self._chats.history
        if history is None:  # services without a store (some tests): nothing is kept
            raise NotFound("That chat does not exist or is not yours.")
        item = history.text(user, chat_id)
        if item.kind != "chat" or item.owner_id != user.id:
            raise NotFound("That chat does not exist or is not yours.")
        return [
            ChatMessage(m["role"], m["content"])
            for m in item.messages
            if m["role"] in ("user", "assistant")
        ]

    def chat_view(
        self,
        user: User,
        chat_id: int | None = None,
        run_id: str | None = None,
        timeout: float = 10,
    ) -> ChatView:
        """A chat to show: the kept turns of `chat_id`; or, while the turn of run `run_id`
        (the page's latest) is written, the chat as it was asked with that turn live; once
        the turn is kept, how its answer ended."""
        run = self.run(run_id, user) if run_id else None
        turn = self._chats.turn(run.id) if run is not None else None
        ending = None
        if run is not None and turn is not None:
            job = run.jobs[0]
            written = self._chats.written(job, timeout) if job.finished else None
            if written is None:  # being written, failed, or not kept: shown from its job
                return ChatView(turn.chat_id, list(turn.earlier), run, turn.question)
            chat_id, ending = written, run.ending
        turns, problem = [], None
        if chat_id is not None:
            try:
                turns = self.chat_turns(chat_id, user)
            except NotFound as error:
                chat_id, problem = None, error.message
        return ChatView(chat_id, turns, ending=ending, problem=problem)

    # -- the steps' details ------------------------------------------------------------------

    def _chat_run(self, turn: Turn, model, voice, system, parameters) -> ToolRun:
        inputs = {"message": turn.question}
        try:
            run = self._prepare(
                CHAT_TOOL, inputs, turn.user, model, voice, turn.earlier, system, parameters
            )
            job = self._submit(run, turn.user, prefix=turn.prefix)
        except ValidationError as error:
            if error.field != "input" or not turn.earlier:
                raise
            raise ValidationError(
                f"{error.message} The conversation so far counts too: start a new chat "
                "to continue.",
                field="message",
            ) from None
        run = self._remember(replace(run, jobs=[job], prefix=turn.prefix))
        self._chats.track(job, replace(turn, model=run.model))
        return run

    def _prepare(self, tool_id, inputs, user, model, voice, history, system, parameters):
        """Steps 1 to 3 of a run: a ToolRun with no jobs yet."""
        # 1. The tool (with the person's own instructions, if any), its inputs and the voice.
        tool = self.tool(tool_id)
        if system is not None:
            tool = replace(tool, system=clean_text(system, "system", "Instructions", False))
        values = clean_inputs(tool, inputs)
        if voice is None and tool.voice_required:
            voice = next(iter(self.library().voices), None)  # as the page offers it
        chosen_voice = self.voice(voice) if voice else None
        if chosen_voice is not None and not tool.takes_voice:
            raise ValidationError(f"{tool.name} does not use a brand voice.", field="voice")
        # 2. The model (a tuned voice's own base) and the parameters.
        if chosen_voice is not None and chosen_voice.adapter is not None:
            if model and model != chosen_voice.base_model:
                raise ValidationError(
                    f"The tuned voice “{chosen_voice.name}” runs on {chosen_voice.base_model}: "
                    "choose that model, or a voice written as a prompt.",
                    field="model",
                )
            model = chosen_voice.base_model
        model = model or self.default_model(tool)
        generation = self.generation(tool, model, **parameters)
        # 3. The prompt; the engine checks at submit that it fits the model's context.
        messages = build_messages(tool, values, chosen_voice, history)
        adapter = chosen_voice.adapter if chosen_voice is not None else None
        return ToolRun(tool, model, messages, generation, [], values, voice, adapter=adapter)

    def _submit(self, run: ToolRun, user: User, seed_offset: int = 0, prefix: str = "") -> Job:
        """One job of `run`; with `prefix`, one that goes on from that start of an answer."""
        generation = run.generation
        messages = run.messages
        if prefix.strip():
            messages = (*messages, ChatMessage("assistant", prefix))
        return self._engine.submit(
            TextRequest(
                model=run.model,
                messages=messages,
                max_new_tokens=generation.max_new_tokens,
                temperature=generation.temperature,
                top_p=generation.top_p,
                seed=generation.seed + seed_offset,
                repetition_penalty=generation.repetition_penalty,
                title=run.tool.name,
                continues=bool(prefix.strip()),
                adapter=run.adapter,
            ),
            user,
            client=self._client,
        )

    def _own_run(self, run_id: str, user: User) -> ToolRun:
        run = self.run(run_id, user)
        if run is None:
            raise NotFound("That answer is no longer here. Run the tool again.", field="run")
        return run

    def _remember(self, run: ToolRun) -> ToolRun:
        with self._lock:
            for job in run.jobs:
                self._runs[job.id] = run
            while len(self._runs) > KEEP_RUNS:
                self._runs.popitem(last=False)
        return run
