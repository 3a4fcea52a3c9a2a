"""One page of a longer list, as every listing service returns it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from webapp.errors import ValidationError

T = TypeVar("T")
MAX_PER_PAGE = 200


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int  # items on every page together
    page: int  # 1 is the first
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_more(self) -> bool:
        return self.page < self.pages


def check_page(page: int, per_page: int) -> int:
    """The offset of `page`, after checking both numbers."""
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise ValidationError("Pages are numbered from 1.", field="page")
    if isinstance(per_page, bool) or not isinstance(per_page, int):
        raise ValidationError("Items per page must be a whole number.", field="per_page")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise ValidationError(f"Show 1 to {MAX_PER_PAGE} items per page.", field="per_page")
    return (page - 1) * per_page
