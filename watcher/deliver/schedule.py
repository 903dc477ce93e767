"""When things go out: digest periods, quiet hours, retry back-off. Pure functions of time.

Digest times are wall-clock times in the configured IANA zone, so "07:30" stays 07:30 across
daylight-saving changes. A period is named by the local slot it goes out at (`daily:2026-11-21`,
`hourly:2026-11-21T07`, `weekly:2026-W47`); that name is part of the digest's idempotency key, so a
period is sent once however many workers or restarts see it come due.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from watcher.config import DeliverySettings, DigestSettings
from watcher.errors import ConfigError

Frequency = Literal["hourly", "daily", "weekly"]
FREQUENCIES: tuple[Frequency, ...] = ("hourly", "daily", "weekly")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# How far back a digest looks for matches not yet sent to its destination: bounds what a new
# destination, or a rule newly routed to one, receives as its first digest.
LOOKBACK = {"hourly": timedelta(days=7), "daily": timedelta(days=7), "weekly": timedelta(days=14)}


@dataclass(frozen=True, slots=True)
class Period:
    """One digest slot: `key` names it, `at` is when it (was) due, in local time."""

    frequency: str
    key: str
    at: datetime

    @property
    def label(self) -> str:
        """Short human date for subjects: `21 Nov`, `21 Nov 07:00`, `week 47`."""
        if self.frequency == "hourly":
            return f"{self.at.day} {self.at:%b %H:%M}"
        if self.frequency == "weekly":
            return f"week {self.at:%V}, {self.at.day} {self.at:%b}"
        if self.frequency == "daily":
            return f"{self.at.day} {self.at:%b}"
        return f"{self.at.day} {self.at:%b %H:%M}"


def _hh_mm(text: str) -> time:
    hour, minute = text.split(":")
    return time(int(hour), int(minute))


def latest_period(frequency: str, now: datetime, zone: ZoneInfo, digest: DigestSettings) -> Period:
    """The most recent slot of `frequency` at or before `now` (the one that is due now)."""
    local = now.astimezone(zone)
    if frequency == "hourly":
        at = local.replace(minute=0, second=0, microsecond=0)
        return Period("hourly", f"hourly:{at:%Y-%m-%dT%H}", at)
    clock = _hh_mm(digest.at)
    day = local.date()
    if frequency == "daily":
        at = datetime.combine(day, clock, zone)
        if at > local:
            at = datetime.combine(day - timedelta(days=1), clock, zone)
        return Period("daily", f"daily:{at:%Y-%m-%d}", at)
    if frequency == "weekly":
        back = (local.weekday() - WEEKDAYS.index(digest.weekday)) % 7
        at = datetime.combine(day - timedelta(days=back), clock, zone)
        if at > local:
            at = datetime.combine(day - timedelta(days=back + 7), clock, zone)
        return Period("weekly", f"weekly:{at:%G-W%V}", at)
    raise ValueError(f"unknown digest frequency {frequency!r}")


def manual_period(now: datetime, zone: ZoneInfo) -> Period:
    """The period of `watcher digest send --now`: everything undelivered, named by the second."""
    local = now.astimezone(zone).replace(microsecond=0)
    return Period("now", f"now:{local:%Y-%m-%dT%H:%M:%S}", local)


def cron_fields(frequency: str, digest: DigestSettings) -> dict[str, str]:
    """APScheduler cron fields for a frequency's slots (the scheduler runs in the local zone)."""
    clock = _hh_mm(digest.at)
    if frequency == "hourly":
        return {"minute": "0"}
    if frequency == "daily":
        return {"hour": str(clock.hour), "minute": str(clock.minute)}
    return {"day_of_week": digest.weekday, "hour": str(clock.hour), "minute": str(clock.minute)}


# -- quiet hours -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily local window ("22:00-07:00", may span midnight) when alerts wait."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str | None) -> QuietHours | None:
        if not text:
            return None
        try:
            start, end = (part.strip() for part in text.split("-"))
            quiet = cls(_hh_mm(start), _hh_mm(end))
        except ValueError:
            raise ConfigError(
                f'setting alerts.quiet_hours: {text!r} is not "HH:MM-HH:MM" (e.g. "22:00-07:00")'
            ) from None
        if quiet.start == quiet.end:
            raise ConfigError(f"setting alerts.quiet_hours: {text!r} starts and ends at once")
        return quiet

    def contains(self, clock: time) -> bool:
        if self.start < self.end:
            return self.start <= clock < self.end
        return clock >= self.start or clock < self.end

    def release(self, moment: datetime, zone: ZoneInfo) -> datetime:
        """`moment` itself outside quiet hours, else the end of the quiet period it falls in."""
        local = moment.astimezone(zone)
        clock = local.time().replace(tzinfo=None)
        if not self.contains(clock):
            return moment
        day = local.date()
        if self.start > self.end and clock >= self.start:
            day += timedelta(days=1)
        return datetime.combine(day, self.end, zone).astimezone(moment.tzinfo)


# -- retries -----------------------------------------------------------------------------------


def backoff(attempts: int, settings: DeliverySettings) -> timedelta:
    """Exponential: initial, 2×, 4×, … capped at max_backoff (attempts counts the failed one)."""
    exponent = min(max(attempts - 1, 0), 30)
    return timedelta(seconds=min(settings.initial_backoff * 2**exponent, settings.max_backoff))
