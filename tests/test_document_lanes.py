"""The engine's embedding and document lanes: batches of texts become vectors, a whole
document is read through one job (every window given to the model, counted truthfully),
and neither holds up anyone else's work."""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest

from tests.fakes import CannedDecodeBatch
from webapp.backends.textgen import DecodeBatch
from webapp.doctext.chunks import make_passages, make_windows
from webapp.doctext.extract import extract_paste
from webapp.doctext.tasks import SummaryTask
from webapp.engine import ChatMessage, Job, JobStatus, TextRequest
from webapp.engine.requests import DocumentRequest, EmbeddingRequest
from webapp.users import User

ADA, BOB = User("ada", "Ada"), User("bob", "Bob")


@pytest.fixture
def canned():
    CannedDecodeBatch.reset()
    yield CannedDecodeBatch
    CannedDecodeBatch.reset()


def paragraphs(count: int, words: int = 30) -> str:
    return "\n\n".join(
        f"Paragraph {n} says item{n} " + " ".join(["detail"] * (words - 4))
        for n in range(1, count + 1)
    )


def summary_task(count: int, budget: int = 120, **options) -> SummaryTask:
    document = extract_paste(paragraphs(count))
    passages = make_passages(document, words=40)
    windows = make_windows(passages, [len(p.text.split()) + 2 for p in passages], budget)
    return SummaryTask("paragraph", document.unit_count, tuple(windows), "short", **options)


# -- embeddings -----------------------------------------------------------------------------


def test_texts_become_unit_vectors_the_same_whatever_the_batch(make_engine):
    engine = make_engine()
    texts = tuple(f"clause {n} of the contract" for n in range(70))  # over two steps
    many = engine.submit(EmbeddingRequest("tiny-embed", texts), ADA).result(60)
    one = engine.submit(EmbeddingRequest("tiny-embed", (texts[40],)), ADA).result(60)
    assert many.vectors.shape == (70, 32) and many.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(many.vectors, axis=1), 1, atol=1e-5)
    assert np.allclose(many.vectors[40], one.vectors[0], atol=1e-5)
    assert many.model == "tiny-embed" and many.tokens > 70


def test_a_one_text_question_is_not_held_up_by_a_long_document(make_engine):
    engine = make_engine()
    long = engine.submit(EmbeddingRequest("tiny-embed", ("a passage of text",) * 1500), ADA)
    while long.status != JobStatus.RUNNING:
        time.sleep(0.01)
    question = engine.submit(EmbeddingRequest("tiny-embed", ("what is due?",)), BOB)
    question.result(60)
    assert not long.finished  # the question was served between the document's batches
    long.result(120)


def test_an_embedding_request_for_a_text_model_is_refused_at_submit(make_engine):
    from webapp.errors import ValidationError

    with pytest.raises(ValidationError, match="embedding model"):
        make_engine().submit(EmbeddingRequest("tiny-llm", ("x",)), ADA)


# -- documents, with a fake decoder ---------------------------------------------------------


def test_every_window_of_the_document_reaches_the_model_and_coverage_says_so(make_engine, canned):
    canned.answer = lambda prompt: (
        "- " + " ".join(re.findall(r"item\d+", prompt)[:2]) + " (para. 1)"
    )
    engine = make_engine(decode_batch=canned)
    task = summary_task(30)
    job = engine.submit(DocumentRequest("tiny-llm", task), ADA)
    result = job.result(60)
    quoted = " ".join(canned.prompts)
    assert all(f"item{n} " in quoted for n in range(1, 31))  # every paragraph was quoted
    map_prompts = [p for p in canned.prompts if "<document>" in p]
    assert len(map_prompts) == len(task.windows) > 3
    assert result.coverage.complete and result.coverage.read == tuple(range(1, 31))
    assert result.coverage.message == "All 30 paragraphs were read."
    assert job.progress.step == job.progress.total


def test_notes_are_combined_in_rounds_when_they_do_not_fit_at_once(make_engine, canned):
    canned.answer = lambda prompt: (
        " ".join(["note"] * 120) if "<document>" in prompt else "- done (para. 2)"
    )
    engine = make_engine(decode_batch=canned)
    result = engine.submit(DocumentRequest("tiny-llm", summary_task(40)), ADA).result(60)
    reduces = [p for p in canned.prompts if "<notes>" in p]
    assert len(reduces) > 1  # tiny-llm reads 1,024 tokens: 10+ notes of 120 words need rounds
    assert result.points[0].text == "done" and result.points[0].units == (2,)


def test_a_document_job_reports_pages_read_as_it_goes_and_streams_the_final_answer(
    make_engine, canned, monkeypatch
):
    updates = []
    original = Job._update

    def spy(job, **changes):
        updates.append(changes)
        original(job, **changes)

    monkeypatch.setattr(Job, "_update", spy)
    canned.answer = lambda prompt: "one two three four five six seven eight nine ten"
    engine = make_engine(decode_batch=canned)
    job = engine.submit(DocumentRequest("tiny-llm", summary_task(30)), ADA)
    result = job.result(60)
    stages = [u["stage"] for u in updates if "stage" in u]
    read = [int(m[1]) for s in stages if (m := re.fullmatch(r"Paragraph (\d+) of 30 read", s))]
    assert read == sorted(read) and read[-1] == 30 and len(set(read)) > 2
    assert stages[-1] == "Writing the summary from the notes (all 30 paragraphs read)"
    streamed = [u["text"] for u in updates if "text" in u]
    assert streamed[0] == "one" and streamed[-1] == result.text == job.text


def test_a_cancelled_document_job_stops_and_the_next_one_runs(make_engine, canned):
    canned.answer = lambda prompt: " ".join(["word"] * 200)
    engine = make_engine(decode_batch=canned)
    first = engine.submit(DocumentRequest("tiny-llm", summary_task(40)), ADA)
    while first.progress.step == 0:
        time.sleep(0.01)
    first.cancel(ADA)
    asked = len(canned.prompts)
    canned.answer = lambda prompt: "- short (para. 1)"
    second = engine.submit(DocumentRequest("tiny-llm", summary_task(3)), BOB).result(60)
    assert first.status == JobStatus.CANCELLED and second.points
    assert len(canned.prompts) - asked < len(summary_task(40).windows)


def test_a_text_job_is_answered_while_a_long_summary_runs(make_engine, canned):
    canned.answer = lambda prompt: " ".join(["word"] * 150)
    engine = make_engine(decode_batch=canned)
    summary = engine.submit(DocumentRequest("tiny-llm", summary_task(60)), ADA)
    while summary.progress.step == 0:
        time.sleep(0.01)
    chat = engine.submit(
        TextRequest("tiny-llm", (ChatMessage("user", "hi"),), max_new_tokens=4), BOB
    )
    chat.result(60)
    # the chat's few words came out while the summary's thousands were still being written
    assert not summary.finished or chat.finished_at < summary.finished_at
    summary.cancel(ADA)


def test_a_decoder_fault_fails_the_document_job_not_the_worker(make_engine, canned, monkeypatch):
    engine = make_engine(decode_batch=canned)
    monkeypatch.setattr(CannedDecodeBatch, "fail_steps", True)
    job = engine.submit(DocumentRequest("tiny-llm", summary_task(5)), ADA)
    assert job.wait(60) and job.status == JobStatus.FAILED
    monkeypatch.setattr(CannedDecodeBatch, "fail_steps", False)
    assert engine.submit(DocumentRequest("tiny-llm", summary_task(2)), ADA).result(60)


# -- documents, with tiny-llm -----------------------------------------------------------------


class RecordingDecodeBatch(DecodeBatch):
    """The real decoder, recording the text of every prompt it is given."""

    prompts: list[str] = []
    lock = threading.Lock()

    def add(self, sequences):
        with self.lock:
            for sequence in sequences:
                self.prompts.append(self.tokenizer.decode(sequence.prompt_ids))
        super().add(sequences)


def test_a_summary_with_tiny_llm_reads_every_window_and_says_so(make_engine):
    RecordingDecodeBatch.prompts = []
    engine = make_engine(decode_batch=RecordingDecodeBatch)
    task = summary_task(12, budget=60, note_tokens=24, answer_tokens=24)
    job = engine.submit(DocumentRequest("tiny-llm", task), ADA)
    result = job.result(120)
    quoted = " ".join(RecordingDecodeBatch.prompts)
    assert all(f"item{n} " in quoted for n in range(1, 13))
    assert sum("<document>" in p for p in RecordingDecodeBatch.prompts) == len(task.windows)
    assert sum("<notes>" in p for p in RecordingDecodeBatch.prompts) >= 1
    assert result.coverage.message == "All 12 paragraphs were read."
    assert result.tokens > 0
