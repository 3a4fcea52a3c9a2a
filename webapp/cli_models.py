"""`atelier models install | import | remove | installs`: the install service from a
terminal, with the same checks as the Models page and progress on one line.

An access token for a gated repo is read from HF_TOKEN or typed at a hidden prompt
(--ask-token), never taken on the command line, where other users and the shell history
would see it.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time

from webapp.errors import AtelierError
from webapp.formatting import human_bytes
from webapp.settings import Settings

PROGRESS_EVERY_SECONDS = 0.5


def _services(settings: Settings):
    from webapp.cli import terminal_user
    from webapp.services import build_services

    services = build_services(settings, client="cli")
    return services, terminal_user(settings, services)


def progress_line(progress) -> str:
    install = progress.install
    line = (
        f"{install.status:<11} {progress.fraction:6.1%}  {human_bytes(progress.done_bytes)} "
        f"of {human_bytes(install.total_bytes)}"
    )
    if progress.bytes_per_second:
        line += f" at {human_bytes(progress.bytes_per_second)}/s"
        line += f", {_duration(progress.seconds_left)} left"
    return line


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def _token(args: argparse.Namespace) -> str | None:
    if args.ask_token:
        return getpass.getpass("Access token (hidden): ").strip() or None
    return os.environ.get("HF_TOKEN") or None


def _accepted(plan, args: argparse.Namespace) -> bool:
    if not plan.needs_acceptance or args.accept_license:
        return True
    print(f"{plan.repo_id} is under the licence {plan.license}: {plan.license_link}")
    if not sys.stdin.isatty():
        return False  # the service then says to accept it (--accept-license)
    return input("Do you accept this licence? [y/N] ").strip().lower() in ("y", "yes")


def cmd_models_install(settings: Settings, args: argparse.Namespace) -> int:
    services, user = _services(settings)
    installs = services.installs
    try:
        token = _token(args)
        plan = installs.look_up(args.repo_id, user, args.revision, token)
        if not args.json:
            print(
                f"{plan.repo_id} @ {plan.commit[:12]}: {plan.layout}, {len(plan.files)} files, "
                f"{human_bytes(plan.total_bytes)}; {len(plan.skipped)} left out (not "
                f"safetensors, config or tokenizer); licence {plan.license}."
            )
        install = installs.install(
            plan, user, name=args.name, token=token, accept_license=_accepted(plan, args)
        )
        try:
            install = _follow(installs, install.id, user, quiet=args.json)
        except KeyboardInterrupt:
            print(
                "\nStopped. Run the same command again to go on where it stopped.",
                file=sys.stderr,
            )
            return 130  # closing the services keeps the files fetched so far
        if args.json:
            print(json.dumps(_install_dict(install), indent=2))
        elif install.status == "done":
            print(f"Installed {install.name} into {settings.models_dir}.")
        if install.status != "done":
            raise AtelierError(install.error or f"The install ended {install.status}.")
        return 0
    finally:
        services.close()


def _follow(installs, install_id: str, user, quiet: bool):
    """Progress on one terminal line until the install is over."""
    while True:
        progress = installs.progress(install_id, user)
        if not quiet and sys.stderr.isatty():
            print("\r" + progress_line(progress).ljust(79), end="", file=sys.stderr, flush=True)
        if not progress.install.active:
            if not quiet and sys.stderr.isatty():
                print(file=sys.stderr)
            return progress.install
        time.sleep(PROGRESS_EVERY_SECONDS)


def cmd_models_import(settings: Settings, args: argparse.Namespace) -> int:
    services, user = _services(settings)
    try:
        entry = services.local_models.import_path(args.path, user, name=args.name)
    finally:
        services.close()
    shown = {"name": entry.name, "kind": entry.kind, "format": entry.format, "family": entry.family}
    if args.json:
        print(json.dumps(shown, indent=2))
    else:
        print(f"Imported {entry.name}: a {entry.kind} model ({entry.format}, {entry.family}).")
    return 0


def cmd_models_remove(settings: Settings, args: argparse.Namespace) -> int:
    if not args.yes:
        if not sys.stdin.isatty():
            raise AtelierError(f"Deleting {args.name} cannot be undone: add --yes to confirm.")
        answer = input(f"Delete the model {args.name} and its files? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("Nothing was deleted.")
            return 1
    services, user = _services(settings)
    try:
        entry = services.local_models.remove(args.name, user)
    finally:
        services.close()
    print(f"Deleted {entry.name}.")
    return 0


def cmd_models_installs(settings: Settings, args: argparse.Namespace) -> int:
    services, user = _services(settings)
    try:
        rows = services.installs.installs(user)
    finally:
        services.close()
    if args.json:
        print(json.dumps([_install_dict(p.install) for p in rows], indent=2))
        return 0
    if not rows:
        print("No installs.")
    for progress in rows:
        install = progress.install
        print(f"{install.id}  {install.name:<28} {install.source:<40} {progress_line(progress)}")
        if install.error:
            print(f"    {install.error}")
    return 0


def _install_dict(install) -> dict[str, object]:
    return {
        "id": install.id,
        "name": install.name,
        "source": install.source,
        "revision": install.revision,
        "status": install.status,
        "total_bytes": install.total_bytes,
        "license": install.license,
        "error": install.error,
    }


def add_models_commands(models_commands: argparse._SubParsersAction) -> None:
    install = models_commands.add_parser(
        "install", help="install a model from the Hub (or the mirror ATELIER_HF_ENDPOINT names)"
    )
    install.add_argument("repo_id", help="owner/name, e.g. stabilityai/sd-turbo")
    install.add_argument("--revision", help="a branch, tag or commit (default: main)")
    install.add_argument("--name", help="the installed model's name (default: the repo's)")
    install.add_argument(
        "--accept-license", action="store_true", help="accept the model's licence (it is shown)"
    )
    install.add_argument(
        "--ask-token",
        action="store_true",
        help="type an access token for a gated repo at a hidden prompt (default: $HF_TOKEN)",
    )
    install.add_argument("--json", action="store_true")
    install.set_defaults(run=cmd_models_install)

    imported = models_commands.add_parser(
        "import", help="add a model folder or file from inside ATELIER_IMPORT_ROOTS"
    )
    imported.add_argument("path")
    imported.add_argument("--name", help="the model's name (default: the folder or file name)")
    imported.add_argument("--json", action="store_true")
    imported.set_defaults(run=cmd_models_import)

    remove = models_commands.add_parser("remove", help="delete an installed model or LoRA")
    remove.add_argument("name")
    remove.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    remove.set_defaults(run=cmd_models_remove)

    listing = models_commands.add_parser("installs", help="installs under way and finished")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=cmd_models_installs)
