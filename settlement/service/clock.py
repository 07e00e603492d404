"""Time and identifiers for the service: one clock, China Standard Time business days, sortable ids.

Owns: the business date of an instant (settlements belong to the CST day they were committed on) and the
shape of engine-issued ids. Must never be bypassed by a direct ``time.time()`` in a handler: tests and
the crash harness control time through ``Clock``.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from typing import Protocol

CHINA_STANDARD_TIME = dt.timezone(dt.timedelta(hours=8), "CST")
MICROSECONDS_PER_SECOND = 1_000_000


class Clock(Protocol):
    def now_us(self) -> int:
        """Microseconds since the epoch, UTC."""


class SystemClock:
    def now_us(self) -> int:
        return time.time_ns() // 1000


class FixedClock:
    """A clock tests move by hand."""

    def __init__(self, now_us: int) -> None:
        self.current_us = now_us

    def now_us(self) -> int:
        return self.current_us

    def advance(self, seconds: float) -> None:
        self.current_us += int(seconds * MICROSECONDS_PER_SECOND)


def business_date(at_us: int) -> dt.date:
    """The CST calendar day of an instant: the day a settlement is booked on and closed with."""
    return dt.datetime.fromtimestamp(at_us / MICROSECONDS_PER_SECOND, CHINA_STANDARD_TIME).date()


def instant_us(day: dt.date, hour: int = 9) -> int:
    """An instant on a CST day (for tests and the demo)."""
    moment = dt.datetime(day.year, day.month, day.day, hour, tzinfo=CHINA_STANDARD_TIME)
    return int(moment.timestamp()) * MICROSECONDS_PER_SECOND


def new_entry_id(prefix: str, now_us: int) -> str:
    """``S`` + 14 hex digits of time + 8 random hex digits: unique, and sorted ids are in time order."""
    return f"{prefix}{now_us:014x}{secrets.token_hex(4)}"
