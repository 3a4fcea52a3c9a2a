"""`atelier users …`: managing built-in accounts from a terminal. Whoever runs the command is
the server operator, so it acts as an admin; the audit log names them `cli:<os user>`."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from typing import TextIO

from webapp.errors import AtelierError
from webapp.services.people import MAX_PASSWORD, Account
from webapp.settings import Settings
from webapp.users import User


def operator() -> User:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no user name in this environment
        name = "operator"
    return User(id=f"cli:{name}", display_name=f"Server operator ({name})", is_admin=True)


def read_password(login: str, stdin: TextIO | None = None) -> str:
    """Asked twice on a terminal (not echoed); one line from standard input when piped."""
    stdin = stdin or sys.stdin
    if stdin.isatty():
        first = getpass.getpass(f"Password for {login}: ")
        if getpass.getpass("The same password again: ") != first:
            raise AtelierError("The two passwords differ; nothing was changed.")
        return first
    return stdin.readline(MAX_PASSWORD + 2).rstrip("\r\n")


def _status(account: Account) -> str:
    if account.disabled:
        return "disabled"
    if account.locked_until is not None:
        return f"locked until {account.locked_until:%Y-%m-%d %H:%M} UTC"
    return "active" if account.has_password else "no password"


def _with_team(run: Callable) -> Callable[[Settings, argparse.Namespace], int]:
    def command(settings: Settings, args: argparse.Namespace) -> int:
        from webapp.services.team import build_team_services

        team = build_team_services(settings, client="cli")
        try:
            code = run(team.accounts, operator(), args)
        finally:
            team.close()
        if args.users_command in ("add", "reset-password") and settings.auth_mode != "accounts":
            print(
                f"Note: sign-in with these accounts is off (ATELIER_AUTH_MODE={settings.auth_mode})"
                "; set it to accounts to use them.",
                file=sys.stderr,
            )
        return code

    return command


@_with_team
def cmd_add(accounts, caller: User, args: argparse.Namespace) -> int:
    password = read_password(args.name)
    account = accounts.add_person(
        caller,
        args.name,
        password,
        display_name=args.display_name,
        email=args.email,
        role="admin" if args.admin else "member",
    )
    print(f"Added {account.login} ({account.role}).")
    return 0


@_with_team
def cmd_list(accounts, caller: User, args: argparse.Namespace) -> int:
    people = accounts.people(caller)
    if args.json:
        rows = [
            {
                "login": a.login,
                "display_name": a.display_name,
                "email": a.email,
                "role": a.role,
                "status": _status(a),
                "created": a.created.isoformat(),
            }
            for a in people
        ]
        print(json.dumps({"people": rows}, indent=2, ensure_ascii=False))
        return 0
    if not people:
        print("No one yet: add someone with `atelier users add NAME --admin`.")
    for a in people:
        print(f"{a.login:<24} {a.role:<7} {_status(a):<28} {a.display_name}")
    return 0


@_with_team
def cmd_disable(accounts, caller: User, args: argparse.Namespace) -> int:
    account = accounts.set_disabled(caller, args.name, True)
    print(f"Disabled {account.login}; their sessions have ended.")
    return 0


@_with_team
def cmd_enable(accounts, caller: User, args: argparse.Namespace) -> int:
    account = accounts.set_disabled(caller, args.name, False)
    print(f"Enabled {account.login}.")
    return 0


@_with_team
def cmd_reset_password(accounts, caller: User, args: argparse.Namespace) -> int:
    account = accounts.reset_password(caller, args.name, read_password(args.name))
    print(f"New password set for {account.login}; their sessions have ended.")
    return 0


@_with_team
def cmd_unlock(accounts, caller: User, args: argparse.Namespace) -> int:
    account = accounts.unlock(caller, args.name)
    print(f"Unlocked {account.login}.")
    return 0


@_with_team
def cmd_role(accounts, caller: User, args: argparse.Namespace) -> int:
    account = accounts.set_role(caller, args.name, args.role)
    print(f"{account.login} is now {account.role}.")
    return 0


def add_users_parser(commands: argparse._SubParsersAction) -> None:
    users = commands.add_parser("users", help="built-in accounts (the operator acts as admin)")
    actions = users.add_subparsers(dest="users_command", required=True)
    add = actions.add_parser(
        "add", help="add a person; the password is asked twice (or read from stdin)"
    )
    add.add_argument("name", help="the sign-in name, e.g. ada.lovelace")
    add.add_argument("--admin", action="store_true", help="an admin (default: a member)")
    add.add_argument("--display-name", help="the name shown in the app (default: NAME)")
    add.add_argument("--email")
    add.set_defaults(run=cmd_add)
    listing = actions.add_parser("list", help="everyone, with role and status")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=cmd_list)
    role = actions.add_parser("role", help="make someone an admin or a member")
    role.add_argument("name")
    role.add_argument("role", choices=["admin", "member"])
    role.set_defaults(run=cmd_role)
    for name, run, text in [
        ("disable", cmd_disable, "disable an account (ends its sessions)"),
        ("enable", cmd_enable, "enable an account again"),
        ("reset-password", cmd_reset_password, "set a new password (asked, or from stdin)"),
        ("unlock", cmd_unlock, "lift a lockout after failed sign-ins"),
    ]:
        action = actions.add_parser(name, help=text)
        action.add_argument("name")
        action.set_defaults(run=run)
