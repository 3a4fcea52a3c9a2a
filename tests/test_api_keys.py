"""API keys: made and revoked by their owner, shown once, kept only as a hash, and checked on
every API call (a revoked key or a disabled person is refused)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.conftest import CHEAP_HASHER, OPERATOR
from webapp.errors import Forbidden, NotFound, Unauthenticated, ValidationError
from webapp.services.api_keys import MAX_ACTIVE_KEYS
from webapp.services.audit import AuditFilter
from webapp.services.team import build_team_services
from webapp.settings import Settings
from webapp.store import ApiKey
from webapp.users import local_user

PASSWORD = "correct horse battery"


@pytest.fixture
def people(team):
    accounts = team.accounts
    ada = accounts.sign_in(
        accounts.add_person(OPERATOR, "ada", PASSWORD, role="admin").login, PASSWORD
    )
    bob = accounts.sign_in(accounts.add_person(OPERATOR, "bob", PASSWORD).login, PASSWORD)
    return ada, bob


def test_a_new_key_is_shown_once_and_only_its_hash_is_kept(team, people):
    _, bob = people
    made = team.api_keys.create(bob, "Open WebUI")
    assert made.key.startswith("atl_") and len(made.key) > 40
    assert made.key.startswith(made.info.prefix)
    with team.store.session() as session:
        row = session.scalar(select(ApiKey))
        stored = {row.hash, row.prefix, row.name}
    assert made.key not in stored
    listed = team.api_keys.keys(bob)
    assert [(k.name, k.prefix, k.active) for k in listed] == [
        ("Open WebUI", made.info.prefix, True)
    ]
    assert not any(made.key in str(value) for value in vars(listed[0]).values())


def test_a_key_names_its_owner(team, people):
    _, bob = people
    key = team.api_keys.create(bob, "script").key
    assert team.api_keys.person_for(key) == bob


def test_a_revoked_key_is_refused_and_the_attempt_recorded(team, people):
    ada, bob = people
    made = team.api_keys.create(bob, "notebook")
    team.api_keys.revoke(bob, made.info.id)
    with pytest.raises(Unauthenticated, match="revoked"):
        team.api_keys.person_for(made.key, "10.0.0.7")
    refused = team.audit.query(ada, AuditFilter(kind="api_key"))
    assert [(e.actor, e.outcome) for e in refused.items] == [("bob", "refused")]


def test_a_wrong_or_missing_key_is_refused(team, people):
    _, bob = people
    key = team.api_keys.create(bob, "script").key
    for wrong in (key[:-1] + ("A" if key[-1] != "A" else "B"), "atl_nope", ""):
        with pytest.raises(Unauthenticated):
            team.api_keys.person_for(wrong)


def test_a_disabled_persons_keys_stop_working(team, people):
    ada, bob = people
    key = team.api_keys.create(bob, "script").key
    team.accounts.set_disabled(ada, "bob", True)
    with pytest.raises(Unauthenticated, match="disabled") as refused:
        team.api_keys.person_for(key)
    assert refused.value.forbidden


def test_a_member_sees_and_revokes_only_their_own_keys(team, people):
    ada, bob = people
    adas = team.api_keys.create(ada, "ada's tool")
    team.api_keys.create(bob, "bob's tool")
    assert [k.name for k in team.api_keys.keys(bob)] == ["bob's tool"]
    with pytest.raises(Forbidden):
        team.api_keys.keys(bob, everyone=True)
    with pytest.raises(NotFound):
        team.api_keys.revoke(bob, adas.info.id)
    assert team.api_keys.person_for(adas.key) == ada


def test_an_admin_sees_and_revokes_everyones_keys(team, people):
    ada, bob = people
    bobs = team.api_keys.create(bob, "bob's tool")
    assert {k.owner_id for k in team.api_keys.keys(ada, everyone=True)} == {"bob"}
    assert not team.api_keys.revoke(ada, bobs.info.id).active
    with pytest.raises(Unauthenticated):
        team.api_keys.person_for(bobs.key)


def test_a_key_needs_a_name_and_a_person_has_a_limited_number(team, people):
    _, bob = people
    with pytest.raises(ValidationError, match="Name the key"):
        team.api_keys.create(bob, "   ")
    for number in range(MAX_ACTIVE_KEYS):
        team.api_keys.create(bob, f"tool {number}")
    with pytest.raises(ValidationError, match="revoke one"):
        team.api_keys.create(bob, "one more")


def test_single_user_mode_accepts_only_the_key_the_settings_set(tmp_path):
    key = "k" * 32
    with_key_settings = Settings(data_dir=tmp_path / "a", api_key=key)
    with_key = build_team_services(with_key_settings, hasher=CHEAP_HASHER)
    without = build_team_services(Settings(data_dir=tmp_path / "b"), hasher=CHEAP_HASHER)
    try:
        assert with_key.api_keys.person_for(key).id == "local"
        with pytest.raises(Unauthenticated, match="not valid"):
            with_key.api_keys.person_for("k" * 31 + "j")
        with pytest.raises(Unauthenticated, match="ATELIER_API_KEY") as off:
            without.api_keys.person_for(key)
        assert off.value.forbidden
        with pytest.raises(ValidationError):
            with_key.api_keys.create(local_user(with_key_settings), "x")  # no per-person keys
    finally:
        with_key.close()
        without.close()
