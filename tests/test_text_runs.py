"""Text runs people can trust: generation defaults from the catalog, Continue after a cut or
a Stop, runs found again after a reload, chats kept turn by turn, honest downloads."""

from __future__ import annotations

import io
import re
import threading
from contextlib import contextmanager

import pytest
from docx import Document

from webapp.documents import to_docx
from webapp.engine import JobStatus
from webapp.errors import NotFound, ValidationError
from webapp.users import User, local_user

TINY_DEFAULTS = (
    '\n[models."tiny-llm".defaults]\n'
    "temperature = 0.3\ntop_p = 0.8\nrepetition_penalty = 1.3\nmax_new_tokens = 40\n"
)


@pytest.fixture
def text(models_dir, make_services):
    """Services whose catalog gives tiny-llm generation defaults; the local person exists."""
    with (models_dir / "catalog.toml").open("a") as catalog:
        catalog.write(TINY_DEFAULTS)
    return make_services(models_dir)


@pytest.fixture
def me(text):
    return local_user(text.settings)


@contextmanager
def worker_held(engine):
    """The engine's worker kept busy (by a call that waits), so what is submitted waits."""
    release, held = threading.Event(), threading.Event()

    def hold():
        held.set()
        release.wait(30)

    caller = threading.Thread(target=engine.on_worker, args=(hold,))
    caller.start()
    held.wait(30)
    try:
        yield
    finally:
        release.set()
        caller.join(30)


def finished(run, timeout=60):
    for job in run.jobs:
        job.wait(timeout)
    return run


def test_the_models_catalog_defaults_apply_unless_the_person_sets_them(text, me):
    summarise = text.text.tool("summarise")  # its own style: Precise (0.2, 0.9), 500 tokens
    assert text.text.settings_for(summarise, "tiny-llm") == {
        "temperature": 0.3,
        "top_p": 0.8,
        "repetition_penalty": 1.3,
        "max_new_tokens": 40,
    }
    run = text.text.run_tool("summarise", {"text": "A short text."}, me, model="tiny-llm")
    request = run.jobs[0].request
    assert (request.temperature, request.top_p, request.repetition_penalty) == (0.3, 0.8, 1.3)
    assert request.max_new_tokens == 40

    chosen = (
        text.text.run_tool(
            "summarise",
            {"text": "A short text."},
            me,
            model="tiny-llm",
            preset="Creative",  # a style the person picked beats the model's
            repetition_penalty=1.0,  # and so does what they set in Advanced
            max_new_tokens=7,
        )
        .jobs[0]
        .request
    )
    assert (chosen.temperature, chosen.top_p) == (1.0, 0.95)
    assert (chosen.repetition_penalty, chosen.max_new_tokens) == (1.0, 7)


def test_the_embedded_model_comes_with_a_repetition_penalty_and_is_marked_as_a_demo():
    from tests.conftest import CATALOG

    catalog = CATALOG.read_text()
    entry = catalog.split('[models."smollm2-135m-instruct".defaults]')[1].split("[models.")[0]
    assert re.search(r"repetition_penalty = 1\.\d+", entry)
    assert "demo = true" in catalog.split('[models."smollm2-135m-instruct"]')[1].split("[")[0]


def test_a_demo_model_is_marked_in_the_registry(text):
    entries = {entry.name: entry for entry in text.text.text_models(None)}
    assert entries["tiny-llm"].demo is True  # the project's catalog marks it
    assert entries["tiny-llm"].label == "Tiny LLM (test model)"


def ask_the_sea(services, me, max_new_tokens, model="tiny-llm"):
    return services.text.run_tool(
        "chat",
        {"message": "Tell me about the sea in three sentences."},
        me,
        model=model,
        temperature=0.0,
        repetition_penalty=1.0,
        max_new_tokens=max_new_tokens,
        seed=1,
    )


def test_continuing_a_cut_answer_gives_the_model_its_answer_so_far_to_go_on_from(text, me):
    from transformers import AutoTokenizer

    cut = finished(ask_the_sea(text, me, 6))
    assert cut.ending == "cut"
    continued = finished(text.text.continue_run(cut.id, me, max_new_tokens=10))
    asked, going_on = cut.jobs[0].prompt_ids, continued.jobs[0].prompt_ids
    assert going_on[: len(asked)] == asked  # the same chat, then the answer so far, left open
    tokenizer = AutoTokenizer.from_pretrained(str(text.settings.models_dir / "tiny-llm"))
    assert tokenizer.decode(going_on[len(asked) :]) == cut.answer().strip()
    assert continued.answer().startswith(cut.answer().rstrip())
    assert len(continued.answer()) > len(cut.answer().rstrip())


@pytest.mark.embedded
def test_continuing_a_cut_answer_writes_what_one_long_answer_would(
    embedded_models_dir, make_services
):
    services = make_services(embedded_models_dir)
    me = local_user(services.settings)
    model = "smollm2-135m-instruct"
    cut = finished(ask_the_sea(services, me, 12, model), timeout=300)
    continued = finished(services.text.continue_run(cut.id, me, max_new_tokens=20), 300)
    whole = finished(ask_the_sea(services, me, 32, model), timeout=300)
    assert cut.ending == "cut"
    assert continued.answer() == whole.answer()


def test_only_a_stopped_or_cut_answer_can_be_continued(text, me):
    run = finished(
        text.text.run_tool("summarise", {"text": "x"}, me, model="tiny-llm", max_new_tokens=600)
    )
    if run.ending is None:
        with pytest.raises(ValidationError, match="stopped or cut"):
            text.text.continue_run(run.id, me)


def test_a_run_is_found_again_by_its_jobs_id_and_only_by_its_owner(text, me):
    run = text.text.run_tool(
        "headlines", {"subject": "a mug", "variants": 2}, me, model="tiny-llm", max_new_tokens=4
    )
    for job in run.jobs:
        assert text.text.run(job.id, me) is run
    assert text.text.run(run.id, User("eve", "Eve")) is None
    assert text.text.run("job-unknown", me) is None
    assert run.values["subject"] == "a mug" and run.values["variants"] == 2


def test_rewriting_in_a_brand_voice_always_uses_one(text, me):
    run = text.text.run_tool("rewrite-in-voice", {"text": "Hello."}, me, model="tiny-llm")
    first_voice = text.text.voices(me)[0]
    assert run.voice == first_voice.id
    assert first_voice.name in run.messages[0].content


def test_a_stopped_chat_turn_is_kept_with_the_question_and_what_was_written(text, me):
    run = text.text.chat("Go on and on", [], me, model="tiny-llm", max_new_tokens=900, seed=2)
    job = run.jobs[0]
    while not job.text and not job.finished:
        job.wait_for_update(0.05)
    job.cancel(me)
    view = text.text.chat_view(me, run_id=run.id)
    assert view.chat_id is not None and view.live is None
    assert [turn.role for turn in view.turns] == ["user", "assistant"]
    assert view.turns[0].content == "Go on and on"
    assert view.turns[1].content == job.text and job.text
    assert view.ending == "stopped"
    kept = text.history.text(me, view.chat_id)
    assert kept.kind == "chat" and kept.messages[1]["content"] == job.text


def test_a_chat_question_stopped_before_any_word_is_kept_to_ask_again(text, me):
    with worker_held(text.engine):
        run = text.text.chat("Are you there?", [], me, model="tiny-llm", max_new_tokens=50)
        run.jobs[0].cancel(me)  # before the model wrote anything
    view = text.text.chat_view(me, run_id=run.id)
    assert view.chat_id is not None and [t.content for t in view.turns] == ["Are you there?", ""]
    again = finished(text.text.chat_again(view.chat_id, me, model="tiny-llm", max_new_tokens=4))
    assert text.text.chat_view(me, view.chat_id, again.id).turns[1].content == again.answer()


def test_a_tools_answer_stopped_before_any_word_is_not_kept(text, me):
    with worker_held(text.engine):
        run = text.text.run_tool("summarise", {"text": "Words."}, me, model="tiny-llm")
        run.jobs[0].cancel(me)
    assert text.chats.written(run.jobs[0], 30) is None
    assert text.history.texts(me).total == 0


def test_a_kept_chat_goes_on_and_regenerate_rewrites_only_its_last_answer(text, me):
    first = finished(text.text.chat("Hello", [], me, model="tiny-llm", max_new_tokens=5))
    chat_id = text.text.chat_view(me, run_id=first.id).chat_id
    second = finished(
        text.text.chat("And again", [], me, chat_id=chat_id, model="tiny-llm", max_new_tokens=5)
    )
    assert [m.content for m in second.messages if m.role != "system"][:2] == [
        "Hello",
        first.answer(),
    ]
    assert len(text.text.chat_view(me, chat_id, second.id).turns) == 4

    again = finished(text.text.chat_again(chat_id, me, model="tiny-llm", max_new_tokens=5, seed=99))
    turns = text.text.chat_view(me, chat_id, again.id).turns
    assert [t.content for t in turns[:3]] == ["Hello", first.answer(), "And again"]
    assert turns[3].content == again.answer()
    assert len(text.history.texts(me).items) == 1  # one chat, not one per turn


def test_while_a_turn_is_written_the_chat_shows_it_live_after_the_turns_before(text, me):
    first = finished(text.text.chat("Hello", [], me, model="tiny-llm", max_new_tokens=5))
    chat_id = text.text.chat_view(me, run_id=first.id).chat_id
    live = text.text.chat("More", [], me, chat_id=chat_id, model="tiny-llm", max_new_tokens=900)
    view = text.text.chat_view(me, chat_id, live.id)
    assert view.live is live and view.question == "More"
    assert [t.content for t in view.turns] == ["Hello", first.answer()]
    live.jobs[0].cancel(me)


def test_another_persons_chat_is_not_found(text, me):
    first = finished(text.text.chat("Private", [], me, model="tiny-llm", max_new_tokens=3))
    chat_id = text.text.chat_view(me, run_id=first.id).chat_id
    with pytest.raises(NotFound):
        text.text.chat_turns(chat_id, User("eve", "Eve"))
    view = text.text.chat_view(User("eve", "Eve"), chat_id=chat_id)
    assert view.turns == [] and view.chat_id is None and "not yours" in view.problem


def test_a_failed_answer_is_not_kept(text, me, monkeypatch):
    run = text.text.chat("Hello", [], me, model="tiny-llm", max_new_tokens=3)
    job = run.jobs[0]
    job.wait(30)
    if job.status != JobStatus.DONE:
        pytest.skip("the answer did not finish")
    job.status = JobStatus.FAILED  # as if it had failed: the keeper writes nothing
    assert text.chats._write(job, text.chats.turn(job.id)) is None


def test_a_word_document_has_a_paragraph_per_line_lists_and_the_persons_name():
    answer = "Three points:\n- Anna books the room\n- Ben sends the agenda\n1. First\n\nThe end."
    document = Document(io.BytesIO(to_docx(answer, title="Key points", author="Ada Lovelace")))
    paragraphs = [(p.style.name, p.text) for p in document.paragraphs]
    assert paragraphs == [
        ("Heading 1", "Key points"),
        ("Normal", "Three points:"),
        ("List Bullet", "Anna books the room"),
        ("List Bullet", "Ben sends the agenda"),
        ("List Number", "First"),
        ("Normal", "The end."),
    ]
    assert document.core_properties.author == "Ada Lovelace"
    assert "python-docx" not in (document.core_properties.comments or "")
    assert document.core_properties.title == "Key points"
