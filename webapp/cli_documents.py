"""`atelier doc …`: a document summarised, questioned or its fields extracted from a terminal,
through the same service and engine as the page; JSON on standard output, with page
citations and the passages they open, and the stages on standard error.

The document is read as the person `--as` names (the single user by default) and deleted
again afterwards unless `--keep` is given, so a terminal run leaves nothing behind.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from webapp.doctext.prompts import cite
from webapp.errors import AtelierError
from webapp.settings import Settings
from webapp.users import User, local_user


def read_limited(path: Path, most: int) -> bytes:
    """The file, read no further than the largest document allowed (and one byte more)."""
    try:
        with path.open("rb") as handle:
            return handle.read(most + 1)
    except OSError as error:
        raise AtelierError(f"Cannot read {path}: {error.strerror}.") from None


def person_for(team, settings: Settings, login: str | None) -> User:
    if not login:
        return local_user(settings)
    from sqlalchemy import select

    from webapp.store import Person

    with team.store.session() as session:
        person = session.scalar(select(Person).where(Person.login == login))
        if person is None or person.disabled:
            raise AtelierError(f"No active account signs in as {login!r}.")
        return User(person.id, person.display_name, person.role == "admin")


def _passages(passages, unit_numbers) -> list[dict[str, Any]]:
    wanted = set(unit_numbers)
    return [
        {"pages": list(range(p.unit_start, p.unit_end + 1)), "text": p.text}
        for p in passages
        if wanted & set(range(p.unit_start, p.unit_end + 1))
    ]


def _coverage(result) -> dict[str, Any]:
    c = result.coverage
    return {
        "message": c.message,
        "complete": c.complete,
        "unit": c.unit,
        "total": c.total,
        "read": list(c.read),
        "blank": list(c.blank),
    }


def _follow(job) -> None:
    """The job's stages on standard error while it runs."""
    shown = None
    while not job.finished:
        if job.stage and job.stage != shown:
            print(job.stage, file=sys.stderr, flush=True)
            shown = job.stage
        job.wait_for_update(1.0)


def _run(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.services import build_services
    from webapp.services.documents import DocumentService
    from webapp.services.team import build_team_services

    path = Path(args.path)
    data = read_limited(path, settings.document_max_mb * 2**20)
    team = build_team_services(settings, client="cli")
    services = build_services(settings)
    try:
        user = person_for(team, settings, args.user)
        documents = DocumentService(settings, services.engine, team.store, team.audit, client="cli")
        try:
            info = documents.upload(user, path.name, data, args.password or "")
        except AtelierError as error:
            if error.field == "owner":
                raise AtelierError(
                    f"{error.message} Name a person who has an account with --as NAME."
                ) from None
            raise
        try:
            out = _analyse(documents, user, info, args)
        finally:
            if not args.keep:
                documents.delete(user, info.id)
        out["document"] = {
            "id": info.id if args.keep else None,
            "title": info.title,
            "kind": info.kind,
            "unit": info.unit,
            "count": info.pages,
        }
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    finally:
        services.close()
        team.close()


def _analyse(documents, user: User, info, args: argparse.Namespace) -> dict[str, Any]:
    unit = info.unit
    if args.doc_command == "summarize":
        run = documents.summarize(user, info.id, args.length, args.model)
    elif args.doc_command == "ask":
        run = documents.ask(user, info.id, args.question, args.model)
    else:
        fields = [f.strip() for f in args.fields.split(",")] if args.fields else None
        run = documents.extract(user, info.id, fields, args.model)
    if run.job is not None:
        _follow(run.job)
    result = run.result()
    passages = documents.passages(user, info.id)
    model = run.job.request.model if run.job is not None else None
    common = {"model": model, "tokens": result.tokens, "seconds": round(result.seconds, 2)}
    if args.doc_command == "summarize":
        points = [
            {
                "text": p.text,
                "pages": list(p.units),
                "cites": cite(unit, p.units),
                "passages": _passages(passages, p.units),
            }
            for p in result.points
        ]
        return {"summary": points, "coverage": _coverage(result), **common}
    if args.doc_command == "ask":
        return {
            "question": result.question,
            "answer": result.answer,
            "found": result.found,
            "citations": [
                {"page": c.unit, "passages": _passages(passages, [c.unit])}
                for c in result.citations
            ],
            "sources": [
                {"pages": list(range(p.unit_start, p.unit_end + 1)), "text": p.text}
                for p in passages
                if p.position in set(result.sources)
            ],
            **common,
        }
    items = [
        {
            "field": i.field,
            "value": i.value,
            "pages": list(i.units),
            "passage": next((p.text for p in passages if p.position == i.passage), None),
        }
        for i in result.items
    ]
    return {"fields": list(result.fields), "items": items, "coverage": _coverage(result), **common}


def add_documents_parser(commands: argparse._SubParsersAction) -> None:
    doc = commands.add_parser("doc", help="summarise, question or extract a document (JSON)")
    actions = doc.add_subparsers(dest="doc_command", required=True)

    def common(action: argparse.ArgumentParser) -> None:
        action.add_argument("--model", help="a text model (default: the embedded one)")
        action.add_argument("--password", help="the password of a protected PDF")
        action.add_argument("--as", dest="user", metavar="NAME", help="act as this person")
        action.add_argument("--keep", action="store_true", help="keep the document afterwards")
        action.set_defaults(run=_run)

    summarize = actions.add_parser("summarize", help="a whole-document summary with citations")
    summarize.add_argument("path")
    summarize.add_argument("--length", choices=["short", "medium", "long"], default="medium")
    common(summarize)
    ask = actions.add_parser("ask", help="a question answered with citations")
    ask.add_argument("path")
    ask.add_argument("question")
    common(ask)
    extract = actions.add_parser("extract", help="fields with the page of each item")
    extract.add_argument("path")
    extract.add_argument(
        "--fields",
        help="comma-separated (default: parties, dates, amounts, obligations, "
        "termination, renewal)",
    )
    common(extract)
