"""When a schedule fires: cron expressions (cronsim) or one time, in a named time zone.

Times are epoch seconds everywhere else; here they become aware datetimes in the
schedule's zone so that cron fields mean local wall-clock time. Across DST changes the
rules are Debian cron's, which cronsim implements for expressions naming a minute and an
hour: a time that does not exist that day fires at the first minute that does (02:30 on
the spring-forward day fires at 03:00), a time that exists twice fires once (the first);
an expression firing every minute or every hour goes by real time (no hour fires twice
because it exists twice on the wall clock: the hour after it is a different instant).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from ..core.errors import Problem, UserInputError

# The aliases cron(8) knows; cronsim takes the five fields only.
ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
MAX_CRON_LENGTH = 200


def server_zone() -> str:
    """The server's IANA time zone name (UTC when it cannot be told)."""
    try:
        import tzlocal

        name = tzlocal.get_localzone_name()
    except Exception:  # noqa: BLE001 - an odd machine: UTC is a safe default
        name = None
    return name or "UTC"


def zone(name: str, key: str = "timezone") -> ZoneInfo:
    """The zone called ``name`` (IANA), or a UserInputError naming ``key``."""
    try:
        if not name or name != name.strip() or len(name) > 100 or "\x00" in name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise UserInputError(Problem(
            f"unknown time zone {name!r} (an IANA name such as Europe/Zurich or UTC)",
            key=key)) from None


def cron_fields(expr: str, key: str = "cron") -> str:
    """The five fields of ``expr`` (aliases expanded), checked; UserInputError if invalid."""
    text = " ".join(expr.split())
    fields = ALIASES.get(text.lower(), text)
    if len(expr) > MAX_CRON_LENGTH:
        raise UserInputError(Problem(f"at most {MAX_CRON_LENGTH} characters", key=key))
    if len(fields.split()) != 5:
        raise UserInputError(Problem(
            f"invalid cron expression {expr!r}: five fields (minute hour day-of-month month "
            f"day-of-week) or one of {', '.join(ALIASES)}", key=key))
    try:
        next(CronSim(fields, datetime(2000, 1, 1, tzinfo=timezone.utc)))
    except CronSimError as exc:
        raise UserInputError(Problem(f"invalid cron expression {expr!r}: {exc}",
                                     key=key)) from None
    except StopIteration:
        raise UserInputError(Problem(f"cron expression {expr!r} never fires", key=key)) from None
    return fields


def parse_at(text: str, tz: str, key: str = "at") -> float:
    """An ISO 8601 time (``2026-12-24T18:00``, a zone offset optional: without one it is
    wall-clock time in ``tz``) as epoch seconds."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserInputError(Problem(
            f"invalid time {text!r}: ISO 8601, e.g. 2026-12-24T18:00 or 2026-12-24T18:00+01:00",
            key=key)) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone(tz))
    return when.timestamp()


@dataclass(frozen=True)
class When:
    """A schedule's times: ``cron`` (five fields) in zone ``tz``, or the one time ``at``."""

    cron: str | None
    at: float | None
    tz: str

    def _local(self, t: float) -> datetime:
        return datetime.fromtimestamp(t, zone(self.tz))

    def _forward(self, after: float) -> Iterator[float]:
        """Fire times strictly after ``after``, in order."""
        if self.cron is None:
            if self.at is not None and self.at > after:
                yield self.at
            return
        # cronsim yields times after its start, which it truncates to the second.
        for when in CronSim(self.cron, self._local(after)):
            yield when.timestamp()

    def _backward(self, upto: float) -> Iterator[float]:
        """Fire times at or before ``upto``, latest first."""
        if self.cron is None:
            if self.at is not None and self.at <= upto:
                yield self.at
            return
        # Reverse iteration starts one tick back from a whole second: start one second on.
        start = self._local(float(int(upto)) + 1.0).replace(microsecond=0)
        for when in CronSim(self.cron, start, reverse=True):
            yield when.timestamp()

    def next_times(self, after: float, n: int) -> list[float]:
        """The next ``n`` fire times strictly after ``after`` (fewer if there are none)."""
        out: list[float] = []
        try:
            for t in self._forward(after):
                out.append(t)
                if len(out) == n:
                    break
        except StopIteration:  # cronsim gives up after 50 years without a match
            pass
        return out

    def due(self, since: float, now: float, keep: int, count_up_to: int = 10_000
            ) -> tuple[list[float], int]:
        """The fire times in ``[since, now]``: the latest ``keep`` of them (oldest first),
        and how many earlier ones there are besides (counted up to ``count_up_to``)."""
        kept: list[float] = []
        dropped = 0
        try:
            for t in self._backward(now):
                if t < since:
                    break
                if len(kept) < keep:
                    kept.append(t)
                else:
                    dropped += 1
                    if dropped >= count_up_to:
                        break
        except StopIteration:
            pass
        return sorted(kept), dropped
