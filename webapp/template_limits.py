"""A Jinja sandbox with limits, for the prompt templates admins write (library/tools/*.toml).

Jinja's sandbox keeps a template away from Python's internals but lets it run as long and
grow as large as it likes. Here one render gets a quarter of a second, ten thousand range()
items in all, no argument, repetition or format width that builds a huge string in one go,
and a million characters of output. Past a limit the render stops with `TemplateLimit`.
What people type is passed in as data, never as template source.
"""

from __future__ import annotations

import functools
import re
import sys
import time
from contextvars import ContextVar
from typing import Any

from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_RENDER_SECONDS = 0.25
MAX_RANGE_ITEMS = 10_000  # across all range() calls of one render
MAX_OUTPUT_CHARS = 1_000_000
MAX_ARGUMENT = MAX_OUTPUT_CHARS  # the largest number a call or filter may be given
MAX_POWER_BITS = 4096
# A format width or precision of 7 digits or more ('%9999999s', '{:>9999999}').
HUGE_WIDTH = re.compile(r"\d{7,}")
TEMPLATE_FILE = "<template>"  # Jinja's file name for code compiled from a string


class TemplateLimit(SecurityError):
    """A template went past one of the limits of a render."""


class _Budget:
    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds
        self.range_items = 0

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateLimit(f"it ran longer than {MAX_RENDER_SECONDS} s")

    def trace(self, frame, event, arg):
        """Line by line through the template's own code (and nothing else): a loop that calls
        nothing still meets the deadline."""
        if frame.f_code.co_filename != TEMPLATE_FILE:
            return None
        return self._trace_line

    def _trace_line(self, frame, event, arg):
        self.check_time()
        return self._trace_line


_budget: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)


def _current() -> _Budget:
    budget = _budget.get()
    if budget is None:
        raise TemplateLimit("templates are rendered only through render_limited")
    return budget


def _check_arguments(values: Any) -> None:
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_ARGUMENT:
            raise TemplateLimit(f"the number {value} is larger than {MAX_ARGUMENT:,}")
        if isinstance(value, str) and HUGE_WIDTH.search(value) and ("%" in value or "{" in value):
            raise TemplateLimit("a format width is larger than allowed")


def _check_access(obj: Any, name: Any) -> None:
    _current().check_time()
    if isinstance(obj, str) and name in ("format", "format_map"):
        _check_arguments([obj])


def _limited_filter(function):
    @functools.wraps(function)  # keeps Jinja's pass_context/pass_environment marks
    def limited(*args, **kwargs):
        _current().check_time()
        _check_arguments([*args, *kwargs.values()])
        return function(*args, **kwargs)

    return limited


class LimitedSandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.globals["range"] = self._range
        self.filters = {name: _limited_filter(f) for name, f in self.filters.items()}

    @staticmethod
    def _range(*args: int) -> range:
        values = range(*args)
        budget = _current()
        budget.range_items += len(values)
        if budget.range_items > MAX_RANGE_ITEMS:
            raise TemplateLimit(f"its loops take more than {MAX_RANGE_ITEMS:,} range() items")
        return values

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (Jinja's own signature)
        _current().check_time()
        _check_arguments([*args, *kwargs.values()])
        return super().call(__context, __obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        _check_access(obj, attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _check_access(obj, argument)
        return super().getitem(obj, argument)

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        _current().check_time()
        if operator == "*":
            sizes = [len(v) for v in (left, right) if isinstance(v, str | list | tuple)]
            times = [v for v in (left, right) if isinstance(v, int)]
            if sizes and times and sizes[0] * times[0] > MAX_OUTPUT_CHARS:
                raise TemplateLimit("a repetition makes more than the output allows")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int):
            if abs(left) > 1 and right * max(left.bit_length(), 1) > MAX_POWER_BITS:
                raise TemplateLimit("a power is larger than allowed")
        elif operator == "%" and isinstance(left, str):
            _check_arguments([left])
        return super().call_binop(context, operator, left, right)

    def render_limited(self, source: str, values: dict[str, Any]) -> str:
        """Render `source` with `values` as data, within the limits."""
        template = self.from_string(source)
        budget = _Budget(MAX_RENDER_SECONDS)
        token = _budget.set(budget)
        previous = sys.gettrace()
        sys.settrace(budget.trace)
        try:
            pieces, length = [], 0
            for piece in template.generate(**values):
                length += len(piece)
                if length > MAX_OUTPUT_CHARS:
                    raise TemplateLimit(f"it writes more than {MAX_OUTPUT_CHARS:,} characters")
                pieces.append(piece)
            return "".join(pieces)
        finally:
            sys.settrace(previous)
            _budget.reset(token)
