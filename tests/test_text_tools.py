"""Text tools and brand voices: data files, the template sandbox, the context guard, runs."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import REPO
from webapp.engine import JobCancelled, JobStatus
from webapp.errors import ValidationError
from webapp.text_tools import load_library, render_prompt

LIBRARY = REPO / "library"
BUILT_IN_TOOLS = {
    "rewrite-in-voice",
    "summarise",
    "key-points",
    "translate",
    "reply-to-email",
    "proofread",
    "change-tone",
    "headlines",
    "chat",
}
SAMPLE = "The meeting moved to Tuesday at 10. Anna books the room; Ben sends the agenda."
INJECTIONS = [
    "{{ 7 * 7 }}",
    "{% for x in range(3) %}x{% endfor %}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{# comment #}",
    "{{ config }}",
]


def sample_inputs(tool) -> dict[str, object]:
    values = {}
    for item in tool.fields:
        if item.type == "choice":
            values[item.id] = item.choices[-1]
        elif item.type == "number":
            values[item.id] = item.min or 1
        else:
            values[item.id] = SAMPLE
    return values


@pytest.fixture
def library_dir(tmp_path):
    folder = tmp_path / "library"
    shutil.copytree(LIBRARY, folder)
    return folder


@pytest.fixture
def text_services(tiny_models_dir, library_dir, make_services):
    return make_services(tiny_models_dir, library_dir=library_dir)


def test_built_in_library_has_every_tool_and_two_voices_without_problems():
    library = load_library(LIBRARY)
    assert set(library.tools) == BUILT_IN_TOOLS
    assert len(library.voices) == 2
    assert library.problems == ()


@pytest.mark.parametrize("tool_id", sorted(BUILT_IN_TOOLS))
def test_every_built_in_tool_runs_end_to_end(text_services, admin, tool_id):
    tool = text_services.text.tool(tool_id)
    inputs = sample_inputs(tool)
    voice = "friendly-expert" if tool.takes_voice else None
    run = text_services.text.run_tool(
        tool_id, inputs, admin, model="tiny-llm", voice=voice, seed=5, max_new_tokens=12
    )
    # The prompt is assembled as the tool file says: system (+ voice), examples, request.
    system, *_, request = run.messages
    assert system.role == "system" and system.content.startswith(tool.system)
    if voice:
        assert "Friendly expert" in system.content and "Never use: synergy" in system.content
        assert run.messages[2].role == "assistant"  # a voice example as a few-shot turn
    values = {k: v for k, v in inputs.items()}
    assert request == run.messages[-1] and request.content == render_prompt(tool, values)
    expected_jobs = inputs.get("variants", 1) if tool.mode == "variants" else 1
    assert len(run.jobs) == expected_jobs
    for job in run.jobs:
        streamed = "".join(job.stream())
        result = job.result(30)
        assert streamed == result.text
        assert 0 < result.tokens <= 12 or result.finish_reason == "eos"


def test_variants_use_consecutive_seeds_and_run_together(text_services, admin):
    run = text_services.text.run_tool(
        "headlines",
        {"subject": "a coffee mug", "variants": 3},
        admin,
        model="tiny-llm",
        seed=100,
        max_new_tokens=8,
    )
    assert [job.request.seed for job in run.jobs] == [100, 101, 102]
    texts = [job.result(30).text for job in run.jobs]
    assert len(set(texts)) > 1


@pytest.mark.parametrize("attempt", INJECTIONS)
def test_template_syntax_in_user_input_comes_out_literally(text_services, admin, attempt):
    run = text_services.text.run_tool(
        "summarise", {"text": f"Before {attempt} after"}, admin, model="tiny-llm", max_new_tokens=2
    )
    assert f"Before {attempt} after" in run.messages[-1].content


def test_unsafe_template_in_a_tool_file_is_refused_not_run(text_services, admin, library_dir):
    (library_dir / "tools" / "sneaky.toml").write_text(
        'name = "Sneaky"\nprompt = "{{ text.__class__.__mro__[1].__subclasses__() }}"\n'
        '[[fields]]\nid = "text"\nlabel = "Text"\ntype = "long_text"\n'
    )
    with pytest.raises(ValidationError, match="will not run"):
        text_services.text.run_tool("sneaky", {"text": "hi"}, admin, model="tiny-llm")


def test_input_over_the_context_says_how_much_to_cut_before_running(text_services, admin):
    with pytest.raises(ValidationError) as caught:
        text_services.text.run_tool("summarise", {"text": "word " * 3000}, admin, model="tiny-llm")
    assert caught.value.field == "input"
    assert "Cut about" in caught.value.message and "reads at most 1,024" in caught.value.message
    assert text_services.engine.queue_length() == 0


@pytest.mark.parametrize(
    ("inputs", "field", "words"),
    [
        ({"text": "   "}, "text", "Fill in"),
        ({"text": "abc\x00\x01def"}, "text", "control characters"),
        ({"text": "ok", "length": "a novel"}, "length", "must be one of"),
        ({"text": "ok", "colour": "red"}, "colour", "has no field"),
    ],
)
def test_bad_inputs_name_their_field(text_services, admin, inputs, field, words):
    with pytest.raises(ValidationError, match=words) as caught:
        text_services.text.run_tool("summarise", inputs, admin, model="tiny-llm")
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (dict(tool_id="poetry"), "tool"),
        (dict(tool_id="summarise", voice="pirate"), "voice"),
        (dict(tool_id="summarise", voice="friendly-expert"), "voice"),  # takes no voice
        (dict(tool_id="summarise", model="no-such-model"), "model"),
        (dict(tool_id="summarise", model="tiny-sd"), "model"),
        (dict(tool_id="summarise", preset="Wild"), "preset"),
    ],
)
def test_unknown_tool_voice_model_or_preset_is_refused(text_services, admin, call, field):
    with pytest.raises(Exception) as caught:
        text_services.text.run_tool(inputs={"text": SAMPLE}, user=admin, **call)
    assert caught.value.field == field


def test_a_broken_tool_file_is_reported_and_the_rest_still_work(text_services, library_dir, admin):
    (library_dir / "tools" / "broken.toml").write_text(
        "name = 'Broken'\nprompt = '{{ oops'\nfields = []\n"
    )
    (library_dir / "tools" / "typo.toml").write_text("name = \n")
    problems = text_services.text.problems(admin)
    assert any("broken.toml" in p and "template error" in p for p in problems)
    assert any("typo.toml" in p for p in problems)
    assert len(text_services.text.tools(admin)) == len(BUILT_IN_TOOLS)
    report = text_services.system.doctor()
    assert any(c.name == "library file" and "broken.toml" in c.detail for c in report.checks)


def test_stop_ends_only_this_generation(text_services, admin, member):
    mine = text_services.text.run_tool(
        "chat", {"message": "go on and on"}, admin, model="tiny-llm", max_new_tokens=900, seed=1
    ).jobs[0]
    theirs = text_services.text.run_tool(
        "chat", {"message": "hello"}, member, model="tiny-llm", max_new_tokens=40, seed=2
    ).jobs[0]
    while not mine.text:
        mine._done.wait(0.001)
    mine.cancel(admin)
    with pytest.raises(JobCancelled):
        mine.result(10)
    assert theirs.result(30).tokens > 0
    assert theirs.status == JobStatus.DONE


def test_chat_keeps_history_and_the_persons_instructions(text_services, admin):
    from webapp.engine import ChatMessage

    history = [ChatMessage("user", "My name is Ada."), ChatMessage("assistant", "Hello Ada.")]
    run = text_services.text.chat(
        "What is my name?",
        history,
        admin,
        model="tiny-llm",
        system="Answer like a pirate.",
        max_new_tokens=4,
    )
    assert [m.content for m in run.messages] == [
        "Answer like a pirate.",
        "My name is Ada.",
        "Hello Ada.",
        "What is my name?",
    ]
    run.jobs[0].result(30)


@pytest.mark.embedded
def test_every_built_in_tool_answers_with_the_embedded_model(
    embedded_models_dir, admin, make_services
):
    services = make_services(embedded_models_dir)
    for tool_id in sorted(BUILT_IN_TOOLS):
        tool = services.text.tool(tool_id)
        run = services.text.run_tool(
            tool_id, sample_inputs(tool), admin, max_new_tokens=12, seed=0, temperature=0.0
        )
        assert run.model == "smollm2-135m-instruct"
        assert all(job.result(120).text.strip() for job in run.jobs), tool_id
