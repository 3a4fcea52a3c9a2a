"""`atelier bench …`: benchmarks, JSON out. Every figure sits beside its baseline measured
in the same run; the engine and text benches run each system in a fresh process."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from pathlib import Path

from webapp.errors import ValidationError
from webapp.settings import Settings

APP_FILE = Path(__file__).resolve().parent.parent / "app.py"


def _pages_as_the_single_user(settings: Settings) -> Settings:
    """The page benches drive the pages through AppTest, which has no browser to sign in
    with: they run in single-user mode, as the local user, whatever the setting (their
    own processes and the app's settings too, through the environment)."""
    os.environ["ATELIER_AUTH_MODE"] = "none"
    return replace(settings, auth_mode="none")


def cmd_bench_load(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.bench.load import bench_load

    print(json.dumps(bench_load(settings, args.model, args.warm_calls), indent=2))
    return 0


def cmd_bench_engine(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.bench.engine import EngineBench, bench_engine

    bench = EngineBench(
        image_model=args.image_model or None,
        text_model=args.text_model or None,
        users=args.users,
        size=args.size,
        steps=args.steps,
        text_users=args.text_users,
        new_tokens=args.new_tokens,
        repeats=args.repeats,
        speedups=args.speedups,
        mixed=args.mixed or args.mixed_only,
        mixed_only=args.mixed_only,
        mixed_text_users=args.mixed_text_users,
        compare_tree=Path(args.compare_tree) if args.compare_tree else None,
    )
    print(json.dumps(bench_engine(settings, bench), indent=2))
    return 0


def cmd_bench_text(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.bench.text import bench_text

    settings = _pages_as_the_single_user(settings)
    compare = Path(args.compare_tree) if args.compare_tree else None
    figures = bench_text(
        settings,
        args.model,
        args.users,
        args.new_tokens,
        args.repeats,
        APP_FILE,
        compare,
        args.continuous_batching,
    )
    print(json.dumps(figures, indent=2))
    return 0


def cmd_bench_dtype(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.bench.text import bench_dtype

    print(json.dumps(bench_dtype(settings, args.model, args.new_tokens), indent=2))
    return 0


def cmd_bench_churn(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.bench.churn import bench_churn

    figures = bench_churn(settings, args.people, args.minutes * 60, args.step_seconds)
    print(json.dumps(figures, indent=2))
    return 0


def cmd_bench_studio(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.bench.studio import bench_studio

    settings = _pages_as_the_single_user(settings)
    figures = bench_studio(settings, args.model, args.steps, args.repeats, APP_FILE)
    print(json.dumps(figures, indent=2))
    return 0


def cmd_bench_history(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.bench.history import bench_history

    result = bench_history(settings, args.images, args.repeats, args.database_url, APP_FILE)
    print(json.dumps(result, indent=2))
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


def cmd_bench_install(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.bench.install import bench_install

    result = bench_install(settings, args.megabytes, args.shards, args.repeats, args.port)
    print(json.dumps(result, indent=2))
    return 0


def cmd_bench_tuning(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.bench.tuning import bench_tuning

    result = bench_tuning(
        settings,
        args.model,
        examples=args.examples,
        steps=args.steps,
        batch_size=args.batch_size,
        repeats=args.repeats,
        new_tokens=args.new_tokens,
        users=args.users,
        parts=tuple(args.parts),
    )
    print(json.dumps(result, indent=2))
    return 0


def cmd_bench_remote(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.bench.remote import RemoteBench, bench_remote

    if not args.image_model and not args.text_url:
        raise ValidationError("Nothing to measure: name an --image-model, a --text-url, or both.")
    bench = RemoteBench(
        image_model=args.image_model,
        users=args.users,
        size=args.size,
        steps=args.steps,
        ray_address=args.ray_address,
        ray_cpus=args.ray_cpus,
        ray_replicas=args.ray_replicas,
        ray_gpus_per_replica=args.ray_gpus_per_replica,
        ray_cpus_per_replica=args.ray_cpus_per_replica,
        text_url=args.text_url,
        served_model=args.served_model,
        text_users=args.text_users,
        new_tokens=args.new_tokens,
        repeats=args.repeats,
    )
    print(json.dumps(bench_remote(settings, bench), indent=2))
    return 0


def cmd_bench_api(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.bench.api import ApiBench, bench_api

    bench = ApiBench(
        image_model=args.image_model or None,
        text_model=args.text_model or None,
        clients=args.clients,
        size=args.size,
        new_tokens=args.new_tokens,
        repeats=args.repeats,
    )
    print(json.dumps(bench_api(settings, bench), indent=2))
    return 0


def _compare_tree(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--compare-tree",
        help="also run the engine of another checkout (e.g. the last release), side by side",
    )


def add_bench_parser(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser("bench", help="benchmarks (JSON out)")
    bench_commands = bench.add_subparsers(dest="bench_command", required=True)

    load = bench_commands.add_parser("load", help="cold load and warm get() of one model")
    load.add_argument("--model", required=True)
    load.add_argument("--warm-calls", type=int, default=2000)
    load.set_defaults(run=cmd_bench_load)

    engine = bench_commands.add_parser(
        "engine", help="the engine against plain libraries, each in a fresh process"
    )
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
    engine.add_argument(
        "--mixed", action="store_true", help="also text streams while images are made"
    )
    engine.add_argument("--mixed-text-users", type=int, default=4)
    engine.add_argument(
        "--mixed-only", action="store_true", help="only the mixed figures (images with text)"
    )
    _compare_tree(engine)
    engine.set_defaults(run=cmd_bench_engine)

    text = bench_commands.add_parser(
        "text", help="text via the engine and the page vs generate, each in a fresh process"
    )
    text.add_argument("--model", default="smollm2-135m-instruct")
    text.add_argument("--users", type=int, default=8)
    text.add_argument("--new-tokens", type=int, default=128)
    text.add_argument("--repeats", type=int, default=3)
    _compare_tree(text)
    text.add_argument(
        "--continuous-batching",
        action="store_true",
        help="also transformers' own continuous-batching manager (slow on a CPU)",
    )
    text.set_defaults(run=cmd_bench_text)

    remote = bench_commands.add_parser(
        "remote",
        help="Ray Serve images vs the local lane; Atelier's remote text vs the server direct",
    )
    remote.add_argument("--image-model", default="tiny-sd", help="'' to skip images")
    remote.add_argument("--users", type=int, default=8, help="people making an image at once")
    remote.add_argument("--size", type=int, default=64)
    remote.add_argument("--steps", type=int, default=10)
    remote.add_argument(
        "--ray-address", default="", help="host:port of a Ray head (default: a local cluster)"
    )
    remote.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local cluster")
    remote.add_argument("--ray-replicas", type=int, default=2)
    remote.add_argument("--ray-gpus-per-replica", type=float, default=0.0)
    remote.add_argument("--ray-cpus-per-replica", type=float, default=0.5)
    remote.add_argument(
        "--text-url", default="", help="an OpenAI-compatible server's /v1 URL (vLLM)"
    )
    remote.add_argument("--served-model", default="", help="the model name the server knows")
    remote.add_argument("--text-users", type=int, default=8)
    remote.add_argument("--new-tokens", type=int, default=64)
    remote.add_argument("--repeats", type=int, default=3)
    remote.set_defaults(run=cmd_bench_remote)

    dtype = bench_commands.add_parser(
        "dtype", help="the text tools' answers in float32 and bfloat16, side by side"
    )
    dtype.add_argument("--model", default="smollm2-135m-instruct")
    dtype.add_argument("--new-tokens", type=int, default=64)
    dtype.set_defaults(run=cmd_bench_dtype)

    churn = bench_commands.add_parser(
        "churn", help="many people against the engine with a slow stand-in pipeline"
    )
    churn.add_argument("--people", type=int, default=50)
    churn.add_argument("--minutes", type=float, default=10)
    churn.add_argument("--step-seconds", type=float, default=0.05)
    churn.set_defaults(run=cmd_bench_churn)

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

    install = bench_commands.add_parser(
        "install",
        help="install from a Hub on 127.0.0.1 vs a plain snapshot_download; progress's cost",
    )
    install.add_argument("--megabytes", type=int, default=512, help="size of the random model")
    install.add_argument("--shards", type=int, default=4)
    install.add_argument("--repeats", type=int, default=3)
    install.add_argument("--port", type=int, default=0, help="the test Hub's port (0: any)")
    install.set_defaults(run=cmd_bench_install)
    api = bench_commands.add_parser(
        "api", help="N people through the API vs the same services called directly"
    )
    api.add_argument("--image-model", default="tiny-sd", help="'' to skip images")
    api.add_argument("--text-model", default="tiny-llm", help="'' to skip text")
    api.add_argument("--clients", type=int, default=16)
    api.add_argument("--size", type=int, default=512)
    api.add_argument("--new-tokens", type=int, default=128)
    api.add_argument("--repeats", type=int, default=3)
    api.set_defaults(run=cmd_bench_api)
    tuning = bench_commands.add_parser(
        "tuning", help="training lane vs a plain PEFT loop, serving with a voice vs the base"
    )
    tuning.add_argument("--model", default="smollm2-135m-instruct")
    tuning.add_argument("--examples", type=int, default=48)
    tuning.add_argument("--steps", type=int, default=12)
    tuning.add_argument("--batch-size", type=int, default=4)
    tuning.add_argument("--repeats", type=int, default=3)
    tuning.add_argument("--new-tokens", type=int, default=48)
    tuning.add_argument("--users", type=int, default=4)
    parts = ("training", "serving", "interactive")  # webapp.bench.tuning.PARTS
    tuning.add_argument("--parts", nargs="+", choices=parts, default=list(parts))
    tuning.set_defaults(run=cmd_bench_tuning)
