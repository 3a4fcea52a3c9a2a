"""Passages and windows.

A passage is a short run of text (at most `PASSAGE_WORDS` words) on one page, or over a few
consecutive paragraphs: what retrieval ranks and what a citation opens. Passages are made
once, at upload, and kept with the document.

A window is a run of consecutive passages that fits what a text model reads at once,
leaving room for the instructions and the answer: what the map step of a summary or an
extraction gives the model. Windows are made per job, because they depend on the model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from webapp.doctext.extract import ExtractedText

PASSAGE_WORDS = 140  # all-MiniLM-L6-v2 reads 256 word pieces: about 180 English words
SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")


@dataclass(frozen=True)
class Passage:
    position: int  # 0, 1, 2… in reading order
    unit_start: int  # first page or paragraph
    unit_end: int  # last page or paragraph
    text: str
    heading: bool = False  # a heading on its own (sections for comparisons)


def make_passages(document: ExtractedText, words: int = PASSAGE_WORDS) -> list[Passage]:
    """The document's passages. On pages, a passage never crosses a page; short paragraphs
    are gathered up to `words`; a long paragraph is split between sentences (or, for a
    sentence longer than `words`, between words)."""
    passages: list[Passage] = []
    gathered: list[tuple[int, str]] = []  # (unit, text) waiting to become a passage

    def flush() -> None:
        if gathered:
            text = "\n\n".join(text for _, text in gathered)
            passages.append(Passage(len(passages), gathered[0][0], gathered[-1][0], text))
            gathered.clear()

    for unit in document.units:
        if unit.heading:
            flush()
            passages.append(Passage(len(passages), unit.number, unit.number, unit.text, True))
            continue
        if document.unit == "page":
            flush()  # a passage stays on its page
        for piece in _pieces(unit.text, words):
            count = len(piece.split())
            if gathered and sum(len(t.split()) for _, t in gathered) + count > words:
                flush()
            gathered.append((unit.number, piece))
    flush()
    return passages


def _pieces(text: str, words: int) -> list[str]:
    """The text in pieces of at most `words` words, cut between paragraphs, then sentences,
    then words."""
    pieces: list[str] = []
    for paragraph in text.split("\n\n"):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if len(paragraph.split()) <= words:
            pieces.append(paragraph)
            continue
        current: list[str] = []
        for sentence in SENTENCE_END.split(paragraph):
            tokens = sentence.split()
            while len(tokens) > words:  # a sentence longer than a passage
                if current:
                    pieces.append(" ".join(current))
                    current = []
                pieces.append(" ".join(tokens[:words]))
                tokens = tokens[words:]
            if current and len(current) + len(tokens) > words:
                pieces.append(" ".join(current))
                current = []
            current.extend(tokens)
        if current:
            pieces.append(" ".join(current))
    return pieces


@dataclass(frozen=True)
class Window:
    passages: tuple[Passage, ...]

    @property
    def units(self) -> tuple[int, ...]:
        """Every page or paragraph the window covers."""
        covered = set()
        for passage in self.passages:
            covered.update(range(passage.unit_start, passage.unit_end + 1))
        return tuple(sorted(covered))

    @property
    def first(self) -> int:
        return self.passages[0].unit_start

    @property
    def last(self) -> int:
        return self.passages[-1].unit_end


def make_windows(passages: Sequence[Passage], tokens: Sequence[int], budget: int) -> list[Window]:
    """Consecutive passages packed into windows of at most `budget` tokens (`tokens[i]` is
    passage i's count, page markers included). A passage longer than the budget is a window
    of its own, cut by the caller to fit."""
    windows: list[Window] = []
    current: list[Passage] = []
    used = 0
    for passage, count in zip(passages, tokens, strict=True):
        if current and used + count > budget:
            windows.append(Window(tuple(current)))
            current, used = [], 0
        current.append(passage)
        used += count
    if current:
        windows.append(Window(tuple(current)))
    return windows
