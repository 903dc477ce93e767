"""Query syntax errors and warnings, positioned in the query text the analyst typed."""

from __future__ import annotations

from dataclasses import dataclass

from watcher.errors import RuleError


class QuerySyntaxError(RuleError):
    """A query that cannot be parsed. `offset`/`length` locate the culprit in the ORIGINAL text."""

    def __init__(self, message: str, offset: int, length: int = 1, *, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.offset = offset
        self.length = max(length, 0)

    def __reduce__(self) -> tuple[type[QuerySyntaxError], tuple[str, int, int], dict[str, object]]:
        """Picklable (rules may be checked in another process)."""
        return (type(self), (self.message, self.offset, self.length), {"hint": self.hint})


@dataclass(frozen=True, slots=True)
class QueryWarning:
    """Something legal that probably does not mean what the analyst thinks (e.g. AND/OR mix)."""

    offset: int
    message: str
    length: int = 1
