"""`atelier bench documents`: documents on this machine, in a throwaway data dir.

1. A text PDF of `pages` pages (about 400 words each) uploaded: extraction (the limited
   parser process), passages and rows, then every passage embedded through the engine's
   embedding lane and its vectors kept. Target on a CPU: under 30 s for 100 pages.
2. Retrieval over `chunks` passages of one person (with as many of another person's in the
   same table): the owner-first read of the vectors and the numpy ranking, and separately
   the question's own embedding. Target: under 200 ms.
3. A summary's generated tokens per second through the document lane, against the same
   prompts run as plain text jobs through the engine's text lane (the map prompts together,
   then the final reduce prompt), alternating within each repeat. Target: at least 0.9x.

Every figure is a median over repeats. PDFs are made with fpdf2 (the dev extras).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from webapp.doctext.chunks import Passage
from webapp.doctext.extract import ExtractedText, Unit
from webapp.doctext.samples import contract_pages, make_pdf
from webapp.engine.requests import TextRequest
from webapp.errors import ValidationError
from webapp.services import build_services
from webapp.services.documents import DocumentService
from webapp.services.team import build_team_services
from webapp.settings import Settings
from webapp.users import User

PAGE_WORDS = 400
PARTS = ("ingest", "retrieval", "summary")
OWNER, OTHER = User("bench-owner", "Bench owner"), User("bench-other", "Bench other")


def _median(values: list[float], digits: int = 3) -> float:
    return round(statistics.median(values), digits)


def bench_documents(
    settings: Settings,
    text_model: str,
    embedding_model: str,
    pages: int = 100,
    chunks: int = 10_000,
    summary_pages: int = 10,
    repeats: int = 3,
    parts: tuple[str, ...] = PARTS,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="atelier-bench-documents-") as scratch:
        settings = replace(
            settings,
            data_dir=Path(scratch),
            database_url=None,
            auth_mode="none",
            queue_max_per_user=256,
            queue_max_total=512,
        )
        team = build_team_services(settings, client="system")
        services = build_services(settings)
        try:
            with team.store.session() as session:
                from webapp.store import ensure_person

                for user in (OWNER, OTHER):
                    ensure_person(session, user.id, user.display_name, "member")
            registry = services.engine.registry()
            registry.get(text_model, kind="text")
            registry.get(embedding_model, kind="embedding")
            documents = DocumentService(
                settings, services.engine, team.store, embedding_model=embedding_model
            )
            measured: dict[str, Any] = {
                "bench": "documents",
                "device": str(services.engine.device),
                "repeats": repeats,
            }
            steps = {
                "ingest": lambda: _ingest(documents, pages, repeats),
                "retrieval": lambda: _retrieval(documents, embedding_model, chunks, repeats),
                "summary": lambda: _summary(
                    documents, services, text_model, summary_pages, repeats
                ),
            }
            for part in parts:
                measured[part] = steps[part]()
                print(json.dumps({part: measured[part]}), file=sys.stderr, flush=True)
            return measured
        finally:
            services.close()
            team.close()


# -- 1. extraction and embedding ------------------------------------------------------------


def _ingest(documents: DocumentService, pages: int, repeats: int) -> dict[str, Any]:
    pdf = make_pdf(contract_pages(pages, words_per_page=PAGE_WORDS))
    extract, embed, total, cpu, passages = [], [], [], [], 0
    for repeat in range(repeats + 1):  # the first loads the embedding model: a warm-up
        started, cpu_started = time.perf_counter(), time.process_time()
        info = documents.upload(OWNER, f"contract-{repeat}.pdf", pdf)
        uploaded = time.perf_counter()
        documents.index.wait(info.id)
        done = time.perf_counter()
        cpu_used = time.process_time() - cpu_started
        model = documents.index.embedding_model()
        if documents.library.unindexed(OWNER, info.id, model):
            raise RuntimeError("indexing did not finish")
        passages = info.passages
        documents.delete(OWNER, info.id)
        if repeat:
            extract.append(uploaded - started)
            embed.append(done - uploaded)
            total.append(done - started)
            cpu.append(cpu_used)
    return {
        "pages": pages,
        "words_per_page": PAGE_WORDS,
        "pdf_bytes": len(pdf),
        "passages": passages,
        "embedding_model": documents.index.embedding_model(),
        "extract_s": _median(extract),
        "embed_s": _median(embed),
        "total_s": _median(total),
        "target_total_s": 30,
        # CPU seconds of this process (all its threads; the parser process not counted):
        # what the work costs whatever else the machine is doing.
        "cpu_s": _median(cpu),
        "load_average": round(os.getloadavg()[0], 1),
        "passages_per_s": round(passages / statistics.median(embed), 1),
    }


# -- 2. retrieval ---------------------------------------------------------------------------


def _synthetic(count: int) -> tuple[ExtractedText, list[Passage]]:
    units = tuple(Unit(n, f"passage {n}") for n in range(1, count + 1))
    passages = [Passage(n - 1, n, n, f"passage {n}") for n in range(1, count + 1)]
    return ExtractedText("paste", "paragraph", units, count), passages


def _retrieval(
    documents: DocumentService, embedding_model: str, chunks: int, repeats: int
) -> dict[str, Any]:
    library, index = documents.library, documents.index
    model = index.embedding_model()
    generator = np.random.default_rng(0)
    width = documents._engine.submit(_question(model, "width"), OWNER).result(600).vectors.shape[1]
    ids = {}
    for user in (OWNER, OTHER):
        extracted, passages = _synthetic(chunks)
        info = library.add(user, f"{chunks} passages", extracted, passages, None)
        vectors = generator.standard_normal((chunks, width)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        library.save_vectors(info.id, model, [p.position for p in passages], vectors)
        ids[user.id] = info.id
    question = "When may either party end the agreement?"
    index.nearest(OWNER, ids[OWNER.id], question, 5)  # warm-up
    ranking, embedding, whole = [], [], []
    for _ in range(max(repeats, 5)):
        started = time.perf_counter()
        found = library.vectors(OWNER, ids[OWNER.id], model)
        scores = found.matrix @ found.matrix[0]
        top = np.argsort(-scores)[:5]
        ranking.append(time.perf_counter() - started)
        assert len(found.positions) == chunks and int(found.positions[top[0]]) == 0
        started = time.perf_counter()
        documents._engine.submit(_question(model, question), OWNER).result(60)
        embedding.append(time.perf_counter() - started)
        started = time.perf_counter()
        index.nearest(OWNER, ids[OWNER.id], question, 5)
        whole.append(time.perf_counter() - started)
    return {
        "chunks": chunks,
        "other_people_chunks": chunks,
        "dimensions": width,
        "read_and_rank_ms": round(statistics.median(ranking) * 1000, 1),
        "question_embedding_ms": round(statistics.median(embedding) * 1000, 1),
        "retrieval_ms": round(statistics.median(whole) * 1000, 1),
        "target_ms": 200,
        "load_average": round(os.getloadavg()[0], 1),
    }


def _question(model: str, text: str):
    from webapp.engine.requests import EmbeddingRequest

    return EmbeddingRequest(model, (text,), "Question")


# -- 3. summary rate against the text lane --------------------------------------------------


def _summary(
    documents: DocumentService, services, model: str, pages: int, repeats: int
) -> dict[str, Any]:
    pdf = make_pdf(contract_pages(pages, words_per_page=PAGE_WORDS))
    info = documents.upload(OWNER, "summary.pdf", pdf)
    engine = services.engine
    first = documents.summarize(OWNER, info.id, "short", model)
    result = first.result(3600)  # warm-up; its notes make the baseline's reduce prompt
    task = first.job.request.task
    notes = [task.map_note(i, note) for i, note in enumerate(result.notes)]
    final = task.reduce_messages(notes, True)
    try:  # the notes combined in one prompt, as the lane does when they fit
        fits = len(engine.tokens.chat_ids(model, [vars(m) for m in final])) + task.reduce_tokens
        final = final if fits <= engine.tokens.context_length(model) else None
    except ValidationError:
        final = None
    document_rates, text_rates, tokens = [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        run = documents.summarize(OWNER, info.id, "short", model)
        done = run.result(3600)
        document_rates.append(done.tokens / (time.perf_counter() - started))
        tokens.append(done.tokens)
        started = time.perf_counter()
        generated = _as_text_jobs(engine, model, task, final)
        text_rates.append(generated / (time.perf_counter() - started))
    return {
        "model": model,
        "pages": pages,
        "map_prompts": len(task.map_prompts()),
        "points": len(result.points),
        "coverage": result.coverage.message,
        "document_tokens": int(statistics.median(tokens)),
        "document_tok_s": _median(document_rates, 2),
        "text_lane_tok_s": _median(text_rates, 2),
        "baseline_has_the_final_prompt": final is not None,
        "load_average": round(os.getloadavg()[0], 1),
        "ratio": round(statistics.median(document_rates) / statistics.median(text_rates), 3),
        "target_ratio": 0.9,
    }


def _as_text_jobs(engine, model: str, task, final) -> int:
    """The summary's prompts as plain text jobs: every map prompt at once, then the final
    reduce prompt; tokens generated."""
    jobs = [
        engine.submit(
            TextRequest(model, p.messages, max_new_tokens=p.max_new_tokens, temperature=0.0),
            OWNER,
        )
        for p in task.map_prompts()
    ]
    generated = sum(job.result(3600).tokens for job in jobs)
    if final is None:
        return generated
    reduce = TextRequest(model, final, max_new_tokens=task.reduce_tokens, temperature=0.0)
    return generated + engine.submit(reduce, OWNER).result(3600).tokens
