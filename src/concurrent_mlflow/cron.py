"""Cron expressions of schedules: validation, and the tick arithmetic the scheduler needs.

An expression has 5 fields (`minute hour day-of-month month day-of-week`) or 6, the sixth being *seconds*
(croniter's convention: `* * * * * */5` is every 5 seconds). Seconds exist for tests and for sub-minute
micro-batches; day-to-day schedules use 5 fields. Ticks are computed in the schedule's IANA time zone, so
`0 2 * * *` in `Europe/Paris` stays at 02:00 local time across daylight-saving changes, and are returned in
UTC, which is what the store holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from croniter import croniter  # type: ignore[import-untyped]  # no stubs in the dev group

from concurrent_mlflow.errors import Problem, ScheduleValidationError

FIELDS = (5, 6)


@dataclass(frozen=True)
class Cron:
    """A validated cron expression in a time zone; build it with `parse_cron`."""

    expression: str
    timezone: str

    def next_after(self, moment: datetime) -> datetime:
        """The first tick strictly after `moment`, in UTC."""
        ticks = croniter(self.expression, _aware(moment).astimezone(ZoneInfo(self.timezone)))
        found: datetime = ticks.get_next(datetime)
        return found.astimezone(UTC)

    def latest_at_or_before(self, moment: datetime) -> datetime:
        """The last tick at or before `moment`, in UTC: after a gap, missed ticks coalesce into it."""
        after = self.next_after(moment)
        ticks = croniter(self.expression, after.astimezone(ZoneInfo(self.timezone)))
        found: datetime = ticks.get_prev(datetime)
        return found.astimezone(UTC)


def parse_cron(expression: str, timezone: str = "UTC") -> Cron:
    """Check both fields and return a `Cron`; raise ScheduleValidationError naming each bad field."""
    normalized = " ".join(expression.split())
    problems = [p for p in (_cron_problem(normalized), _timezone_problem(timezone)) if p]
    if problems:
        raise ScheduleValidationError(problems)
    cron = Cron(normalized, timezone)
    try:
        cron.next_after(datetime.now(UTC))
    except Exception as exc:  # croniter searches a bounded span of years, then gives up
        raise ScheduleValidationError([Problem("cron", f"{normalized!r} never fires ({exc})")]) from exc
    return cron


def _cron_problem(expression: str) -> Problem | None:
    fields = len(expression.split())
    if fields not in FIELDS:
        return Problem(
            "cron",
            f"{expression!r} has {fields} field(s); give 5 (minute hour day-of-month month day-of-week), "
            "or 6 with seconds last (`* * * * * */5`: every 5 seconds)",
        )
    try:
        croniter(expression, datetime(2000, 1, 1, tzinfo=UTC))
    except Exception as exc:  # croniter raises several kinds on bad input; all mean the same to the user
        return Problem("cron", f"{expression!r} is not a valid cron expression: {exc}")
    return None


def _timezone_problem(timezone: str) -> Problem | None:
    if timezone in _zones():
        return None
    return Problem("timezone", f"{timezone!r} is not an IANA time zone name such as 'UTC' or 'Europe/Paris'")


@cache
def _zones() -> frozenset[str]:
    """Names only from the time zone database's own list, so a name never opens an arbitrary file.

    `localtime` and `posixrules` are the host's settings, not zones: a schedule must not change meaning
    when it moves to another server.
    """
    return frozenset(available_timezones()) - {"localtime", "posixrules", "Factory"}


def _aware(moment: datetime) -> datetime:
    """The store hands back naive datetimes from SQLite; they were written as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
