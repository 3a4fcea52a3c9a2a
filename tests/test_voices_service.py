"""The voices service: a person's datasets and unapproved voices are theirs alone, an
admin's approval puts a voice in Text tools (served by its adapter on the base), versions
roll back, and an export holds the adapter and a model card with the evaluation."""

from __future__ import annotations

import io
import zipfile

import pytest

from webapp.errors import Forbidden, NotFound, ValidationError
from webapp.tuning.dataset import Example
from webapp.users import User

# A safety net against a hang, not a measure of speed: a shared, loaded CPU is slow.
WAIT = 600

ADMIN = User("ada", "Ada", is_admin=True)
ANNA, BEN = User("anna", "Anna"), User("ben", "Ben")
QUICK = {"max_steps": 4, "batch_size": 4}


def approved_texts(count: int = 12) -> list[Example]:
    return [
        Example(f"Hey friend! Kettle {i} boils in a jiffy. Simple, cheerful, done.", source=f"#{i}")
        for i in range(count)
    ]


@pytest.fixture
def services(make_services, tiny_models_dir):
    built = make_services(tiny_models_dir, auth_mode="accounts")
    operator = User("cli:test", "Operator", is_admin=True)
    for user in (ADMIN, ANNA, BEN):
        role = "admin" if user.is_admin else "member"
        built.accounts.add_person(operator, user.id, "long enough pass", role=role)
    return built


def trained(services, user: User, name: str = "Kettle talk"):
    dataset = services.voices.save_dataset(user, "Approved", approved_texts())
    run = services.voices.train(user, name, dataset.id, "tiny-llm", "Light", **QUICK)
    services.voices.job(user, run.id).result(WAIT)
    return services.voices.version(user, run.id)


def test_a_finished_run_records_its_evaluation(services):
    run = trained(services, ANNA)
    evaluation = run.evaluation
    assert run.status == "done" and evaluation["steps"] == 4
    assert evaluation["perplexity_after"] < evaluation["perplexity_before"]
    assert len(evaluation["losses"]) == 4 and evaluation["samples"]
    assert {"prompt", "base", "tuned", "reference"} <= set(evaluation["samples"][0])


def test_a_members_datasets_and_unapproved_voices_are_invisible_to_others(services):
    run = trained(services, ANNA)
    assert services.voices.datasets(BEN) == []
    with pytest.raises(NotFound):
        services.voices.dataset(BEN, run.dataset_id)
    with pytest.raises(NotFound):
        services.voices.version(BEN, run.id)
    assert services.voices.versions(BEN) == []
    with pytest.raises(NotFound):
        services.voices.export(BEN, run.id)
    own = services.voices.save_dataset(BEN, "Mine", approved_texts())
    with pytest.raises(ValidationError, match="taken by another voice"):
        services.voices.train(BEN, "kettle talk", own.id, "tiny-llm")
    assert all(v.adapter is None for v in services.text.voices(ANNA))  # not yet approved


def test_only_an_admin_sees_everyones_voices_and_the_refusal_is_recorded(services):
    with pytest.raises(Forbidden):
        services.voices.versions(BEN, everyone=True)
    assert services.voices.versions(ADMIN, everyone=True) == []
    refused = [e for e in services.audit.query(ADMIN).items if e.kind == "voice.list"]
    assert [(e.actor, e.outcome) for e in refused] == [("ben", "refused")]


def test_approval_puts_the_voice_in_text_tools_served_by_its_adapter(services):
    run = trained(services, ANNA)
    with pytest.raises(Forbidden):
        services.voices.approve(ANNA, run.id)
    services.voices.approve(ADMIN, run.id)
    tuned = [v for v in services.text.voices(BEN) if v.adapter is not None]
    assert [v.id for v in tuned] == ["tuned-kettle-talk"]

    answer = services.text.run_tool(
        "rewrite-in-voice", {"text": "The kettle is fast."}, BEN, voice="tuned-kettle-talk",
        max_new_tokens=8, temperature=0.0,
    )  # fmt: skip
    request = answer.jobs[0].request
    assert request.adapter == tuned[0].adapter and request.model == "tiny-llm"
    assert "Kettle talk" not in request.messages[0].content  # the voice is in the adapter
    assert answer.jobs[0].result(60).text
    refused = [e for e in services.audit.query(ADMIN).items if e.kind == "voice.approve"]
    assert [e.outcome for e in refused] == ["ok", "refused"]


def test_a_voice_rolls_back_to_its_previous_approved_version(services):
    first = trained(services, ANNA)
    services.voices.approve(ADMIN, first.id)
    second = trained(services, ANNA)
    assert second.version == 2 and not second.live
    services.voices.approve(ADMIN, second.id)
    assert [v.version for v in services.voices.team_voices()] == [2]
    services.voices.roll_back(ADMIN, "kettle talk")
    assert [v.version for v in services.voices.team_voices()] == [1]
    with pytest.raises(ValidationError, match="no earlier approved version"):
        services.voices.roll_back(ADMIN, "kettle talk")


def test_an_export_holds_the_adapter_and_a_model_card(services):
    run = trained(services, ANNA)
    name, data = services.voices.export(ANNA, run.id)
    assert name == "kettle-talk-v1.zip"
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert sorted(archive.namelist()) == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    card = archive.read("README.md").decode()
    assert "Base model: tiny-llm" in card and "12 examples, 2 of them held back" in card
    assert f"{run.evaluation['perplexity_after']:.2f} after" in card


def test_a_cancelled_run_resumes_for_its_owner(services):
    dataset = services.voices.save_dataset(ANNA, "Approved", approved_texts())
    run = services.voices.train(ANNA, "slow", dataset.id, "tiny-llm", "Light", max_steps=8)
    job = services.voices.job(ANNA, run.id)
    while job.progress.step < 2:
        assert not job.finished, job.error
        job.wait_for_update(1)
    job.cancel(ANNA)
    stopped = services.voices.version(ANNA, run.id)
    while not stopped.can_resume:
        job.wait(0.05)
        stopped = services.voices.version(ANNA, run.id)
    assert stopped.status == "cancelled" and "Resume goes on" in stopped.error
    with pytest.raises(NotFound):
        services.voices.resume(BEN, run.id)
    services.voices.resume(ANNA, run.id)
    result = services.voices.job(ANNA, run.id).result(WAIT)
    assert result.resumed_from >= 2 and result.steps == 8
