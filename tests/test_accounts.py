"""Built-in accounts: argon2 hashes, the same answer for a wrong password and an unknown
name, lockout, session tokens, and admin-only operations (on SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import stat

import pytest
from argon2 import PasswordHasher

from tests.conftest import CHEAP_HASHER
from webapp.auth import (
    SECRET_FILE,
    InvalidSession,
    SessionClaims,
    load_or_create_secret,
    read_session,
    sign_session,
)
from webapp.errors import Forbidden, NotFound, SettingsError, SignInFailed, ValidationError
from webapp.services.audit import AuditFilter
from webapp.store import Person
from webapp.users import User

PASSWORD = "correct horse battery"


@pytest.fixture
def ada(team, operator) -> User:
    team.accounts.add_person(operator, "ada", PASSWORD, display_name="Ada", role="admin")
    return team.accounts.sign_in("ada", PASSWORD)


@pytest.fixture
def bob(team, operator, ada) -> User:
    team.accounts.add_person(operator, "bob", PASSWORD, display_name="Bob")
    return team.accounts.sign_in("bob", PASSWORD)


def sign_in_error(team, login: str, password: str) -> SignInFailed:
    with pytest.raises(SignInFailed) as caught:
        team.accounts.sign_in(login, password)
    return caught.value


def audit_log(team, **filters):
    admin = User("auditor", "Auditor", is_admin=True)
    return team.audit.query(admin, AuditFilter(**filters), per_page=200).items


def test_passwords_are_kept_only_as_argon2id_hashes(team, ada):
    with team.store.session() as session:
        stored = session.get(Person, "ada").password_hash
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert team.accounts.sign_in("ADA ", PASSWORD) == ada  # names are not case-sensitive


class CountingHasher(PasswordHasher):
    def __init__(self):
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.verified: list[str] = []

    def verify(self, hash, password):
        self.verified.append(hash)
        return super().verify(hash, password)


def test_a_wrong_password_and_an_unknown_name_get_the_same_answer_and_work(make_team, operator):
    hasher = CountingHasher()
    team = make_team()
    team.accounts._hasher = hasher  # the same cost, counted
    team.accounts.add_person(operator, "ada", PASSWORD)

    wrong = sign_in_error(team, "ada", "not the password")
    unknown = sign_in_error(team, "nobody", "not the password")

    assert wrong.message == unknown.message == "Wrong name or password."
    assert len(hasher.verified) == 2  # one argon2 check each, an unknown name against a dummy
    assert all(h.startswith("$argon2id$v=19$m=1024,t=1,p=1$") for h in hasher.verified)
    failures = audit_log(team, kind="sign_in", outcome="failed")
    assert sorted(e.actor for e in failures) == ["ada", "nobody"]


def test_repeated_wrong_passwords_lock_the_account_until_the_time_is_up(make_team, operator, clock):
    team = make_team(lockout_attempts=3, lockout_minutes=15)
    team.accounts.add_person(operator, "ada", PASSWORD)
    for _ in range(2):
        assert sign_in_error(team, "ada", "guess").message == "Wrong name or password."
    locked = sign_in_error(team, "ada", "guess")
    assert "locked for 15 more minutes" in locked.message

    clock.advance(minutes=10)
    assert "locked for 5 more minutes" in sign_in_error(team, "ada", PASSWORD).message

    clock.advance(minutes=5, seconds=1)
    assert team.accounts.sign_in("ada", PASSWORD).id == "ada"
    assert audit_log(team, kind="sign_in", outcome="refused")


def test_an_admin_lifts_a_lockout(make_team, operator):
    team = make_team(lockout_attempts=2)
    team.accounts.add_person(operator, "ada", PASSWORD)
    for _ in range(2):
        sign_in_error(team, "ada", "guess")
    assert team.accounts.people(operator)[0].locked_until is not None
    team.accounts.unlock(operator, "ada")
    assert team.accounts.sign_in("ada", PASSWORD).id == "ada"
    assert audit_log(team, kind="person.unlock")[0].subject == "ada"


def test_a_disabled_person_cannot_sign_in_and_is_told_so_only_with_the_right_password(
    team, operator, ada, bob
):
    team.accounts.set_disabled(ada, "bob", True)
    assert sign_in_error(team, "bob", "guess").message == "Wrong name or password."
    assert "disabled" in sign_in_error(team, "bob", PASSWORD).message
    team.accounts.set_disabled(ada, "bob", False)
    assert team.accounts.sign_in("bob", PASSWORD) == bob


def test_a_person_with_no_password_cannot_sign_in(team, operator):
    team.accounts.user_for_identity("carol@example.com")  # came through the sign-on
    assert sign_in_error(team, "carol@example.com", "").message == "Wrong name or password."


# -- session tokens ------------------------------------------------------------------------


def test_a_session_token_names_its_person_until_it_expires(make_team, ada, clock):
    team = make_team(session_hours=12)
    token = team.accounts.issue_session(ada)
    assert team.accounts.check_session(token) == ada
    clock.advance(hours=11, minutes=59)
    assert team.accounts.check_session(token) == ada
    clock.advance(minutes=2)
    assert team.accounts.check_session(token) is None
    expired = audit_log(team, kind="session")[0]
    assert (expired.actor, expired.detail) == ("ada", "an expired session token")


def test_a_tampered_token_is_refused(team, ada, bob):
    token = team.accounts.issue_session(ada)
    prefix, person, issued, version, signature = token.split(".")
    bobs = team.accounts.issue_session(bob).split(".")[1]
    forged = [
        f"{prefix}.{bobs}.{issued}.{version}.{signature}",  # another person's id
        f"{prefix}.{person}.{int(issued) + 3600}.{version}.{signature}",  # a later time
        f"{prefix}.{person}.{issued}.{int(version) + 1}.{signature}",
        token[:-2] + ("AA" if not token.endswith("AA") else "BB"),  # the signature
        token + ".x",
        token.replace("v1.", "v2.", 1),
        "",
        "not a token",
        "é" * 20,
        "a." * 600,
    ]
    for candidate in forged:
        assert team.accounts.check_session(candidate) is None, candidate
    refused = audit_log(team, kind="session", outcome="refused")
    assert len(refused) == len(forged) - 1  # all but the empty one: no cookie at all
    assert all(e.actor == "unknown" for e in refused)
    assert any("wrong signature" in e.detail for e in refused)


def test_a_token_from_another_server_is_refused(make_team, tmp_path, ada):
    token = make_team().accounts.issue_session(ada)
    elsewhere = make_team(data_dir=tmp_path / "elsewhere")  # its own secret
    assert elsewhere.accounts.check_session(token) is None


@pytest.mark.parametrize("revoke", ["reset_password", "disable", "sign_out_everywhere"])
def test_resetting_a_password_disabling_or_signing_out_ends_every_session(team, ada, bob, revoke):
    tokens = [team.accounts.issue_session(bob) for _ in range(2)]
    if revoke == "reset_password":
        team.accounts.reset_password(ada, "bob", "a brand new password")
    elif revoke == "disable":
        team.accounts.set_disabled(ada, "bob", True)
    else:
        team.accounts.sign_out_everywhere(bob)
    assert [team.accounts.check_session(t) for t in tokens] == [None, None]


def test_a_role_change_applies_to_the_next_check_of_a_session(team, ada, bob):
    token = team.accounts.issue_session(bob)
    team.accounts.set_role(ada, "bob", "admin")
    assert team.accounts.check_session(token).is_admin


def test_changing_my_password_ends_my_other_sessions_and_keeps_this_one(team, bob):
    other = team.accounts.issue_session(bob)
    with pytest.raises(ValidationError, match="current password"):
        team.accounts.change_password(bob, "wrong", "another good password")
    mine = team.accounts.change_password(bob, PASSWORD, "another good password")
    assert team.accounts.check_session(other) is None
    assert team.accounts.check_session(mine) == bob
    assert team.accounts.sign_in("bob", "another good password") == bob


def test_the_signing_secret_is_made_once_readable_only_by_the_server(make_team, tmp_path, ada):
    token = make_team().accounts.issue_session(ada)
    secret_file = tmp_path / "data" / SECRET_FILE
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert make_team().accounts.check_session(token) == ada  # a restart keeps sessions


def test_a_damaged_or_too_open_secret_file_is_dealt_with(tmp_path):
    load_or_create_secret(tmp_path)
    os.chmod(tmp_path / SECRET_FILE, 0o644)
    load_or_create_secret(tmp_path)
    assert stat.S_IMODE((tmp_path / SECRET_FILE).stat().st_mode) == 0o600
    (tmp_path / SECRET_FILE).write_text("short")
    with pytest.raises(SettingsError, match="Delete it"):
        load_or_create_secret(tmp_path)


def test_a_token_issued_in_the_future_is_refused():
    token = sign_session(b"k" * 32, SessionClaims("ada", 10_000, 1))
    assert read_session(b"k" * 32, token, now=10_000, max_age=60).person_id == "ada"
    with pytest.raises(InvalidSession, match="future"):
        read_session(b"k" * 32, token, now=9_000, max_age=60)


# -- admins --------------------------------------------------------------------------------

ADMIN_CALLS = {
    "add_person": lambda a, caller: a.add_person(caller, "eve", PASSWORD),
    "people": lambda a, caller: a.people(caller),
    "set_disabled": lambda a, caller: a.set_disabled(caller, "ada", True),
    "reset_password": lambda a, caller: a.reset_password(caller, "ada", "hijacked password"),
    "set_role": lambda a, caller: a.set_role(caller, "bob", "admin"),
    "unlock": lambda a, caller: a.unlock(caller, "ada"),
}


@pytest.mark.parametrize("call", ADMIN_CALLS, ids=list(ADMIN_CALLS))
def test_every_admin_operation_refuses_a_member_and_records_it(team, ada, bob, call):
    with pytest.raises(Forbidden, match="Only an admin"):
        ADMIN_CALLS[call](team.accounts, bob)
    refused = audit_log(team, actor="bob", outcome="refused")
    assert len(refused) == 1 and refused[0].kind.startswith("person.")
    assert team.accounts.sign_in("ada", PASSWORD) == ada  # nothing changed


def test_admin_operations_are_recorded_with_who_and_whom(team, operator, ada, bob):
    team.accounts.set_role(ada, "bob", "admin")
    team.accounts.set_disabled(ada, "bob", True)
    kinds = [(e.actor, e.kind, e.subject) for e in audit_log(team, actor="ada")]
    assert ("ada", "person.role", "bob") in kinds and ("ada", "person.disable", "bob") in kinds
    assert audit_log(team, kind="person.add")[-1].actor == operator.id


@pytest.mark.parametrize(
    ("login", "message"),
    [
        ("A", "2 to 32 characters"),
        ("Ada", "lower-case"),
        ("1ada", "starting with a letter"),
        ("ada lovelace", "lower-case"),
        ("<b>x</b>", "lower-case"),
        ("a" * 33, "2 to 32"),
    ],
)
def test_a_bad_sign_in_name_is_refused_with_the_rule(team, operator, login, message):
    with pytest.raises(ValidationError, match=message) as caught:
        team.accounts.add_person(operator, login, PASSWORD)
    assert caught.value.field == "login"


@pytest.mark.parametrize(
    ("password", "message"),
    [("short", "at least 8"), ("        ", "not blank"), ("bobbybob", "not the sign-in name")],
)
def test_a_weak_password_is_refused(team, operator, password, message):
    with pytest.raises(ValidationError, match=message):
        team.accounts.add_person(operator, "bobbybob", password)


def test_a_name_is_taken_once(team, operator, ada):
    with pytest.raises(ValidationError, match="already signs in as 'ada'"):
        team.accounts.add_person(operator, "ada", PASSWORD)


def test_the_last_admin_stays_an_admin_and_nobody_disables_themselves(team, operator, ada, bob):
    with pytest.raises(ValidationError, match="disable your own"):
        team.accounts.set_disabled(ada, "ada", True)
    with pytest.raises(ValidationError, match="last admin"):
        team.accounts.set_role(operator, "ada", "member")
    with pytest.raises(ValidationError, match="last admin"):
        team.accounts.set_disabled(operator, "ada", True)
    with pytest.raises(NotFound, match="No one signs in as 'zed'"):
        team.accounts.unlock(operator, "zed")


# -- the company's sign-on and the proxy ----------------------------------------------------


def test_the_first_sign_on_makes_the_person_and_admin_emails_make_admins(make_team):
    team = make_team(auth_mode="oidc", admin_emails=("boss@example.com",))
    member = team.accounts.user_for_identity("Dev@Example.com", "Dev", "dev@example.com")
    boss = team.accounts.user_for_identity("boss@example.com", "<i>Boss</i>")
    assert (member.id, member.is_admin) == ("dev@example.com", False)
    assert (boss.display_name, boss.is_admin) == ("<i>Boss</i>", True)
    assert team.accounts.user_for_identity("dev@example.com") == member  # the same person


def test_a_disabled_sign_on_person_is_refused(make_team, operator):
    team = make_team(auth_mode="oidc")
    team.accounts.user_for_identity("dev@example.com")
    team.accounts.set_disabled(operator, "dev@example.com", True)
    with pytest.raises(SignInFailed, match="disabled"):
        team.accounts.user_for_identity("dev@example.com")


def test_the_proxy_header_signs_in_only_from_the_proxy(make_team):
    team = make_team(auth_mode="proxy", trusted_proxies=("10.0.0.5/32",))
    headers = {"x-forwarded-user": "dana"}
    assert team.accounts.sign_in_proxy(headers, "10.0.0.5").id == "dana"
    assert team.accounts.sign_in_proxy({}, "10.0.0.5") is None
    with pytest.raises(Forbidden, match="only from the company's sign-in proxy"):
        team.accounts.sign_in_proxy(headers, "10.0.0.99")
    forged = audit_log(team, kind="sign_in", outcome="refused")
    assert forged[0].actor == "address 10.0.0.99"


def test_tests_use_cheap_hashing_and_the_app_uses_argon2_defaults():
    from webapp.auth import password_hasher

    assert password_hasher().memory_cost >= 65536 > CHEAP_HASHER.memory_cost
