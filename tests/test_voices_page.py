"""The Brand voices page as a person uses it (AppTest from app.py): too few texts are
refused next to the form with how many more would help; a dataset's counts; tuning with a
preset, its evaluation when done, export, and an admin's approval that puts the voice in
Text tools."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.test_pages import APP, text_of
from webapp.ui.resources import get_services
from webapp.users import User

# A safety net against a hang, not a measure of speed: a shared, loaded CPU is slow.
WAIT = 600

LOCAL = User("local", "Local user", is_admin=True)


def texts(count: int) -> str:
    return "\n\n".join(
        f"Hey friend! Kettle {i} boils in a jiffy. Simple, cheerful, done." for i in range(count)
    )


def open_voices(app_env, models_dir) -> AppTest:
    app_env(models_dir)
    app = AppTest.from_file(APP, default_timeout=120).run()
    app.switch_page("app_pages/voices.py").run()
    assert not app.exception, app.exception
    return app


def button(app: AppTest, label: str):
    return next(b for b in app.button if b.label == label)


def add_texts(app: AppTest, pasted: str) -> AppTest:
    next(t for t in app.text_area if t.label.startswith("Or paste")).set_value(pasted)
    return button(app, "Check and add").click().run()


def test_too_few_texts_are_refused_next_to_the_form_with_how_many_more(
    app_env,
    tiny_models_dir,
):
    app = open_voices(app_env, tiny_models_dir)
    assert "Add approved texts to begin." in text_of(app)
    add_texts(app, texts(4))
    errors = [e.value for e in app.error]
    assert any("add at least 6 more" in e for e in errors), errors
    assert get_services().voices.datasets(LOCAL) == []


def test_a_voice_is_tuned_evaluated_exported_and_approved_for_text_tools(
    app_env,
    tiny_models_dir,
):
    app = open_voices(app_env, tiny_models_dir)
    add_texts(app, texts(12))
    assert not app.exception, app.exception
    assert "Examples" in [m.label for m in app.metric]
    assert next(m for m in app.metric if m.label == "Held back").value == "2"

    next(t for t in app.text_input if t.label == "Voice name").set_value("Kettle talk")
    next(r for r in app.radio if r.label == "Preset").set_value("Light")
    button(app, "Start tuning").click().run()
    assert not app.exception, app.exception
    run = get_services().voices.versions(LOCAL)[0]
    assert run.preset == "Light"
    get_services().voices.job(LOCAL, run.id).result(WAIT)

    app.run()
    assert not app.exception, app.exception
    page = text_of(app)
    assert "kettle-talk v1" in page
    assert "Held-back perplexity before" in [m.label for m in app.metric]
    assert any(d.label == "Export adapter (.zip)" for d in app.get("download_button"))
    assert "Waiting for an admin's approval" in page

    button(app, "Approve for the team").click().run()
    assert not app.exception, app.exception
    voices = [v.id for v in get_services().text.voices(User("bob", "Bob"))]
    assert "tuned-kettle-talk" in voices
