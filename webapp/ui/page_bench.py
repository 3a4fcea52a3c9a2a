"""Benchmarks that drive the real pages through Streamlit's AppTest (for `atelier bench`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from webapp.users import local_user


def text_tool_through_page(
    app_file: Path, tool: str, text: str, model: str, new_tokens: int
) -> tuple[int, float]:
    """Run a text tool in the page (AppTest); tokens made and seconds from Run to the
    answer shown (the page draws it live, then once more when it is done)."""
    from streamlit.testing.v1 import AppTest

    from webapp.ui.resources import get_services
    from webapp.ui.text_widgets import advanced_key

    app = AppTest.from_file(str(app_file), default_timeout=600).run()
    app.switch_page("app_pages/text_tools.py").run()
    app.button(key=f"open-{tool}").click().run()
    app.selectbox(key=f"model-{tool}").select(model).run()
    preset = get_services().text.tool(tool).preset
    app.text_area(key=f"field-{tool}-text").input(text)
    app.text_input(key=f"seed-{tool}").input("0")
    app.slider(key=advanced_key("temperature", tool, model, preset)).set_value(0.0)
    app.number_input(key=advanced_key("max-tokens", tool, model, preset)).set_value(new_tokens)
    started = time.perf_counter()
    app.button(key=f"FormSubmitter:form-{tool}-Run").click().run()
    engine = get_services().engine  # the page's engine, owned by its cached resource
    jobs = engine.jobs(local_user(engine.settings))
    if app.exception or not jobs:
        raise RuntimeError(f"the page ran no job: {app.exception or [e.value for e in app.error]}")
    jobs[0].wait()
    app.run()
    seconds = time.perf_counter() - started
    if app.exception or not app.code:
        raise RuntimeError(f"the page showed no answer: {app.exception}")
    return jobs[0].result().tokens, seconds


def image_through_page(
    app_file: Path, model: str, prompt: str, steps: int | None, seed: int, stock_wait: bool
) -> float:
    """Make one image in Image Studio (AppTest); seconds from Generate to the image shown.
    Steps None leaves the page's automatic steps, as a person gets them. The page shows
    the job's progress at once, and the pictures when its live panel sees the job end:
    here, a run after the job has ended."""
    from streamlit.testing.v1 import AppTest

    from webapp.ui.resources import get_services

    app = AppTest.from_file(str(app_file), default_timeout=600).run()
    app.switch_page("app_pages/image_studio.py").run()
    app.text_area(key="img-prompt").input(prompt)
    app.selectbox(key="img-model").select(model)
    app.text_input(key="img-seed").input(str(seed))
    if steps is not None:
        app.number_input(key="img-steps").set_value(steps)
    with nullcontext() if stock_wait else script_end_by_join():
        started = time.perf_counter()
        app.button(key="FormSubmitter:image-form-Generate").click().run()
        run = None
        if "image_run" in app.session_state:  # none when Generate was refused
            run = app.session_state["image_run"]
        if run is not None:
            run.job.wait()
            get_services().saver.saved(run.job)
        app.run()
        seconds = time.perf_counter() - started
    if app.exception or not any("image(s) in" in c.value for c in app.caption):
        raise RuntimeError(f"the page showed no image: {app.exception or app.error}")
    return seconds


def first_sign_through_page(app_file: Path, model: str, prompt: str, steps: int | None) -> float:
    """Seconds of server time from pressing Generate to the page's run that draws the
    job's place in line or its progress bar under the button (the first sign a person
    sees); the job is cancelled afterwards."""
    from streamlit.testing.v1 import AppTest

    from webapp.ui.resources import get_services

    app = AppTest.from_file(str(app_file), default_timeout=600).run()
    app.switch_page("app_pages/image_studio.py").run()
    app.text_area(key="img-prompt").input(prompt)
    app.selectbox(key="img-model").select(model)
    if steps is not None:
        app.number_input(key="img-steps").set_value(steps)
    with script_end_by_join():
        started = time.perf_counter()
        app.button(key="FormSubmitter:image-form-Generate").click().run()
        seconds = time.perf_counter() - started
    run = app.session_state["image_run"] if "image_run" in app.session_state else None  # noqa: SIM401 (AppTest's state has no get)
    shown = app.get("progress") or [i for i in app.info if "in line" in i.value]
    if app.exception or run is None or not shown:
        raise RuntimeError(f"the page showed no progress: {app.exception or app.error}")
    run.job.cancel(local_user(get_services().settings))
    run.job.wait(60)
    return seconds


def rerun_seconds(app_file: Path, page: str, repeats: int) -> list[float]:
    """Server time of a page's rerun (AppTest: the script and the drawing of what it
    sends), after a first run that fills the caches."""
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(app_file), default_timeout=600).run()
    app.switch_page(page).run()
    app.run()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        app.run()
        seconds.append(time.perf_counter() - started)
        if app.exception:
            raise RuntimeError(f"the page failed: {app.exception}")
    return seconds


@contextmanager
def script_end_by_join() -> Iterator[None]:
    """AppTest's run() wakes every millisecond to ask whether the script has ended. On a small
    CPU those wake-ups slow the engine's worker, which no browser session does; this waits
    for the script thread instead. Falls back to the stock wait if AppTest changes."""
    from streamlit.testing.v1 import local_script_runner

    stock = local_script_runner.require_widgets_deltas

    def wait_for_script_end(runner, timeout: float = 3) -> None:
        thread = getattr(runner, "_script_thread", None)
        if thread is not None:
            thread.join(timeout)
        if not runner.script_stopped():
            stock(runner, timeout)

    local_script_runner.require_widgets_deltas = wait_for_script_end
    try:
        yield
    finally:
        local_script_runner.require_widgets_deltas = stock


def my_work_through_page(
    app_file: Path, environ: dict[str, str], repeats: int, expect: int
) -> tuple[float, float]:
    """Open My work in the app (AppTest) as the single user, with the settings in `environ`
    (a throwaway data dir): seconds for its first opening (the page's thumbnails made) and
    the median of `repeats` reruns. The services start before the clock does."""
    import os
    import statistics

    from streamlit.testing.v1 import AppTest

    from webapp.ui.resources import clear_resources

    saved = {key: os.environ.get(key) for key in environ}
    os.environ.update(environ)
    clear_resources()
    try:
        app = AppTest.from_file(str(app_file), default_timeout=600).run()  # Home: the start
        app.switch_page("app_pages/my_work.py")
        started = time.perf_counter()
        app.run()
        first = time.perf_counter() - started
        if app.exception or len(app.text) != expect:
            raise RuntimeError(f"My work showed {len(app.text)} images: {app.exception}")
        again = []
        for _ in range(repeats):
            started = time.perf_counter()
            app.run()
            again.append(time.perf_counter() - started)
        return first, statistics.median(again)
    finally:
        clear_resources()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
