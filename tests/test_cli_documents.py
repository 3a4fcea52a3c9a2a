"""`atelier doc summarize|ask|extract`: JSON with citations and the passages they open, the
coverage of whole-document work, clear errors, and nothing left behind without --keep."""

from __future__ import annotations

import json

import pytest

from tests.fakes import CannedDecodeBatch
from tests.test_cli import env  # noqa: F401  (a fixture)
from webapp.cli import main
from webapp.doctext.samples import contract_pages, make_docx, make_pdf, page_sentence


@pytest.fixture
def canned(monkeypatch):
    from webapp.engine import factory

    real = factory.build_engine

    def with_canned(settings, **options):
        return real(settings, decode_batch=CannedDecodeBatch, **options)

    monkeypatch.setattr(factory, "build_engine", with_canned)
    CannedDecodeBatch.reset()
    yield CannedDecodeBatch
    CannedDecodeBatch.reset()


@pytest.fixture
def contract(env):  # noqa: F811
    path = env / "contract.pdf"
    path.write_bytes(make_pdf(contract_pages(3, words_per_page=20)))
    return path


def run(capsys, *argv):
    code = main(["doc", *argv, "--model", "tiny-llm"])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if code == 0 else captured.err)


def test_summarize_prints_points_with_pages_and_the_coverage(contract, canned, capsys, env):  # noqa: F811
    canned.answer = lambda p: "- weekly batches (p. 2)" if "<notes>" in p else "- note (p. 1)"
    code, out = run(capsys, "summarize", str(contract), "--length", "short")
    assert code == 0
    assert out["summary"][0]["text"] == "weekly batches" and out["summary"][0]["pages"] == [2]
    assert page_sentence(2) in out["summary"][0]["passages"][0]["text"]
    assert out["coverage"]["message"] == "All 3 pages were read."
    assert out["document"] == {
        "id": None,
        "title": "contract",
        "kind": "pdf",
        "unit": "page",
        "count": 3,
    }
    assert not list((env / "data" / "documents").iterdir())  # deleted again without --keep


def test_ask_prints_the_answer_and_each_citations_passage(contract, canned, capsys):
    canned.answer = lambda p: "Batch 14 arrives in week 2 (p. 2)."
    code, out = run(capsys, "ask", str(contract), "Which batch arrives in week 2?", "--keep")
    assert code == 0 and out["found"] is True
    assert [c["page"] for c in out["citations"]] == [2]
    assert page_sentence(2) in out["citations"][0]["passages"][0]["text"]
    assert out["document"]["id"] is not None


def test_ask_says_not_found_in_the_document(contract, canned, capsys):
    canned.answer = lambda p: "NOT FOUND"
    code, out = run(capsys, "ask", str(contract), "Who painted the Mona Lisa?")
    assert code == 0 and (out["found"], out["answer"]) == (False, "Not found in the document.")


def test_extract_takes_named_fields_and_gives_their_pages(env, canned, capsys):  # noqa: F811
    path = env / "lease.docx"
    path.write_bytes(make_docx(["The tenant is Acme Ltd.", "Rent is 900 euros a month."]))
    canned.answer = lambda p: "tenant | Acme Ltd | 1\nrent | 900 euros | 2"
    code, out = run(capsys, "extract", str(path), "--fields", "tenant, rent")
    assert code == 0 and out["fields"] == ["tenant", "rent"]
    assert [(i["field"], i["value"], i["pages"]) for i in out["items"]] == [
        ("tenant", "Acme Ltd", [1]),
        ("rent", "900 euros", [2]),
    ]
    assert "Rent is 900 euros a month." in out["items"][1]["passage"]


def test_a_bad_file_is_one_line_on_stderr(env, capsys):  # noqa: F811
    path = env / "fake.pdf"
    path.write_bytes(b"just text")
    assert main(["doc", "summarize", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("atelier: “fake.pdf” is named as a PDF") and "Traceback" not in err
