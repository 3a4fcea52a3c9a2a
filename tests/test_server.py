"""The server's hardening: headers on every page, metrics for the machine itself only, a
Streamlit config that keeps its protections on, and no raw HTML anywhere in the UI code."""

from __future__ import annotations

import ast
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.conftest import REPO
from webapp.http_security import SecurityMiddleware

# -- the middleware, called as the ASGI server would ----------------------------------------


def behind_middleware() -> Starlette:
    async def answer(request):
        return PlainTextResponse("inner")

    paths = ["/", "/_stcore/metrics", "/base/_stcore/metrics", "/_stcore/host-config"]
    return Starlette(
        routes=[Route(path, answer) for path in paths],
        middleware=[Middleware(SecurityMiddleware)],
    )


def get(app, path: str, client: str, headers=()) -> tuple[int, dict[str, str]]:
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"atelier.example"), *headers],
        "client": (client, 50000),
        "server": ("atelier.example", 80),
    }
    # On a thread of its own: Playwright's sync API may hold this thread's event loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, app(scope, receive, send)).result()
    start = sent[0]
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}


def test_every_page_says_it_may_not_be_framed_and_takes_images_from_itself_only():
    status, headers = get(behind_middleware(), "/", "203.0.113.9")
    assert status == 200
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "img-src 'self' data: blob:" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", ["/_stcore/metrics", "/_stcore/metrics/", "/base/_stcore/metrics"])
def test_metrics_are_not_found_from_another_machine(path):
    status, _ = get(behind_middleware(), path, "203.0.113.9")
    assert status == 404


@pytest.mark.parametrize("client", ["127.0.0.1", "::1"])
def test_metrics_answer_on_the_machine_itself(client):
    assert get(behind_middleware(), "/_stcore/metrics", client)[0] == 200


@pytest.mark.parametrize("header", [b"x-forwarded-for", b"forwarded", b"X-Real-IP"])
def test_metrics_passed_on_by_a_proxy_on_the_machine_are_not_found(header):
    forwarded = [(header, b"203.0.113.9")]
    assert get(behind_middleware(), "/_stcore/metrics", "127.0.0.1", forwarded)[0] == 404


def test_host_config_stays_public_for_the_page_to_start():
    assert get(behind_middleware(), "/_stcore/host-config", "203.0.113.9")[0] == 200


# -- the real server, started as `make run` starts it ---------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _outward_address() -> str | None:
    """This machine's address on its network (no packet is sent), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.254.254.254", 9))  # picks the route out; sends nothing
            address = sock.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                (response.read()),
            )
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, b""


@pytest.fixture(scope="module")
def served(tiny_models_dir, tmp_path_factory):
    port = _free_port()
    env = {
        **os.environ,
        "ATELIER_MODELS_DIR": str(tiny_models_dir),
        "ATELIER_DATA_DIR": str(tmp_path_factory.mktemp("served-data")),
        "ATELIER_DEVICE": "cpu",
    }
    command = [sys.executable, "-m", "webapp.cli", "serve", "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--address", "0.0.0.0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.stdout.read()
            assert time.monotonic() < deadline, "atelier serve did not answer"
            try:
                if fetch(f"http://127.0.0.1:{port}/_stcore/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.5)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_the_served_app_sends_the_security_headers(served):
    status, headers, body = fetch(f"http://127.0.0.1:{served}/")
    assert status == 200 and b"<html" in body.lower()
    assert headers["x-frame-options"] == "DENY"
    assert headers["content-security-policy"].startswith("frame-ancestors 'none'")


def test_the_served_metrics_answer_only_on_the_machine_itself(served):
    assert fetch(f"http://127.0.0.1:{served}/_stcore/metrics")[0] == 200
    outward = _outward_address()
    if outward is None:
        pytest.skip("this machine has no network address besides loopback")
    assert fetch(f"http://{outward}:{served}/_stcore/metrics")[0] == 404


def test_the_served_host_config_trusts_no_outside_origin(served):
    status, _, body = fetch(f"http://127.0.0.1:{served}/_stcore/host-config")
    assert status == 200 and json.loads(body)["allowedOrigins"] == []


# -- the Streamlit config and the UI code ---------------------------------------------------

CONFIG = REPO / ".streamlit" / "config.toml"


def config_problems(config: dict) -> list[str]:
    """What in a Streamlit config turns a protection off (explicit values only: the
    defaults of usage statistics and error details are not safe)."""
    server, client = config.get("server", {}), config.get("client", {})
    browser, global_ = config.get("browser", {}), config.get("global", {})
    problems = []
    if server.get("enableXsrfProtection", True) is not True:
        problems.append("server.enableXsrfProtection is off")
    if server.get("enableCORS", True) is not True:
        problems.append("server.enableCORS is off")
    if server.get("enableStaticServing", False) is not False:
        problems.append("server.enableStaticServing is on")
    if server.get("enableAgentApi", False) is not False:
        problems.append("server.enableAgentApi is on")
    if client.get("showErrorDetails") not in ("none", False):
        problems.append("client.showErrorDetails is not 'none'")
    if browser.get("gatherUsageStats") is not False:
        problems.append("browser.gatherUsageStats is not false")
    if global_.get("developmentMode", False) is not False:
        problems.append("global.developmentMode is on")
    return problems


def test_the_streamlit_config_keeps_every_protection_on():
    assert config_problems(tomllib.loads(CONFIG.read_text())) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ("[server]\nenableXsrfProtection = false", "enableXsrfProtection"),
        ("[server]\nenableCORS = false", "enableCORS"),
        ("[server]\nenableStaticServing = true", "enableStaticServing"),
        ('[client]\nshowErrorDetails = "full"', "showErrorDetails"),
        ("[client]\nshowErrorDetails = true", "showErrorDetails"),
        ("[browser]\ngatherUsageStats = true", "gatherUsageStats"),
        ("[browser]", "gatherUsageStats"),  # the default sends them
    ],
)
def test_a_config_that_turns_a_protection_off_is_caught(change, problem):
    base = {
        "server": {},
        "client": {"showErrorDetails": "none"},
        "browser": {"gatherUsageStats": False},
    }
    for section, values in tomllib.loads(change).items():
        base[section] = {**base[section], **values} if values else {}
    assert any(problem in p for p in config_problems(base))


UI_CODE = [
    REPO / "app.py",
    REPO / "serve.py",
    *REPO.glob("app_pages/*.py"),
    *REPO.glob("webapp/ui/*.py"),
]


def html_sinks(source: str) -> list[str]:
    """Calls that put raw HTML on a page: st.html, components' html, unsafe_allow_html."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else None
        name = node.func.id if isinstance(node.func, ast.Name) else name
        if name == "html":
            found.append(f"line {node.lineno}: html()")
        for keyword in node.keywords:
            if keyword.arg == "unsafe_allow_html" and not (
                isinstance(keyword.value, ast.Constant) and keyword.value.value is False
            ):
                found.append(f"line {node.lineno}: unsafe_allow_html")
    return found


def test_the_html_check_finds_every_way_in():
    source = (
        "import streamlit as st\nfrom streamlit import html\n"
        "st.html(x)\nhtml(x)\nst.components.v1.html(x)\n"
        "st.markdown(x, unsafe_allow_html=True)\nst.write(x, unsafe_allow_html=flag)\n"
        "st.markdown(x, unsafe_allow_html=False)\n"
    )
    assert len(html_sinks(source)) == 5


def test_no_page_or_ui_code_puts_raw_html_on_the_screen():
    assert len(UI_CODE) > 10
    found = {
        str(Path(path).relative_to(REPO)): sinks
        for path in UI_CODE
        if (sinks := html_sinks(Path(path).read_text(encoding="utf-8")))
    }
    assert found == {}


def test_the_health_check_says_ok_while_the_engine_serves(served):
    status, headers, body = fetch(f"http://127.0.0.1:{served}/healthz")
    report = json.loads(body)
    assert status == 200 and report["status"] == "ok" and report["problems"] == []
    assert headers["content-type"] == "application/json"
    assert "tiny" not in body.decode()  # counts only, no model names


def test_the_health_check_fails_once_the_engine_has_stopped(services):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from webapp.http_health import health_routes

    client = TestClient(Starlette(routes=health_routes(lambda: services)))
    assert client.get("/healthz").json()["status"] == "ok"
    services.engine.shutdown()
    answer = client.get("/healthz")
    assert answer.status_code == 503 and answer.json()["status"] == "failing"
    assert "shutting down" in " ".join(answer.json()["problems"])


def test_a_dead_worker_is_a_failing_health_check_that_says_to_restart():
    from webapp.http_health import health_report

    state = {"worker_alive": False, "worker_restarts": 3, "stopping": False}
    status, body = health_report({**state, "queued": 2, "running": 0, "models_loaded": []})
    assert status == 503 and body["problems"] == [
        "the engine's worker has stopped; restart Atelier"
    ]


def test_a_health_check_that_cannot_start_the_services_answers_503_without_details():
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from webapp.http_health import health_routes

    def broken():
        raise RuntimeError("/srv/secret/path could not be opened")

    client = TestClient(Starlette(routes=health_routes(broken, "/atelier/")))
    answer = client.get("/atelier/healthz")
    assert answer.status_code == 503 and "/srv/secret" not in answer.text
