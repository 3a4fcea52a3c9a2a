"""`atelier voice …`: brand voices from a terminal, through the same service and engine as
the Brand voices page. JSON on standard output, progress on standard error.

Datasets and runs belong to the person `--as` names (the single user by default); approval
and roll back are the operator's, who acts as an admin (the audit log names them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from webapp.cli_documents import person_for, read_limited
from webapp.cli_users import operator
from webapp.errors import AtelierError
from webapp.settings import Settings
from webapp.tuning.dataset import read_upload
from webapp.tuning.presets import PRESETS


def _examples(paths: list[str], settings: Settings) -> list:
    most = settings.document_max_mb * 2**20
    examples = []
    for name in paths:
        path = Path(name)
        examples += read_upload(read_limited(path, most), path.name, most)
    return examples


def _version(run) -> dict[str, Any]:
    return {
        "id": run.id,
        "voice": run.voice,
        "version": run.version,
        "base_model": run.base_model,
        "preset": run.preset,
        "status": run.status,
        "approved": run.approved,
        "live": run.live,
        "error": run.error,
    }


def _follow(job) -> None:
    """Step, loss and time left on standard error until the run ends."""
    shown = None
    while not job.finished:
        details = job.details
        loss = f" · loss {details.losses[-1]:.3f}" if details and details.losses else ""
        line = f"{job.stage or job.status}{loss}"
        if line != shown:
            print(line, file=sys.stderr, flush=True)
            shown = line
        job.wait_for_update(1.0)


def _run(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.services import build_services

    if args.voice_command == "check":
        from webapp.tuning.dataset import build_dataset

        dataset = build_dataset(_examples(args.paths, settings))
        print(json.dumps(_dataset_json(dataset), indent=2, ensure_ascii=False))
        return 0
    services = build_services(settings, client="cli")
    try:
        out = COMMANDS[args.voice_command](services, settings, args)
        print(json.dumps(out, indent=2, ensure_ascii=False, default=str))
        return 0
    finally:
        services.close()


def _dataset_json(dataset) -> dict[str, Any]:
    lengths = dataset.lengths
    return {
        "examples": len(dataset.examples),
        "train": len(dataset.train),
        "held_back": len(dataset.held_back),
        "pairs": dataset.pairs,
        "words": {
            "shortest": lengths.shortest,
            "median": lengths.median,
            "longest": lengths.longest,
        },
        "duplicates": [f"{d.source} repeats {d.first}" for d in dataset.duplicates],
        "notes": list(dataset.notes),
    }


def _train(services, settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    user = person_for(services.team, settings, args.user)
    voices = services.voices
    dataset = voices.save_dataset(user, args.name, _examples(args.data, settings))
    advanced = {
        "rank": args.rank,
        "alpha": args.alpha,
        "learning_rate": args.learning_rate,
        "epochs": args.epochs,
        "max_steps": args.max_steps,
    }
    run = voices.train(user, args.name, dataset.id, args.base, args.preset, **advanced)
    return _wait(services, user, run)


def _resume(services, settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    user = person_for(services.team, settings, args.user)
    return _wait(services, user, services.voices.resume(user, args.id))


def _wait(services, user, run) -> dict[str, Any]:
    job = services.voices.job(user, run.id)
    try:
        _follow(job)
    except KeyboardInterrupt:
        job.cancel(user)
        print(f"Stopped; `atelier voice resume {run.id}` goes on from the last checkpoint.",
              file=sys.stderr)  # fmt: skip
    job.wait()
    services.engine.shutdown()  # the run's last checkpoint and its row are written first
    run = services.voices.version(user, run.id)
    return {**_version(run), "evaluation": run.evaluation}


def _list(services, settings: Settings, args: argparse.Namespace) -> list[dict[str, Any]]:
    who = operator() if args.all else person_for(services.team, settings, args.user)
    return [_version(run) for run in services.voices.versions(who, everyone=args.all)]


def _eval(services, settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    user = person_for(services.team, settings, args.user)
    run = services.voices.find(user, args.name)
    return {**_version(run), "evaluation": run.evaluation}


def _approve(services, settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    admin = operator()
    run = _chosen(services, admin, args)
    return _version(services.voices.approve(admin, run.id))


def _roll_back(services, settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    return _version(services.voices.roll_back(operator(), args.name))


def _export(services, settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    user = operator() if args.user is None else person_for(services.team, settings, args.user)
    run = _chosen(services, user, args)
    name, data = services.voices.export(user, run.id)
    out = Path(args.out or name)
    out.write_bytes(data)
    return {**_version(run), "file": str(out), "bytes": len(data)}


def _chosen(services, user, args: argparse.Namespace):
    """A voice's version by --version, else the one `find` gives (live, else newest)."""
    if args.version is None:
        return services.voices.find(user, args.name)
    for run in services.voices.versions(user, everyone=user.is_admin):
        if run.voice == args.name and run.version == args.version:
            return run
    raise AtelierError(f"There is no version {args.version} of “{args.name}” that you can see.")


COMMANDS = {
    "train": _train,
    "resume": _resume,
    "list": _list,
    "eval": _eval,
    "approve": _approve,
    "roll-back": _roll_back,
    "export": _export,
}


def add_voices_parser(commands: argparse._SubParsersAction) -> None:
    voice = commands.add_parser("voice", help="brand voices tuned on approved texts (JSON)")
    actions = voice.add_subparsers(dest="voice_command", required=True)

    def as_person(action: argparse.ArgumentParser) -> None:
        action.add_argument("--as", dest="user", metavar="NAME", help="act as this person")
        action.set_defaults(run=_run)

    check = actions.add_parser("check", help="counts, lengths and duplicates of a dataset")
    check.add_argument("paths", nargs="+", metavar="PATH")
    check.set_defaults(run=_run)
    train = actions.add_parser("train", help="tune a voice and wait for its evaluation")
    train.add_argument("--base", required=True, help="a text model (transformers folder)")
    train.add_argument("--data", required=True, nargs="+", metavar="PATH",
                       help="TXT, DOCX, Markdown, CSV or JSONL files")  # fmt: skip
    train.add_argument("--name", required=True, help="the voice's name")
    train.add_argument("--preset", choices=list(PRESETS), default="Standard")
    train.add_argument("--rank", type=int)
    train.add_argument("--alpha", type=int)
    train.add_argument("--learning-rate", type=float)
    train.add_argument("--epochs", type=int)
    train.add_argument("--max-steps", type=int, help="stop after this many steps")
    as_person(train)
    resume = actions.add_parser("resume", help="resume a stopped run from its checkpoint")
    resume.add_argument("id", type=int)
    as_person(resume)
    listing = actions.add_parser("list", help="your voices (--all: everyone's, as admin)")
    listing.add_argument("--all", action="store_true")
    as_person(listing)
    evaluate = actions.add_parser("eval", help="a voice's evaluation figures")
    evaluate.add_argument("name")
    as_person(evaluate)
    for name, words in (("approve", "approve a voice for the team (admin)"),
                        ("export", "the adapter and its model card as a ZIP")):  # fmt: skip
        action = actions.add_parser(name, help=words)
        action.add_argument("name")
        action.add_argument("--version", type=int)
        if name == "export":
            action.add_argument("--out", help="the ZIP's path")
        as_person(action)
    roll = actions.add_parser("roll-back", help="make the previous approved version live")
    roll.add_argument("name")
    as_person(roll)
