"""The practice's own calendar: its time zone, today, and the bounds of its days."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

from django.conf import settings

from careloop.core import clock


def practice_zone() -> ZoneInfo:
    return ZoneInfo(settings.PRACTICE_TIME_ZONE)


def practice_today() -> datetime.date:
    """Today's date where the practice is (not in UTC, which is tomorrow by evening)."""
    return clock.now().astimezone(practice_zone()).date()


def day_start(day: datetime.date) -> datetime.datetime:
    """The aware instant the practice's `day` begins (midnight local, DST-correct)."""
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=practice_zone())


def age_on(birth_date: datetime.date, day: datetime.date) -> int:
    """Age in whole years on `day` (a 29 February birthday counts on 1 March)."""
    before_birthday = (day.month, day.day) < (birth_date.month, birth_date.day)
    return day.year - birth_date.year - int(before_birthday)
