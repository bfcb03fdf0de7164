"""Send windows in the customer's own time: nobody in Mexico City at 3 a.m.

A phone's time zones come from ``phonenumbers.timezone`` (several for Mexican, Brazilian or
US mobiles, where the prefix says little): a row is sent only when ``[schedule] hours`` (and
``days``) hold in every one of them. A number with no zone uses ``[schedule] timezone``.
All times come from :func:`importer.timing.clock`, so tests run windows in virtual time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as phone_timezones

from .config import DAYS, ScheduleSettings

_LOOKAHEAD_DAYS = 8


@lru_cache(maxsize=65536)
def zones_of(e164: str, fallback: str) -> tuple[str, ...]:
    """The IANA zones of a number, or ``(fallback,)`` when the data has none."""
    zones = phone_timezones.time_zones_for_number(phonenumbers.parse(e164))
    known = tuple(zone for zone in zones if zone != "Etc/Unknown")
    return known or (fallback,)


class SendWindow:
    """When a phone may be messaged, by ``[schedule]``."""

    def __init__(self, settings: ScheduleSettings) -> None:
        self.settings = settings
        self.start, self.end = settings.window()
        self.days = frozenset(DAYS.index(day) for day in settings.days)

    def zones(self, phone: str) -> tuple[str, ...]:
        return zones_of(phone, self.settings.timezone)

    def _open_spans(self, zone: str, now: datetime) -> list[tuple[datetime, datetime]]:
        """The window's spans (UTC) in one zone, from yesterday for about a week."""
        place = ZoneInfo(zone)
        today = now.astimezone(place).date()
        spans = []
        for offset in range(-1, _LOOKAHEAD_DAYS):
            day = today + timedelta(days=offset)
            if day.weekday() in self.days:
                # Both ends in local wall time: on the night clocks change, 22:00-06:00 is
                # seven or nine hours, never 06:00 plus or minus an hour.
                last = day + timedelta(days=1) if self.end <= self.start else day
                opens = datetime.combine(day, self.start, tzinfo=place).astimezone(UTC)
                closes = datetime.combine(last, self.end, tzinfo=place).astimezone(UTC)
                spans.append((opens, closes))
        return spans

    def opens_at(self, phone: str, moment: float) -> float | None:
        """None when the window is open now in all the phone's zones; else when it next is
        (``inf`` when it never is within a week, as for zones whose windows never meet)."""
        now = datetime.fromtimestamp(moment, UTC)
        common = [(now - timedelta(days=2), now + timedelta(days=_LOOKAHEAD_DAYS))]
        for zone in self.zones(phone):
            common = [(max(a, c), min(b, d)) for a, b in common
                      for c, d in self._open_spans(zone, now) if max(a, c) < min(b, d)]
        for opens, closes in sorted(common):
            if opens <= now < closes:
                return None
            if opens > now:
                return opens.timestamp()
        return float("inf")

    def never_opens(self, phone: str) -> str:
        """Why a row whose window is never open within a week is not sent, and what to do."""
        return (f"not sent: its send window ([schedule]) is never open in all of its time"
                f" zones at once ({', '.join(self.zones(phone))}) within a week; widen"
                " [schedule] hours or days, or send it without [schedule]")

    def describe_opening(self, phone: str, moment: float) -> str:
        """When the window opens (``moment``, never ``inf``), in the customer's time and in
        UTC."""
        zone = self.zones(phone)[0]
        when = datetime.fromtimestamp(moment, UTC)
        local = when.astimezone(ZoneInfo(zone))
        return (f"{local:%Y-%m-%d %H:%M} {zone} ({when:%Y-%m-%d %H:%M} UTC)")


def parse_start(text: str) -> float:
    """``--start-at``: ISO 8601, with an offset or in this machine's local time."""
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.astimezone()  # this machine's zone
    return when.timestamp()

