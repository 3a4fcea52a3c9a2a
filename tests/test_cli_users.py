"""`atelier users …`: the server operator manages accounts from a terminal."""

from __future__ import annotations

import io
import json

import pytest

from tests.conftest import CHEAP_HASHER
from webapp.cli import main


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("ATELIER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ATELIER_AUTH_MODE", "accounts")
    monkeypatch.setenv("ATELIER_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "none.toml").write_text("")
    monkeypatch.setattr("webapp.services.accounts.password_hasher", lambda: CHEAP_HASHER)
    return tmp_path


def users(monkeypatch, capsys, *argv, stdin="") -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(["users", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def listing(monkeypatch, capsys) -> dict:
    code, out, _ = users(monkeypatch, capsys, "list", "--json")
    assert code == 0
    return {row["login"]: row for row in json.loads(out)["people"]}


def test_add_reads_a_piped_password_and_list_shows_the_person(env, monkeypatch, capsys):
    code, out, _ = users(
        monkeypatch, capsys, "add", "ada", "--admin", "--display-name", "Ada L.",
        stdin="a good password\n",
    )  # fmt: skip
    assert (code, out.strip()) == (0, "Added ada (admin).")
    row = listing(monkeypatch, capsys)["ada"]
    assert (row["display_name"], row["role"], row["status"]) == ("Ada L.", "admin", "active")
    code, out, _ = users(monkeypatch, capsys, "list")
    assert "ada" in out and "admin" in out and "Ada L." in out


def test_add_asks_twice_on_a_terminal_and_refuses_two_different_passwords(env, monkeypatch, capsys):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    answers = iter(["first password", "second password"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    monkeypatch.setattr("sys.stdin", Terminal())
    assert main(["users", "add", "bob"]) == 2
    assert "The two passwords differ" in capsys.readouterr().err
    assert listing(monkeypatch, capsys) == {}


def test_disable_enable_reset_and_unlock(env, monkeypatch, capsys):
    users(monkeypatch, capsys, "add", "bob", stdin="a good password\n")
    assert users(monkeypatch, capsys, "disable", "bob")[0] == 0
    assert listing(monkeypatch, capsys)["bob"]["status"] == "disabled"
    assert users(monkeypatch, capsys, "enable", "bob")[0] == 0
    code, out, _ = users(monkeypatch, capsys, "reset-password", "bob", stdin="another one!\n")
    assert code == 0 and "New password set for bob" in out
    assert users(monkeypatch, capsys, "unlock", "bob")[1].strip() == "Unlocked bob."


def test_mistakes_are_one_line_with_no_traceback(env, monkeypatch, capsys):
    users(monkeypatch, capsys, "add", "bob", stdin="a good password\n")
    for argv, stdin, expected in [
        (["add", "bob"], "a good password\n", "already signs in as 'bob'"),
        (["add", "Bob Smith"], "a good password\n", "lower-case letters"),
        (["add", "carol"], "", "at least 8 characters"),
        (["disable", "nobody"], "", "No one signs in as 'nobody'"),
    ]:
        code, _, err = users(monkeypatch, capsys, *argv, stdin=stdin)
        assert code == 2 and expected in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1


def test_the_operator_is_named_in_the_audit_log(env, monkeypatch, capsys):
    users(monkeypatch, capsys, "add", "bob", stdin="a good password\n")
    from webapp.services.audit import AuditFilter
    from webapp.services.team import build_team_services
    from webapp.settings import load_settings
    from webapp.users import User

    team = build_team_services(load_settings(), hasher=CHEAP_HASHER)
    try:
        entry = team.audit.query(User("x", "x", True), AuditFilter(kind="person.add")).items[0]
    finally:
        team.close()
    assert entry.actor.startswith("cli:") and entry.client == "cli" and entry.subject == "bob"


def test_a_note_says_when_sign_in_with_accounts_is_off(env, monkeypatch, capsys):
    monkeypatch.setenv("ATELIER_AUTH_MODE", "none")
    code, _, err = users(monkeypatch, capsys, "add", "bob", stdin="a good password\n")
    assert code == 0 and "ATELIER_AUTH_MODE=none" in err


def test_bench_history_reports_my_work_and_session_checks_beside_recent(
    env, monkeypatch, capsys, tiny_models_dir
):
    monkeypatch.setenv("ATELIER_MODELS_DIR", str(tiny_models_dir))
    monkeypatch.setenv("ATELIER_DEVICE", "cpu")
    monkeypatch.setattr("webapp.bench.history.SESSION_CHECKS", 50)
    monkeypatch.setattr("webapp.bench.history.SIGN_INS", 1)
    assert main(["bench", "history", "--images", "30", "--repeats", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["page_items"] == 24 and result["images"] == 30
    for figure in ("my_work_first_page_ms", "session_check_ms", "baseline_recent_first_call_ms"):
        assert 0 < result[figure] < 5000
    assert 0 < result["my_work_page_in_app_first_ms"] < 60_000  # the page itself, in the app
    assert result["thumbnails_of_a_page_of_512px_pictures_cold_ms"] > 0
    assert not (env / "data").exists()  # a throwaway data dir, not the configured one
