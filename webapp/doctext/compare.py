"""Two versions of a document, section by section: what was added, removed or changed
(found with difflib, no model), and the task that has a model summarise the changes with
page references.

Sections start at headings (Word heading styles, Markdown `#` lines); a document without
headings is compared page by page (or paragraph by paragraph).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from webapp.doctext.chunks import Passage
from webapp.doctext.prompts import (
    GUARD,
    NOTES_GUARD,
    Point,
    cite,
    defuse,
    marker,
    points,
    quote_notes,
)
from webapp.documents import word_changes
from webapp.engine.requests import ChatMessage, DocumentOutcome, DocumentPrompt

CHANGE_NOTE_TOKENS = 200
MAX_WORD_CHANGES = 12  # shown per section


@dataclass(frozen=True)
class Section:
    title: str
    units: tuple[int, ...]
    text: str


@dataclass(frozen=True)
class SectionChange:
    kind: str  # added | removed | changed
    title: str
    old_units: tuple[int, ...]
    new_units: tuple[int, ...]
    old_text: str
    new_text: str
    words: tuple[tuple[str, str], ...] = ()  # (before, after) pairs, the first few


def sections(passages: list[Passage], unit: str) -> list[Section]:
    """The document's sections in order."""
    if any(p.heading for p in passages):
        found: list[tuple[str, list[Passage]]] = []
        for passage in passages:
            if passage.heading or not found:
                title = passage.text.lstrip("#").strip() if passage.heading else "Opening"
                found.append((title, []))
            if not passage.heading:
                found[-1][1].append(passage)
        return [_section(title, members, unit) for title, members in found]
    by_unit: dict[int, list[Passage]] = {}
    for passage in passages:
        by_unit.setdefault(passage.unit_start, []).append(passage)
    return [_section(f"{unit.capitalize()} {n}", members, unit) for n, members in by_unit.items()]


def _section(title: str, members: list[Passage], unit: str) -> Section:
    units = sorted({u for p in members for u in range(p.unit_start, p.unit_end + 1)})
    return Section(title, tuple(units), "\n\n".join(p.text for p in members))


def _key(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))


def differences(old: list[Section], new: list[Section]) -> list[SectionChange]:
    """Sections matched by title where there are headings, else by content; unmatched ones
    are added or removed, matched ones with other words are changed."""
    by_title = all(s.title.split()[0] not in ("Page", "Paragraph") for s in old + new)
    keys = (lambda s: _key(s.title)) if by_title else (lambda s: _key(s.text))
    matcher = difflib.SequenceMatcher(a=[keys(s) for s in old], b=[keys(s) for s in new])
    changes: list[SectionChange] = []
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag == "equal" and not by_title:
            continue
        # Titles that match are one section; pages that differ are paired in order.
        pairs = list(zip(old[a0:a1], new[b0:b1], strict=False))
        if by_title and tag != "equal":
            pairs = []
        for before, after in pairs:
            if _key(before.text) != _key(after.text):
                changes.append(_changed(before, after))
        for before in old[a0 + len(pairs) : a1]:
            changes.append(
                SectionChange("removed", before.title, before.units, (), before.text, "")
            )
        for after in new[b0 + len(pairs) : b1]:
            changes.append(SectionChange("added", after.title, (), after.units, "", after.text))
    return changes


def _changed(before: Section, after: Section) -> SectionChange:
    words = tuple((c.before, c.after) for c in word_changes(before.text, after.text))
    return SectionChange(
        "changed",
        after.title,
        before.units,
        after.units,
        before.text,
        after.text,
        words[:MAX_WORD_CHANGES],
    )


@dataclass(frozen=True)
class ComparisonResult:
    changes: tuple[SectionChange, ...]
    points: tuple[Point, ...]  # the model's summary of what changed
    text: str
    tokens: int
    seconds: float


@dataclass(frozen=True)
class ComparisonTask:
    unit: str
    unit_count: int  # of the new version
    changes: tuple[SectionChange, ...]
    chars_per_side: int = 4000  # each version's text of a section, at most, in one prompt
    answer_tokens: int = 480
    name: str = "comparison"
    prompts: tuple[DocumentPrompt, ...] = field(init=False, repr=False)

    def __post_init__(self):
        system = (
            f"{GUARD}\nTwo versions of one section of a document are quoted, the old and the "
            "new. List briefly what changed in the new version: one point per line starting "
            f"with '- ', each ending with the new version's {self.unit}s, like "
            f"{cite(self.unit, [3])}, or for removed text with the old version's, like "
            f"(old {cite(self.unit, [3])[1:]}."
        )
        made = []
        for change in self.changes:
            old = _side("Old version", change.old_units, change.old_text, self)
            new = _side("New version", change.new_units, change.new_text, self)
            user = f"<document>\nSection: {defuse(change.title)}\n\n{old}\n\n{new}\n</document>"
            made.append(
                DocumentPrompt(
                    (ChatMessage("system", system), ChatMessage("user", user)),
                    change.new_units,
                    (),
                    CHANGE_NOTE_TOKENS,
                )
            )
        object.__setattr__(self, "prompts", tuple(made))

    @property
    def reduce_tokens(self) -> int:
        return self.answer_tokens

    def map_prompts(self) -> tuple[DocumentPrompt, ...]:
        return self.prompts

    def map_note(self, index: int, answer: str) -> str:
        change = self.changes[index]
        return f"Section “{change.title}” ({change.kind}):\n{answer.strip()}"

    def reduce_messages(self, notes: list[str], final: bool) -> tuple[ChatMessage, ...]:
        ask = (
            "Summarise what changed between the two versions of the document, most important "
            "first: one point per line starting with '- ', keeping the page references of the "
            "notes."
        )
        return (
            ChatMessage("system", f"{NOTES_GUARD}\n{ask}"),
            ChatMessage("user", quote_notes(notes)),
        )

    def finish(self, outcome: DocumentOutcome) -> ComparisonResult:
        text = outcome.final or ""
        allowed = range(1, self.unit_count + 1)
        return ComparisonResult(
            self.changes, points(text, allowed), text, outcome.tokens, outcome.seconds
        )


def _side(label: str, units: tuple[int, ...], text: str, task: ComparisonTask) -> str:
    if not units:
        return f"{label}: (none: the section is not in this version)"
    shown = text if len(text) <= task.chars_per_side else text[: task.chars_per_side] + " …"
    return f"{label} {marker(task.unit, units[0], units[-1])}:\n{defuse(shown)}"
