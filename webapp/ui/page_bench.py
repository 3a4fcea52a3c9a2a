"""Benchmarks that drive the real pages through Streamlit's AppTest (for `atelier bench`)."""

from __future__ import annotations

import time
from pathlib import Path

from webapp.users import local_user


def text_tool_through_page(
    app_file: Path, tool: str, text: str, model: str, new_tokens: int
) -> tuple[int, float]:
    """Run a text tool in the page (AppTest); tokens made and seconds from Run to done."""
    from streamlit.testing.v1 import AppTest

    from webapp.engine import get_engine

    app = AppTest.from_file(str(app_file), default_timeout=600).run()
    app.switch_page("pages/text_tools.py").run()
    app.button(key=f"open-{tool}").click().run()
    app.selectbox(key=f"model-{tool}").select(model)
    app.text_area(key=f"field-{tool}-text").input(text)
    app.text_input(key=f"seed-{tool}").input("0")
    app.slider(key=f"temperature-{tool}-Precise").set_value(0.0)
    app.number_input(key=f"max-tokens-{tool}").set_value(new_tokens)
    started = time.perf_counter()
    app.button(key=f"FormSubmitter:form-{tool}-Run").click().run()
    seconds = time.perf_counter() - started
    if app.exception:
        raise RuntimeError(f"the page failed: {app.exception}")
    jobs = get_engine().jobs(local_user(get_engine().settings))
    if not jobs:
        raise RuntimeError(f"the page ran no job: {[e.value for e in app.error]}")
    job = jobs[0]
    return job.result().tokens, seconds


def image_through_page(app_file: Path, model: str, prompt: str, steps: int, seed: int) -> float:
    """Make one image in Image Studio (AppTest); seconds from Generate to the image shown."""
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(app_file), default_timeout=600).run()
    app.switch_page("pages/image_studio.py").run()
    app.text_area(key="img-prompt").input(prompt)
    app.selectbox(key="img-model").select(model)
    app.text_input(key="img-seed").input(str(seed))
    app.number_input(key="img-steps").set_value(steps)
    started = time.perf_counter()
    app.button(key="FormSubmitter:image-form-Generate").click().run()
    seconds = time.perf_counter() - started
    if app.exception or not any("image(s) in" in c.value for c in app.caption):
        raise RuntimeError(f"the page showed no image: {app.exception or app.error}")
    return seconds
