"""The document tasks the engine's document lane runs: a summary (map-reduce), an extraction
(map), a question (one prompt over retrieved passages). Each builds its prompts up front and
turns the model's answers into a plain result with page references and, for whole-document
tasks, the coverage: which pages the model was given, counted from the prompts it answered.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from webapp.doctext.chunks import Passage, Window
from webapp.doctext.prompts import (
    GUARD,
    NOTES_GUARD,
    Point,
    citations,
    cite,
    points,
    quote,
    quote_notes,
)
from webapp.engine.requests import ChatMessage, DocumentOutcome, DocumentPrompt

LENGTHS = {"short": (5, 320), "medium": (10, 640), "long": (20, 1200)}  # points, tokens
NOTE_TOKENS = 256  # one window's notes
EXTRACTION_TOKENS = 384  # one window's table rows
ANSWER_TOKENS = 512
NOT_FOUND = "Not found in the document."
FIELDS = {
    "parties": "who the agreement is between (people or organisations)",
    "dates": "dates and deadlines: effective date, term, due dates",
    "amounts": "sums of money, fees, prices and percentages",
    "obligations": "what a party must do",
    "termination": "how and when the agreement can end",
    "renewal": "whether and how the agreement renews or is extended",
}


@dataclass(frozen=True)
class Coverage:
    """Which pages (or paragraphs) the model was given, told truthfully."""

    unit: str
    total: int
    read: tuple[int, ...]
    blank: tuple[int, ...] = ()  # pages with no text to read

    @property
    def complete(self) -> bool:
        return len(self.read) + len(self.blank) >= self.total

    @property
    def message(self) -> str:
        unit, total = self.unit, self.total
        if not self.complete:
            missed = sorted(set(range(1, total + 1)) - set(self.read) - set(self.blank))
            return f"Only {len(self.read)} of {total} {unit}s were read: not {cite(unit, missed)}."
        words = f"All {total} {unit}s were read." if total != 1 else f"The one {unit} was read."
        if self.blank:
            words += (
                f" {cite(unit, self.blank)[1:-1].capitalize()} had no text on them "
                "(pictures or scans), so nothing on them was read."
            )
        return words


def _coverage(windows: tuple[Window, ...], outcome: DocumentOutcome, task) -> Coverage:
    read = sorted({u for i in outcome.visited for u in windows[i].units})
    return Coverage(task.unit, task.unit_count, tuple(read), task.blank)


def _window_prompts(windows, unit, system, max_new_tokens) -> tuple[DocumentPrompt, ...]:
    return tuple(
        DocumentPrompt(
            messages=(ChatMessage("system", system), ChatMessage("user", quote(w.passages, unit))),
            units=w.units,
            passages=tuple(p.position for p in w.passages),
            max_new_tokens=max_new_tokens,
        )
        for w in windows
    )


# -- summary ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SummaryResult:
    points: tuple[Point, ...]
    text: str  # the model's final answer, as written
    coverage: Coverage
    tokens: int
    seconds: float
    notes: tuple[str, ...] = ()  # each window's notes, in order


def summary_map_system(unit: str) -> str:
    return (
        f"{GUARD}\nYou take notes on one part of a long document for its summary. Write the "
        "most important points of this part as a short list: one point per line, starting "
        f"with '- ', each ending with the {unit}s it comes from, like {cite(unit, [3])}. "
        "Write only what the text says."
    )


@dataclass(frozen=True)
class SummaryTask:
    unit: str
    unit_count: int
    windows: tuple[Window, ...]
    length: str = "medium"
    blank: tuple[int, ...] = ()
    note_tokens: int = NOTE_TOKENS  # each window's notes at most
    answer_tokens: int = 0  # the summary at most; 0: as the length says
    name: str = "summary"
    prompts: tuple[DocumentPrompt, ...] = field(init=False, repr=False)

    def __post_init__(self):
        system = summary_map_system(self.unit)
        made = _window_prompts(self.windows, self.unit, system, self.note_tokens)
        object.__setattr__(self, "prompts", made)

    @property
    def reduce_tokens(self) -> int:
        return self.answer_tokens or LENGTHS[self.length][1]

    def map_prompts(self) -> tuple[DocumentPrompt, ...]:
        return self.prompts

    def map_note(self, index: int, answer: str) -> str:
        window = self.windows[index]
        return f"Notes on {self.unit}s {window.first}–{window.last}:\n{answer.strip()}"

    def reduce_messages(self, notes: list[str], final: bool) -> tuple[ChatMessage, ...]:
        count, _ = LENGTHS[self.length]
        if final:
            ask = (
                f"Write a summary of the whole document from these notes, in at most {count} "
                "points, most important first: one point per line, starting with '- ', each "
                f"ending with the {self.unit}s it comes from, like {cite(self.unit, [3, 4])}. "
                f"Keep the {self.unit} references of the notes."
            )
        else:
            ask = (
                "Combine these notes into a shorter list of the most important points, one per "
                f"line starting with '- ', keeping the {self.unit} references of the notes."
            )
        return (
            ChatMessage("system", f"{NOTES_GUARD}\n{ask}"),
            ChatMessage("user", quote_notes(notes)),
        )

    def finish(self, outcome: DocumentOutcome) -> SummaryResult:
        text = outcome.final or ""
        allowed = range(1, self.unit_count + 1)
        return SummaryResult(
            points(text, allowed),
            text,
            _coverage(self.windows, outcome, self),
            outcome.tokens,
            outcome.seconds,
            outcome.notes,
        )


# -- extraction ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtractedItem:
    field: str
    value: str
    units: tuple[int, ...]  # where it is: the page the model named, else where the words are
    passage: int | None  # the passage that holds it, when the words were found


@dataclass(frozen=True)
class ExtractionResult:
    fields: tuple[str, ...]
    items: tuple[ExtractedItem, ...]
    coverage: Coverage
    tokens: int
    seconds: float


def extraction_system(unit: str, fields: tuple[str, ...]) -> str:
    wanted = "\n".join(
        f"- {name}" + (f": {FIELDS[name]}" if name in FIELDS else "") for name in fields
    )
    return (
        f"{GUARD}\nFind these fields in the quoted part of a document:\n{wanted}\n"
        f"For each item you find, write one line: field | value | {unit}. Use the field names "
        "exactly as listed, copy the value's words from the text, and give the number of the "
        f"{unit} it is on. Write nothing else. If none is found, write NONE."
    )


@dataclass(frozen=True)
class ExtractionTask:
    unit: str
    unit_count: int
    windows: tuple[Window, ...]
    fields: tuple[str, ...]  # names; the standard ones have descriptions in FIELDS
    blank: tuple[int, ...] = ()
    row_tokens: int = EXTRACTION_TOKENS  # each window's rows at most
    name: str = "extraction"
    reduce_tokens: int = 0
    prompts: tuple[DocumentPrompt, ...] = field(init=False, repr=False)

    def __post_init__(self):
        system = extraction_system(self.unit, self.fields)
        prompts = _window_prompts(self.windows, self.unit, system, self.row_tokens)
        object.__setattr__(self, "prompts", prompts)

    def map_prompts(self) -> tuple[DocumentPrompt, ...]:
        return self.prompts

    def map_note(self, index: int, answer: str) -> str:
        return answer

    def reduce_messages(self, notes: list[str], final: bool) -> tuple[ChatMessage, ...]:
        return ()

    def finish(self, outcome: DocumentOutcome) -> ExtractionResult:
        items: dict[tuple[str, str], ExtractedItem] = {}
        for index in outcome.visited:
            for item in self._rows(self.windows[index], outcome.notes[index]):
                items.setdefault((item.field, item.value.casefold()), item)
        return ExtractionResult(
            self.fields,
            tuple(items.values()),
            _coverage(self.windows, outcome, self),
            outcome.tokens,
            outcome.seconds,
        )

    def _rows(self, window: Window, answer: str) -> list[ExtractedItem]:
        rows = []
        for line in answer.splitlines():
            parts = [part.strip(" *`\t") for part in line.strip().strip("|").split("|")]
            if len(parts) < 2 or not parts[1] or parts[1].upper() == "NONE":
                continue
            name = next(
                (f for f in self.fields if parts[0].casefold().startswith(f.casefold())), None
            )
            if name is None:
                continue
            value = " ".join(parts[1].split())[:500]
            holder = next(
                (
                    p
                    for p in window.passages
                    if value.casefold() in " ".join(p.text.split()).casefold()
                ),
                None,
            )
            named = [int(n) for n in "".join(parts[2:3]).replace("p.", " ").split() if n.isdigit()]
            named = [n for n in named if n in window.units]
            if holder is not None and (
                not named or named[0] not in range(holder.unit_start, holder.unit_end + 1)
            ):
                named = list(range(holder.unit_start, holder.unit_end + 1))
            units = tuple(named) or window.units
            rows.append(ExtractedItem(name, value, units, holder.position if holder else None))
        return rows


# -- question --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Citation:
    unit: int
    passages: tuple[int, ...]  # positions of the passages on that page given to the model


@dataclass(frozen=True)
class QuestionResult:
    question: str
    answer: str  # "Not found in the document." when it is not
    found: bool
    citations: tuple[Citation, ...]
    sources: tuple[int, ...]  # positions of every passage the model was given
    tokens: int
    seconds: float


@dataclass(frozen=True)
class QuestionTask:
    unit: str
    unit_count: int
    question: str
    passages: tuple[Passage, ...]  # retrieved, best first
    answer_tokens: int = ANSWER_TOKENS
    name: str = "answer"
    reduce_tokens: int = 0
    prompts: tuple[DocumentPrompt, ...] = field(init=False, repr=False)

    def __post_init__(self):
        system = (
            f"{GUARD}\nAnswer the question using only the passages quoted from the document. "
            f"After each sentence, give the {self.unit}s it comes from, like "
            f"{cite(self.unit, [3])}. If the passages do not contain the answer, reply exactly: "
            "NOT FOUND"
        )
        ordered = sorted(self.passages, key=lambda p: p.position)
        user = f"{quote(ordered, self.unit)}\n\nQuestion: {self.question}"
        units = tuple(sorted({u for p in ordered for u in range(p.unit_start, p.unit_end + 1)}))
        prompt = DocumentPrompt(
            (ChatMessage("system", system), ChatMessage("user", user)),
            units,
            tuple(p.position for p in ordered),
            self.answer_tokens,
        )
        object.__setattr__(self, "prompts", (prompt,))

    def map_prompts(self) -> tuple[DocumentPrompt, ...]:
        return self.prompts

    def map_note(self, index: int, answer: str) -> str:
        return answer

    def reduce_messages(self, notes: list[str], final: bool) -> tuple[ChatMessage, ...]:
        return ()

    def finish(self, outcome: DocumentOutcome) -> QuestionResult:
        answer = (outcome.notes[0] if outcome.notes else "").strip()
        sources = tuple(p.position for p in self.passages)
        if not answer or answer.upper().strip(" .!").startswith("NOT FOUND"):
            return QuestionResult(
                self.question, NOT_FOUND, False, (), sources, outcome.tokens, outcome.seconds
            )
        cited, _ = citations(answer, self.prompts[0].units)
        found = tuple(
            Citation(
                unit, tuple(p.position for p in self.passages if p.unit_start <= unit <= p.unit_end)
            )
            for unit in cited
        )
        return QuestionResult(
            self.question, answer, True, found, sources, outcome.tokens, outcome.seconds
        )
