"""A real vLLM (the CPU build, in its own environment: `.ci/vllm`) serving SmolLM2 behind
Atelier's remote text backend: streaming, cancel, turns between people, the context guard,
and a replica killed mid-answer."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from webapp.embedded import DEFAULT_TEXT_MODEL
from webapp.engine import ChatMessage, JobStatus, TextRequest
from webapp.engine.factory import build_engine
from webapp.errors import ValidationError
from webapp.settings import Settings
from webapp.text_servers import parse_text_servers
from webapp.users import User

pytestmark = pytest.mark.vllm
SERVED = "smollm2"
START_SECONDS = 900
ADA, BOB = User("ada", "Ada"), User("bob", "Bob")


def _python() -> str:
    python = os.environ.get("ATELIER_VLLM_PYTHON", "")
    if python and os.path.exists(python):
        return python
    reason = 'ATELIER_VLLM_PYTHON is not set (eval "$(.ci/vllm)" installs vLLM\'s CPU build)'
    if os.environ.get("ATELIER_REQUIRE_VLLM"):
        pytest.fail(f"ATELIER_REQUIRE_VLLM is set but {reason}")
    pytest.skip(f"VLLM TESTS SKIPPED: {reason}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(python: str, model_dir, port: int, log) -> subprocess.Popen:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CPU_OMP_THREADS_BIND": "0-1",
    }
    command = [
        python, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_dir), "--served-model-name", SERVED, "--dtype", "float32",
        "--max-model-len", "2048", "--max-num-seqs", "8", "--port", str(port),
        "--enforce-eager", "-cc.mode=0",
    ]  # fmt: skip
    # A session of its own: vLLM's engine core is a child process, which must go with it.
    return subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def _kill(server: subprocess.Popen) -> None:
    """The server and every process it started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait()


def _ready(url: str, server: subprocess.Popen, log_path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"vLLM exited early:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(2)
    raise TimeoutError(f"vLLM did not answer on {url} in {START_SECONDS} s")


@pytest.fixture(scope="module")
def vllm(embedded_models_dir, tmp_path_factory):
    """Two vLLM servers (replicas) of SmolLM2, started together."""
    python = _python()
    folder = tmp_path_factory.mktemp("vllm")
    ports = [_free_port(), _free_port()]
    logs = [(folder / f"vllm-{port}.log").open("w") for port in ports]
    servers = [
        _start(python, embedded_models_dir / DEFAULT_TEXT_MODEL, port, log)
        for port, log in zip(ports, logs, strict=True)
    ]
    urls = [f"http://127.0.0.1:{port}/v1" for port in ports]
    try:
        for url, server, port in zip(urls, servers, ports, strict=True):
            _ready(url, server, folder / f"vllm-{port}.log")
        yield list(zip(urls, servers, strict=True))
    finally:
        for server in servers:
            if server.poll() is None:
                server.send_signal(signal.SIGINT)
        for server in servers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(30)
            _kill(server)
        for log in logs:
            log.close()


@pytest.fixture
def engine(vllm, tiny_models_dir):
    config = [{"model": "smollm2-served", "served_model": SERVED, "max_concurrency": 2,
               "urls": [url for url, _ in vllm]}]  # fmt: skip
    settings = Settings(
        models_dir=tiny_models_dir, device="cpu", text_servers=parse_text_servers(config)
    )
    built = build_engine(settings)
    yield built
    built.shutdown()


def ask(text: str, tokens: int = 24, **options) -> TextRequest:
    messages = (ChatMessage("user", text),)
    return TextRequest(
        "smollm2-served", messages, max_new_tokens=tokens, temperature=0.0, **options
    )


def direct(url: str, text: str, tokens: int) -> str:
    body = {
        "model": SERVED,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": tokens,
        "temperature": 0.0,
        "seed": 0,
    }
    answer = httpx.post(f"{url}/chat/completions", json=body, timeout=300).json()
    return answer["choices"][0]["message"]["content"]


def test_an_answer_streams_through_atelier_as_vllm_writes_it(engine, vllm):
    job = engine.submit(ask("What is the capital of France?"), ADA)
    pieces = list(job.stream())
    result = job.result(300)
    assert len(pieces) > 1 and "".join(pieces) == result.text
    assert result.text == direct(vllm[0][0], "What is the capital of France?", 24)
    assert result.tokens > 0 and job.first_token_at >= job.submitted_at


def test_the_context_guard_uses_the_servers_own_count(engine):
    with pytest.raises(ValidationError, match="reads at most 2,048") as caught:
        engine.submit(ask("word " * 2100), ADA)
    assert caught.value.field == "input"


def test_cancel_stops_the_answer_and_the_server_goes_on(engine):
    job = engine.submit(ask("Tell me a very long story about a lighthouse.", tokens=400), ADA)
    while len(job.text) < 10:
        job.wait_for_update(60)
    job.cancel(ADA)
    assert job.status == JobStatus.CANCELLED
    assert engine.submit(ask("Say yes.", tokens=4), BOB).result(300).tokens > 0


def test_two_people_take_turns_on_the_servers(engine):
    ada = [engine.submit(ask(f"Count to {n}.", tokens=16), ADA) for n in range(3, 9)]
    bob = engine.submit(ask("Say hello.", tokens=16), BOB)
    bob.result(300)
    for job in ada:
        job.result(300)
    # four slots (two a replica): bob's one job starts before ada's fifth and sixth
    assert bob.started_at < max(job.started_at for job in ada)


def test_a_replica_killed_mid_answer_hands_it_to_the_other(engine, vllm):
    """Last in this file: it stops one of the two servers."""
    story = "Tell me a long story about two friends who sail around the world."
    expected = direct(vllm[1][0], story, 120)
    with ThreadPoolExecutor(4) as pool:
        jobs = list(
            pool.map(lambda i: engine.submit(ask(story, 120), User(f"u{i}", "U")), range(4))
        )
    while not any(len(job.text) > 20 for job in jobs):
        jobs[0].wait_for_update(60)
    _kill(vllm[0][1])  # one replica dies mid-answer
    results = [job.result(600) for job in jobs]
    assert all(result.text == expected for result in results)  # from the start, not twice
