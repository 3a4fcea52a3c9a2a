"""The whole app in a real browser: Debian's Chromium driven by Playwright for Python."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import REPO
from webapp.users import User

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("ATELIER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _browser_missing_reason() -> str | None:
    if not os.path.exists(CHROMIUM):
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install playwright)"
    return None


@pytest.fixture(scope="session")
def browser():
    reason = _browser_missing_reason()
    if reason:
        if os.environ.get("ATELIER_REQUIRE_BROWSER"):
            pytest.fail(f"ATELIER_REQUIRE_BROWSER is set but {reason}")
        pytest.skip(f"BROWSER TESTS SKIPPED: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the app exited early: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"the app did not answer on {url} within {timeout}s")


@contextmanager
def serving(tiny_models_dir, tmp_path_factory, **settings):
    """The app as `make run` starts it (`atelier serve`, which becomes serve.py's st.App
    server) on a free port, with its own data dir; `settings` are more ATELIER_* values."""
    models = tmp_path_factory.mktemp("browser-models")
    shutil.copytree(tiny_models_dir, models, dirs_exist_ok=True, symlinks=True)
    port = _free_port()
    env = {
        **os.environ,
        "ATELIER_MODELS_DIR": str(models),
        "ATELIER_DATA_DIR": str(tmp_path_factory.mktemp("browser-data")),
        "ATELIER_DEVICE": "cpu",
        "ATELIER_LIBRARY_DIR": str(REPO / "library"),
        **{f"ATELIER_{key.upper()}": value for key, value in settings.items()},
    }
    command = [sys.executable, "-m", "webapp.cli", "serve", "--port", str(port)]
    log = tmp_path_factory.mktemp("server-log") / "server.log"
    with log.open("w") as output:  # a file, not a pipe: a pipe nobody reads fills and stalls
        server = subprocess.Popen(
            [*command, "--address", "127.0.0.1"],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, server, log)
        yield url, env
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.fixture(scope="session")
def app_server(tiny_models_dir, tmp_path_factory):
    """The app in single-user mode with the tiny models: its address and environment."""
    with serving(tiny_models_dir, tmp_path_factory) as served:
        yield served


@pytest.fixture(scope="session")
def app_url(app_server):
    return app_server[0]


@pytest.fixture
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(60_000)
    yield opened
    context.close()


def test_home_shows_what_atelier_is_and_the_ready_models(page, app_url):
    page.goto(app_url)
    page.get_by_role("heading", name="Atelier", exact=True).wait_for()
    for words in (
        "Nothing you type or make leaves the building",
        "Tiny LLM (test model)",
        "Tiny SD (test model)",
        "Admins: the device, its memory and every model's details",
    ):
        page.get_by_text(words).wait_for()


def test_models_page_lists_models_and_loads_one(page, app_url):
    page.goto(app_url)
    page.get_by_role("link", name="Models").click()
    page.get_by_role("heading", name="Models", exact=True).wait_for()
    page.get_by_text("Memory used by loaded models").wait_for()
    page.get_by_role("gridcell", name="tiny-sd", exact=True, include_hidden=True).wait_for(
        state="attached"
    )
    page.get_by_role("gridcell", name="tiny-llm", exact=True, include_hidden=True).wait_for(
        state="attached"
    )
    page.get_by_role("button", name="Load", exact=True).click()
    page.get_by_text(re.compile(r"Loaded tiny-(llm|sd|embed) in")).wait_for()
    if os.environ.get("ATELIER_SCREENSHOTS"):
        page.screenshot(path=os.path.join(os.environ["ATELIER_SCREENSHOTS"], "models.png"))


def test_queue_page_shows_the_queue_and_device(page, app_url):
    page.goto(app_url)
    page.get_by_role("link", name="Queue").click()
    page.get_by_role("heading", name="Queue", exact=True).wait_for()
    page.get_by_text("Waiting", exact=True).wait_for()
    page.get_by_text("No jobs yet").wait_for()
    page.get_by_text("Device memory in use").wait_for()


def test_run_a_text_tool_and_see_its_answer(page, app_url):
    page.goto(app_url)
    page.get_by_role("link", name="Text tools").click()
    page.get_by_text("Pick a tool.").wait_for()
    page.locator(".st-key-open-summarise button").click()
    page.get_by_role("heading", name="Summarise").wait_for()
    page.get_by_label("Text to summarise").fill("Anna books the room; Ben sends the agenda.")
    page.get_by_role("button", name="Run").click()
    page.get_by_role("button", name="Download .docx").wait_for()
    page.get_by_text("the same seed under Advanced writes this answer again").wait_for()
    if os.environ.get("ATELIER_SCREENSHOTS"):
        page.wait_for_timeout(3000)
        page.screenshot(path=os.path.join(os.environ["ATELIER_SCREENSHOTS"], "text-tool.png"))


def test_generate_an_image_and_see_it_appear(page, app_url):
    page.goto(app_url)
    page.get_by_role("link", name="Image Studio").click()
    page.get_by_label("What should the picture show?").fill("a lighthouse at dusk")
    page.get_by_label("Seed (a number repeats a picture exactly)").fill("3")
    page.get_by_role("button", name="Generate").click()
    page.get_by_text("image(s) in").wait_for()
    page.get_by_role("button", name="Download").first.wait_for()
    page.get_by_text("Your recent images").wait_for()
    assert page.locator("img").count() >= 2  # the result and its copy in recent images
    if os.environ.get("ATELIER_SCREENSHOTS"):
        page.screenshot(path=os.path.join(os.environ["ATELIER_SCREENSHOTS"], "studio.png"))


def open_studio_with_many_steps(page, app_url, prompt: str) -> None:
    """A job long enough (150 steps) to watch on its way."""
    page.goto(app_url)
    page.get_by_role("link", name="Image Studio").click()
    page.get_by_label("What should the picture show?").fill(prompt)
    page.get_by_text("Advanced").click()
    page.get_by_label("Steps").fill("150")


def test_a_long_image_job_shows_its_progress_then_the_image(page, app_url):
    open_studio_with_many_steps(page, app_url, "a harbour in fog")
    page.get_by_role("button", name="Generate").click()
    page.get_by_text(re.compile(r"Step \d+ of 150")).wait_for()
    page.get_by_role("button", name="Cancel").wait_for()
    page.get_by_text("image(s) in").wait_for(timeout=180_000)  # 150 steps on a busy CPU
    assert page.get_by_role("button", name="Cancel").count() == 0


def test_cancel_stops_the_image_job(page, app_url):
    open_studio_with_many_steps(page, app_url, "a quiet forest path")
    page.get_by_role("button", name="Generate").click()
    page.get_by_role("button", name="Cancel").click()
    page.get_by_text("Cancelled.", exact=True).wait_for()
    assert page.get_by_text("image(s) in").count() == 0


def test_paint_the_area_to_change_and_get_an_inpainted_image(page, app_url, tmp_path):
    picture = tmp_path / "harbour.png"
    Image.new("RGB", (96, 64), (30, 120, 200)).save(picture)
    page.goto(app_url)
    page.get_by_role("link", name="Image Studio").click()
    page.get_by_text("Start from a picture").click()
    page.locator(".st-key-img-init input[type=file]").set_input_files(picture)
    canvas = page.locator("canvas.strokes")
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.3)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.6, steps=8)
    page.mouse.up()
    page.get_by_label("What should the picture show?").fill("a red boat")
    page.get_by_role("button", name="Generate").click()
    page.get_by_text("the painted area changed").wait_for()


def test_send_a_result_to_image_to_image_and_change_it(page, app_url):
    page.goto(app_url)
    page.get_by_role("link", name="Image Studio").click()
    page.get_by_label("What should the picture show?").fill("a lighthouse")
    page.get_by_role("button", name="Generate").click()
    page.get_by_role("button", name="Change this picture").first.click()
    page.get_by_text("Sent from a result.").wait_for()
    page.locator("canvas.strokes").wait_for()  # the picture is there to paint on
    page.get_by_role("button", name="Generate").click()
    page.get_by_text("your picture changed").wait_for()


def test_a_reload_during_an_image_job_follows_it_and_then_shows_the_image(page, app_url):
    open_studio_with_many_steps(page, app_url, "a lighthouse in a storm")
    page.get_by_role("button", name="Generate").click()
    page.get_by_text(re.compile(r"Step \d+ of 150")).wait_for()
    page.wait_for_url(lambda address: "job=" in address)  # the job being made is in the address
    page.reload()
    page.get_by_text(re.compile(r"Step \d+ of 150")).wait_for()  # the same job, followed again
    assert page.get_by_label("What should the picture show?").input_value() == (
        "a lighthouse in a storm"
    )
    page.get_by_text("image(s) in").wait_for(timeout=180_000)


def test_back_from_a_tool_returns_to_the_tool_gallery(page, app_url):
    page.goto(app_url)
    page.get_by_role("link", name="Text tools").click()
    page.get_by_text("Pick a tool.").wait_for()
    page.locator(".st-key-open-summarise button").click()
    page.get_by_role("heading", name="Summarise").wait_for()
    page.wait_for_url(lambda address: "tool=summarise" in address)
    page.go_back()
    page.get_by_text("Pick a tool.").wait_for()
    page.wait_for_url(lambda address: "tool=" not in address)


def test_a_markdown_image_in_a_models_answer_fetches_nothing(page, app_server):
    """A model (or a document it read) may write an image or a link to an outside server;
    shown in My work, the answer fetches nothing: model text is safe markdown, and the
    page's content policy would refuse it too."""
    url, env = app_server
    fetched, lure = [], _listening_lure()
    lure_url = f"http://127.0.0.1:{lure.server_address[1]}/leak.png"
    answer = f"Here is the chart: ![chart]({lure_url}) and [details]({lure_url}?q=secret)"
    from webapp.engine import ChatMessage
    from webapp.services.team import build_team_services
    from webapp.settings import load_settings
    from webapp.users import local_user

    settings = load_settings(env)
    team = build_team_services(settings)
    try:
        turns = [ChatMessage("user", "Show me the chart"), ChatMessage("assistant", answer)]
        team.history.record_chat_turn(local_user(settings), [], turns, model="tiny-llm")
    finally:
        team.close()
    page.on("request", lambda request: fetched.append(request.url))
    page.goto(url)
    page.get_by_role("link", name="My work").click()
    page.get_by_text("My texts and chats").click()
    page.get_by_text("Show me the chart").first.wait_for()
    page.get_by_text("Open", exact=True).first.click()
    page.get_by_text("Here is the chart:").wait_for()
    page.wait_for_timeout(1500)  # time for any image to be asked for
    lure.shutdown()
    assert lure.requests == [] and not [u for u in fetched if "leak.png" in u]
    assert page.locator(f'img[src^="{lure_url}"]').count() == 0
    assert page.locator(f'a[href^="{lure_url}"]').count() == 0


def _listening_lure():
    """A local HTTP server that records every request made to it."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Recording(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.server.requests.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recording)
    server.requests = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="session")
def smollm2_url(tiny_models_dir, embedded_models_dir, tmp_path_factory):
    """The app with the embedded SmolLM2 beside the tiny models (so the chat's default model
    writes slowly enough to stop)."""
    from webapp.embedded import DEFAULT_TEXT_MODEL

    models = tmp_path_factory.mktemp("with-smollm2")
    shutil.copytree(tiny_models_dir, models, dirs_exist_ok=True)
    (models / DEFAULT_TEXT_MODEL).symlink_to(embedded_models_dir / DEFAULT_TEXT_MODEL)
    with serving(models, tmp_path_factory) as (url, _):
        yield url


def test_stop_in_the_chat_keeps_the_question_and_the_answer_so_far(browser, smollm2_url):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(120_000)
    try:
        page.goto(smollm2_url)
        page.get_by_role("link", name="Text tools").click()
        page.locator(".st-key-open-chat button").click()
        page.get_by_placeholder("Write a message").fill("Tell me a long story about a lighthouse.")
        page.keyboard.press("Enter")
        page.get_by_text(re.compile(r"Writing: ([4-9]|\d\d+) words so far")).wait_for()
        written = page.locator(".st-key-chat-live [data-testid=stMarkdownContainer]").last
        start = " ".join(written.inner_text().split()[:3])
        page.get_by_role("button", name="Stop").click()
        page.get_by_role("button", name="Regenerate").wait_for()
        page.get_by_role("button", name="Continue").wait_for()
        page.get_by_text("Tell me a long story about a lighthouse.").wait_for()
        page.wait_for_url(lambda address: "chat=" in address)
        page.reload()  # the stopped turn is kept: question, partial answer and its buttons
        page.get_by_text("Tell me a long story about a lighthouse.").wait_for()
        page.get_by_text(start).first.wait_for()
        page.get_by_role("button", name="Continue").wait_for()
    finally:
        context.close()


def test_the_pages_work_under_the_content_security_policy(page, app_url):
    refused = []
    page.on("console", lambda m: refused.append(m.text) if "Security Policy" in m.text else None)
    response = page.goto(app_url)
    assert response.headers["x-frame-options"] == "DENY"
    assert "img-src 'self' data: blob:" in response.headers["content-security-policy"]
    page.get_by_role("heading", name="Atelier", exact=True).wait_for()
    page.get_by_role("link", name="Image Studio").click()
    page.get_by_label("What should the picture show?").fill("a red kite")
    page.get_by_role("button", name="Generate").click()
    page.get_by_text("image(s) in").wait_for()
    shown = page.locator("img").first
    shown.wait_for()
    assert shown.evaluate("image => image.complete && image.naturalWidth > 0")
    page.get_by_role("link", name="Text tools").click()
    page.get_by_text("Pick a tool.").wait_for()
    assert refused == []


# -- a team: built-in accounts, two people in two browsers ---------------------------------

TEAM = {"ana": ("Ana Admin", "admin"), "ben": ("Ben", "member"), "cai": ("Cai", "member")}
TEAM_PASSWORD = "a long team password"
STUDIO_PAGES = {
    "Home", "Image Studio", "Text tools", "Documents", "Brand voices", "My work", "Queue",
    "API keys",
}  # fmt: skip


@pytest.fixture(scope="session")
def team_server(tiny_models_dir, tmp_path_factory):
    """A fresh server in accounts mode, its people added with `atelier users add` first;
    its address and environment."""
    with serving(tiny_models_dir, tmp_path_factory, auth_mode="accounts") as (url, env):
        for login, (name, role) in TEAM.items():
            command = [sys.executable, "-m", "webapp.cli", "users", "add", login]
            command += ["--display-name", name] + (["--admin"] if role == "admin" else [])
            subprocess.run(command, input=TEAM_PASSWORD + "\n", text=True, env=env, check=True)
        yield url, env


@pytest.fixture(scope="session")
def team_url(team_server):
    return team_server[0]


def person(browser, team_url, login: str, path: str = "/"):
    """A browser of one's own, signed in on the form the app sends it to."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(90_000)
    opened.goto(team_url + path)
    sign_in(opened, login)
    return context, opened


def sign_in(page, login: str, password: str = TEAM_PASSWORD) -> None:
    page.get_by_label("Name").fill(login)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def navigation(page) -> set[str]:
    links = page.get_by_test_id("stSidebarNav").get_by_role("link")
    return {text.strip().split("\n")[-1] for text in links.all_inner_texts()}  # after the icon


def test_a_bookmarked_page_right_after_a_start_signs_in_and_shows_the_apps_navigation(
    browser, team_url
):
    context, page = person(browser, team_url, "ben", "/queue")
    try:
        page.get_by_role("heading", name="Queue", exact=True).wait_for()
        assert page.url == team_url + "/queue"
        page.get_by_text("Signed in as").wait_for()
        assert navigation(page) == STUDIO_PAGES  # no raw file names, no Models for a member
        cookie = next(c for c in context.cookies() if c["name"] == "atelier_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        page.reload()  # the sign-in survives a refresh
        page.get_by_role("heading", name="Queue", exact=True).wait_for()
        page.get_by_text("Signed in as").wait_for()
    finally:
        context.close()


def test_a_wrong_password_gets_one_message_and_no_session(browser, team_url):
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(team_url + "/my_work")
        sign_in(page, "ben", "not the password")
        page.get_by_text("Wrong name or password.").wait_for()
        sign_in(page, "nobody", "not the password")
        page.get_by_text("Wrong name or password.").wait_for()
        assert not [c for c in context.cookies() if c["name"] == "atelier_session"]
    finally:
        context.close()


def test_two_people_in_two_browsers_see_only_their_own_work(browser, team_url):
    ana_context, ana = person(browser, team_url, "ana", "/image_studio")
    cai_context, cai = person(browser, team_url, "cai", "/my_work")
    try:
        ana.get_by_label("What should the picture show?").fill("ana's private lighthouse")
        ana.get_by_role("button", name="Generate").click()
        ana.get_by_text("image(s) in").wait_for()
        ana.get_by_role("link", name="My work").click()
        ana.get_by_text("ana's private lighthouse").wait_for()
        assert navigation(ana) == STUDIO_PAGES | {"Models", "Admin", "Audit"}

        cai.get_by_role("heading", name="My work", exact=True).wait_for()
        cai.get_by_text("No images match").wait_for()
        assert cai.get_by_text("ana's private lighthouse").count() == 0
        cai.get_by_role("link", name="Queue").click()
        cai.get_by_text("No jobs yet").wait_for()

        cai.goto(team_url + "/audit")  # an admin's page, by its address
        cai.get_by_text("Only an admin can open the Audit page").wait_for()
        assert "Audit" not in navigation(cai)

        cai.get_by_role("button", name="Sign out").click()
        cai.get_by_label("Password").wait_for()  # the form again
        cai.goto(team_url + "/my_work")
        cai.get_by_label("Password").wait_for()
    finally:
        ana_context.close()
        cai_context.close()


def test_the_server_judges_the_connections_own_address_not_a_forwarded_one(team_server):
    """Uvicorn would take X-Forwarded-For from a local connection as the address; serve.py
    turns that off, so a forged header cannot pass for a trusted proxy's address."""
    url, env = team_server
    request = urllib.request.Request(
        url + "/auth/sign-in",
        data=b"login=ben&password=x&csrf=forged",
        headers={"Origin": "http://evil.example", "X-Forwarded-For": "10.9.9.9"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 403
    from webapp.services.audit import AuditFilter
    from webapp.services.team import build_team_services
    from webapp.settings import load_settings

    team = build_team_services(load_settings(env))
    try:
        operator = User("cli:test", "Operator", is_admin=True)
        entries = team.audit.query(operator, AuditFilter(kind="sign_in", outcome="refused"))
        assert "address 127.0.0.1" in [e.actor for e in entries.items]
        assert "address 10.9.9.9" not in [e.actor for e in entries.items]
    finally:
        team.close()


def test_upload_a_pdf_and_ask_it_a_question_answered_from_cited_pages(page, app_url, tmp_path):
    from webapp.doctext.samples import contract_pages, make_pdf, page_sentence

    contract = tmp_path / "Supply contract.pdf"
    contract.write_bytes(make_pdf(contract_pages(3, words_per_page=20)))
    page.goto(app_url)
    page.get_by_role("link", name="Documents").click()
    page.get_by_role("heading", name="Documents", exact=True).wait_for()
    page.locator(".st-key-doc-file input[type=file]").set_input_files(contract)
    page.get_by_text("Supply contract.pdf").wait_for()  # uploaded to the server
    page.locator(".st-key-FormSubmitter-doc-upload-Add button").click()
    page.get_by_text("Added “Supply contract”: 3 pages.").wait_for()
    page.get_by_text("check them against the cited pages").wait_for()
    page.get_by_role("tab", name="Ask a question").click()
    page.get_by_role("textbox", name="Question").fill("Which batch is delivered in week 2?")
    page.get_by_role("button", name="Ask", exact=True).click()
    sources = page.get_by_text(re.compile(r"The passages the answer was written from \(\d\)"))
    sources.wait_for(timeout=120_000)
    sources.click()
    page.get_by_text(page_sentence(2)).wait_for()
    page.get_by_text(re.compile(r"^p\. 2$")).first.wait_for()
    if os.environ.get("ATELIER_SCREENSHOTS"):
        page.screenshot(path=os.path.join(os.environ["ATELIER_SCREENSHOTS"], "documents.png"))


# -- installing a model ---------------------------------------------------------------------


def test_an_admin_installs_a_model_from_the_hub_and_makes_an_image_with_it(
    browser, tiny_models_dir, tmp_path_factory, tmp_path
):
    import sqlite3

    from tests.hub_fixtures import start_hub

    with (
        start_hub(tiny_models_dir, tmp_path / "repos") as hub,
        serving(tiny_models_dir, tmp_path_factory, hf_endpoint=hub.url) as (url, env),
    ):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(url)
        page.get_by_role("link", name="Models").click()
        page.get_by_role("tab", name="Install", exact=True).click()
        page.get_by_label("Repo id").fill("test-org/little-sd")
        page.locator(".st-key-look-up-typed button").click()
        page.get_by_text("Licence:").wait_for()
        page.get_by_role("button", name="Install", exact=True).click()
        page.get_by_text("Installed (").wait_for(timeout=180_000)

        page.get_by_role("link", name="Image Studio").click()
        page.get_by_label("What should the picture show?").fill("a lighthouse")
        page.get_by_text("Advanced").click()
        model_choice = page.locator(".st-key-img-model")
        # Scrolled to first: a list that opens while the page still scrolls closes again.
        model_choice.scroll_into_view_if_needed()
        model_choice.click()
        page.get_by_role("option", name="little-sd").click()
        # The installed copy has none of tiny-sd's catalog defaults: a small, short picture.
        page.get_by_label("Steps").fill("4")
        page.get_by_label("Width").fill("64")
        page.get_by_label("Height").fill("64")
        page.get_by_role("button", name="Generate").click()
        page.get_by_text("image(s) in").wait_for(timeout=180_000)
        context.close()
        with sqlite3.connect(Path(env["ATELIER_DATA_DIR"]) / "atelier.db") as database:
            models = {row[0] for row in database.execute("SELECT model FROM images")}
        assert models == {"little-sd"}
