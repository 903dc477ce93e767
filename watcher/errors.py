"""One error family, so the CLI and the daemon can turn any failure into one actionable line.

Every error names its culprit (a feed URL, a rule file and line, a setting, a destination) in its
message; code never needs to inspect a traceback to tell the user what went wrong.
"""

from __future__ import annotations


class WatcherError(Exception):
    """Base of every error news-watcher raises on purpose. `exit_code` is what the CLI returns."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def __reduce__(self) -> tuple[object, ...]:
        """Picklable with keyword-only arguments, so errors cross from pool processes intact."""
        return (_restore, (type(self), self.args, self.__dict__))


def _restore(cls: type[WatcherError], args: tuple[object, ...], state: dict[str, object]):
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class ConfigError(WatcherError):
    """An invalid setting: the message names the key and where it came from."""

    exit_code = 2


class FetchError(WatcherError):
    """A feed or article could not be fetched (network, HTTP status, limits)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        permanent: bool = False,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.retry_after = retry_after
        self.permanent = permanent


class ParseError(WatcherError):
    """Fetched bytes are not a usable feed."""


class ExtractError(WatcherError):
    """An article page could not be turned into text (the feed's own text is used instead)."""


class RuleError(WatcherError):
    """Invalid rule file or query; `errors` holds every problem, as `file:line:col: message`."""

    exit_code = 1

    def __init__(self, message: str, *, errors: list[str] | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.errors = errors or [message]


class DeliveryError(WatcherError):
    """A destination refused or could not take a message; `permanent` decides retry vs dead."""

    def __init__(self, message: str, *, permanent: bool = False, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.permanent = permanent


class StorageError(WatcherError):
    """The database is unreachable, locked by another daemon, or its schema is out of date."""

    exit_code = 3
