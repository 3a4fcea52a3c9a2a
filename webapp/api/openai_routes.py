"""The OpenAI-compatible API under /v1: models, chat completions (streamed as server-sent
events in OpenAI's chunk format), image generations and embeddings, on the app's engine.

Each route reads who is calling, turns the body into the request the pages make (with the
pages' checks), waits for the job without holding a thread, and answers in OpenAI's shape;
errors are `{"error": {"message", "type", "param", "code"}}` with OpenAI's statuses.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from webapp.api.access import Handler, keyed_route, shared_services
from webapp.api.bodies import Fields, read_json
from webapp.api.config import ApiConfig
from webapp.api.job_waiting import JobWatch, cancel_soon, until_finished
from webapp.api.refusals import Refusal, refusal_of
from webapp.engine import ChatMessage, Job, JobStatus
from webapp.engine.jobs import JobCancelled, JobFailed
from webapp.errors import ValidationError
from webapp.services.images import ImageForm
from webapp.users import User

MAX_STOP_SEQUENCES = 4  # as OpenAI allows
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
FINISH_REASONS = {"stop": "stop", "eos": "stop", "length": "length"}
QUALITIES = {"standard": "Balanced", "low": "Fast", "medium": "Balanced", "high": "Best",
             "hd": "Best", "auto": "Balanced"}  # fmt: skip


def openai_error(refusal: Refusal) -> JSONResponse:
    body = {
        "error": {
            "message": refusal.message,
            "type": refusal.kind,
            "param": refusal.param,
            "code": refusal.code,
        }
    }
    return JSONResponse(body, status_code=refusal.status, headers=refusal.headers)


def openai_routes(config: ApiConfig) -> list[Route]:
    def route(path: str, handler: Handler, method: str) -> Route:
        return keyed_route(config, path, handler, method, openai_error)

    async def services():
        return await shared_services(config)

    # -- GET /v1/models --------------------------------------------------------------------

    async def models(request: Request, user: User) -> Response:
        registry = (await services()).engine.registry()
        listed = [_model(entry) for entry in registry if entry.ready]
        return JSONResponse({"object": "list", "data": listed})

    async def model(request: Request, user: User) -> Response:
        registry = (await services()).engine.registry()
        entry = registry.get(request.path_params["model"])
        return JSONResponse(_model(entry))

    # -- POST /v1/chat/completions -------------------------------------------------------

    async def chat(request: Request, user: User) -> Response:
        fields = Fields(await read_json(request))
        if (fields.integer("n", 1)) != 1:
            raise ValidationError("Atelier writes one answer per request: send n = 1.", "n")
        messages = _messages(fields.items("messages"))
        max_tokens = fields.integer("max_completion_tokens", fields.integer("max_tokens"))
        stream = fields.flag("stream")  # read before the job is queued, like every field
        usage = bool(fields.mapping("stream_options").get("include_usage"))
        text = (await services()).api.text
        job = await run_in_threadpool(
            text.complete,
            messages,
            user,
            fields.text("model"),
            max_new_tokens=max_tokens,
            seed=fields.integer("seed"),
            stop=fields.strings("stop", MAX_STOP_SEQUENCES),
            temperature=fields.number("temperature"),
            top_p=fields.number("top_p"),
        )
        reply = _Reply(job, int(time.time()))
        if stream:
            return StreamingResponse(
                _stream(reply, user, usage),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        await until_finished(job, request, user)
        result = job.result(0)
        return JSONResponse(
            {
                **reply.head("chat.completion"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": result.text},
                        "finish_reason": FINISH_REASONS.get(result.finish_reason, "stop"),
                        "logprobs": None,
                    }
                ],
                "usage": reply.usage(),
            }
        )

    # -- POST /v1/images/generations ---------------------------------------------------------

    async def images(request: Request, user: User) -> Response:
        fields = Fields(await read_json(request))
        if fields.text("response_format", "b64_json") != "b64_json":
            raise ValidationError(
                "Atelier answers with the pictures themselves: send response_format "
                "b64_json (pictures are not kept at an address).",
                field="response_format",
            )
        width, height = _size(fields.text("size", "auto"))
        quality = fields.text("quality", "auto")
        if quality not in QUALITIES:
            raise ValidationError(
                f"quality must be one of {', '.join(QUALITIES)}, not {quality!r}.", "quality"
            )
        form = ImageForm(
            prompt=fields.text("prompt", ""),
            model=fields.text("model"),
            num_images=fields.integer("n", 1),
            quality=QUALITIES[quality],
            width=width,
            height=height,
        )
        image_service = (await services()).api.images
        run = await run_in_threadpool(image_service.generate, form, user)
        await until_finished(run.job, request, user)
        stored = await run_in_threadpool(image_service.finish, run, user, 60)
        pictures = await run_in_threadpool(lambda: [item.path.read_bytes() for item in stored])
        data = [
            {
                "b64_json": base64.b64encode(png).decode("ascii"),
                "revised_prompt": run.request.prompt,
            }
            for png in pictures
        ]
        return JSONResponse({"created": int(time.time()), "data": data})

    # -- POST /v1/embeddings -----------------------------------------------------------------

    async def embeddings(request: Request, user: User) -> Response:
        fields = Fields(await read_json(request))
        encoding = fields.text("encoding_format", "float")
        if encoding not in ("float", "base64"):
            raise ValidationError("encoding_format must be float or base64.", "encoding_format")
        texts = _texts(fields.body.get("input"))
        service = (await services()).api.embeddings
        job = await run_in_threadpool(service.embed, texts, user, fields.text("model"))
        await until_finished(job, request, user)
        result = job.result(0)
        data = [
            {"object": "embedding", "index": index, "embedding": _vector(vector, encoding)}
            for index, vector in enumerate(result.vectors)
        ]
        usage = {"prompt_tokens": result.tokens, "total_tokens": result.tokens}
        return JSONResponse({"object": "list", "data": data, "model": result.model, "usage": usage})

    return [
        route("/v1/models", models, "GET"),
        route("/v1/models/{model:path}", model, "GET"),
        route("/v1/chat/completions", chat, "POST"),
        route("/v1/images/generations", images, "POST"),
        route("/v1/embeddings", embeddings, "POST"),
    ]


# -- the pieces ------------------------------------------------------------------------------


def _model(entry) -> dict:
    created = int(entry.path.stat().st_mtime) if entry.path.exists() else 0
    return {"id": entry.name, "object": "model", "created": created, "owned_by": "atelier",
            "kind": entry.kind}  # fmt: skip


def _messages(raw: list) -> tuple[ChatMessage, ...]:
    """OpenAI's messages as chat messages: text content (a string, or text parts) only."""
    messages = []
    for number, message in enumerate(raw, start=1):
        where = f"messages[{number - 1}]"
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ValidationError(f"{where} must be an object with a role and content.", where)
        role = ROLES.get(message["role"])
        if role is None:
            raise ValidationError(
                f"{where} has role {message['role']!r}: Atelier takes system, developer, user "
                "and assistant messages (no tools).",
                where,
            )
        messages.append(ChatMessage(role, _content(message.get("content"), where)))
    return tuple(messages)


def _content(content, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise ValidationError(
                    f"{where} has a part that is not text: Atelier's text models read text only.",
                    where,
                )
            if not isinstance(part.get("text"), str):
                raise ValidationError(f"{where} has a text part without text.", where)
            parts.append(part["text"])
        return "\n".join(parts)
    raise ValidationError(f"{where}.content must be a string or a list of text parts.", where)


def _vector(vector, encoding: str) -> list[float] | str:
    """A vector as numbers, or (what the openai client asks for) its float32 bytes in base64."""
    if encoding == "float":
        return vector.tolist()
    return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")


def _texts(raw) -> tuple[str, ...]:
    if isinstance(raw, str):
        return (raw,)
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return tuple(raw)
    raise ValidationError(
        "input must be a string or a list of strings (token ids are not taken).", "input"
    )


def _size(size: str) -> tuple[int | None, int | None]:
    """`WIDTHxHEIGHT`, or auto (the model's own square size)."""
    if size == "auto":
        return None, None
    width, separator, height = size.partition("x")
    if not separator or not width.isdigit() or not height.isdigit():
        raise ValidationError(f"size must be WIDTHxHEIGHT (e.g. 512x512) or auto, not {size!r}.",
                              "size")  # fmt: skip
    return int(width), int(height)


class _Reply:
    """What every chunk and answer of one completion shares."""

    def __init__(self, job: Job, created: int):
        self.job = job
        self.created = created

    def head(self, kind: str) -> dict:
        return {"id": f"chatcmpl-{self.job.id}", "object": kind, "created": self.created,
                "model": self.job.model}  # fmt: skip

    def usage(self) -> dict:
        prompt, done = len(self.job.prompt_ids), 0
        if self.job.status == JobStatus.DONE:
            result = self.job.result(0)
            prompt, done = result.prompt_tokens, result.tokens
        return {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}

    def chunk(self, delta: dict, finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return _event({**self.head("chat.completion.chunk"), "choices": [choice]})


def _event(data: dict | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


async def _stream(reply: _Reply, user: User, usage: bool) -> AsyncIterator[str]:
    """The answer as it is written. If the client goes away, Starlette cancels this
    generator (it listens for the disconnect) and the `finally` cancels the job."""
    job = reply.job
    sent = 0
    try:
        with JobWatch(job) as watch:
            yield reply.chunk({"role": "assistant", "content": ""})
            while True:
                finished = job.wait(0)  # ended, and its end listeners have run
                text = job.text
                if len(text) > sent:
                    yield reply.chunk({"content": text[sent:]})
                    sent = len(text)
                if finished:
                    break
                await watch.changed()
        try:
            result = job.result(0)
        except (JobFailed, JobCancelled) as error:
            yield _event({"error": _error(error)})
            return
        yield reply.chunk({}, FINISH_REASONS.get(result.finish_reason, "stop"))
        if usage:
            yield _event({**reply.head("chat.completion.chunk"), "choices": [],
                          "usage": reply.usage()})  # fmt: skip
        yield _event("[DONE]")
    finally:
        cancel_soon(job, user)


def _error(error: Exception) -> dict:
    refusal = refusal_of(error)
    return {"message": refusal.message, "type": refusal.kind, "param": None, "code": refusal.code}
