"""The Documents page as a person uses it (AppTest from app.py): upload, errors next to the
uploader, a summary with its coverage, an answer whose citation opens its passage, fields
with downloads, and the model's words shown as safe markdown."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.fakes import CannedDecodeBatch
from tests.test_pages import APP, text_of
from webapp.doctext.samples import contract_pages, make_pdf, page_sentence


@pytest.fixture
def canned_engine(monkeypatch):
    """The app's engine decodes with the canned fake (text and document lanes)."""
    from webapp.engine import factory

    real = factory.build_engine
    monkeypatch.setattr(
        factory,
        "build_engine",
        lambda settings, **options: real(settings, decode_batch=CannedDecodeBatch, **options),
    )
    CannedDecodeBatch.reset()
    yield CannedDecodeBatch
    CannedDecodeBatch.reset()


def open_documents(app_env, models_dir, **settings) -> AppTest:
    app_env(models_dir, **settings)
    app = AppTest.from_file(APP, default_timeout=120).run()
    app.switch_page("app_pages/documents.py").run()
    assert not app.exception, app.exception
    return app


def upload(app: AppTest, name: str, data: bytes, mime: str = "application/pdf") -> AppTest:
    app.file_uploader[0].set_value((name, data, mime))
    next(b for b in app.button if b.label == "Add").click().run()
    assert not app.exception, app.exception
    return app


def button(app: AppTest, label: str):
    return next(b for b in app.button if b.label == label)


def test_an_uploaded_pdf_is_summarised_whole_and_its_answer_cites_an_openable_page(
    app_env, tiny_models_dir, canned_engine
):
    app = open_documents(app_env, tiny_models_dir)
    assert "Add a document to begin." in text_of(app)
    upload(app, "Supply contract.pdf", make_pdf(contract_pages(3, words_per_page=20)))
    assert "Added “Supply contract”: 3 pages." in text_of(app)
    assert "Supply contract · 3 pages" in app.selectbox[0].format_func(app.selectbox[0].value)
    assert "check them against the cited pages" in text_of(app)

    canned_engine.answer = lambda prompt: (
        "- week 2 delivery (p. 2)" if "<document>" in prompt else "- Deliveries run weekly (p. 2)"
    )
    button(app, "Summarise the whole document").click().run(timeout=120)
    assert not app.exception, app.exception
    page = text_of(app)
    assert "All 3 pages were read." in page
    assert "Deliveries run weekly" in page

    canned_engine.answer = lambda prompt: "Batch 21 comes in week 3 (p. 3). <img src=x>"
    app.text_input(key="doc-question").set_value("Which batch comes in week 3?")
    button(app, "Ask").click().run(timeout=120)
    assert not app.exception, app.exception
    answer = next(m.value for m in app.markdown if "Batch 21" in m.value)
    assert "\\<img" in answer  # the model's words as safe markdown, never HTML
    opened = [t.value for t in app.text]
    assert any(page_sentence(3) in text for text in opened)  # the citation's passage


def test_an_unreadable_upload_says_why_next_to_the_uploader_and_keeps_nothing(
    app_env, tiny_models_dir, tmp_path
):
    app = open_documents(app_env, tiny_models_dir)
    upload(app, "report.pdf", b"PK\x03\x04 this is a zip")
    errors = [e.value for e in app.error]
    assert len(errors) == 1 and "its content is a ZIP archive" in errors[0]
    assert errors[0].startswith("**File:**")
    assert "Add a document to begin." in text_of(app)
    assert not (tmp_path / "data" / "documents").exists()


def test_a_protected_pdf_asks_for_its_password(app_env, tiny_models_dir):
    from webapp.doctext.samples import make_encrypted_pdf

    app = open_documents(app_env, tiny_models_dir)
    data = make_encrypted_pdf(contract_pages(1), "s3cret")
    upload(app, "locked.pdf", data)
    assert "protected by a password" in app.error[0].value
    app.text_input[0].set_value("s3cret")
    upload(app, "locked.pdf", data)
    assert "Added “locked”: 1 page." in text_of(app)


def test_pasted_text_gets_fields_with_csv_and_xlsx_downloads(
    app_env, tiny_models_dir, canned_engine
):
    app = open_documents(app_env, tiny_models_dir)
    app.text_input[1].set_value("Lease")
    app.text_area[0].set_value("The tenant is Acme Ltd.\n\nRent is 900 euros a month.")
    next(b for b in app.button if b.label == "Add" and b.form_id == "doc-paste").click().run()
    assert "Added “Lease”." in text_of(app)
    canned_engine.answer = lambda prompt: "parties | Acme Ltd | 1\namounts | 900 euros | 2"
    button(app, "Find the fields").click().run(timeout=120)
    assert not app.exception, app.exception
    table = app.dataframe[0].value
    assert list(table["Value"]) == ["Acme Ltd", "900 euros"]
    assert list(table["Where"]) == ["para. 1", "para. 2"]
    assert {d.label for d in app.get("download_button")} >= {"Download .csv", "Download .xlsx"}


def test_the_queue_page_shows_a_running_document_job_with_its_stage(
    app_env, tiny_models_dir, canned_engine
):
    import threading

    from webapp.ui.resources import get_documents
    from webapp.users import User

    app = open_documents(app_env, tiny_models_dir)
    me = User("local", "Local user", is_admin=True)
    documents = get_documents()
    info = documents.paste(me, "Notes", "First point.\n\nSecond point.")
    documents.index.wait(info.id, 60)
    gate = threading.Event()
    canned_engine.answer = lambda prompt: "- held" if gate.wait(30) else "- late"
    run = documents.summarize(me, info.id, "short", "tiny-llm")
    while not run.job.stage:  # the model is loading
        run.job.wait_for_update(0.1)
    try:
        app.switch_page("app_pages/queue.py").run()
        assert not app.exception, app.exception
        shown = text_of(app) + " ".join(str(t.value) for t in app.text)
        assert "Summary of Notes" in shown
        bars = [bar.proto.text for bar in app.get("progress")]
        assert any(bar.startswith("Paragraph 0 of 2 read") for bar in bars), bars
    finally:
        gate.set()
    run.result(60)
