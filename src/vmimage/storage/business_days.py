"""Business days as the 2015 guide counts a SAS's validity: UTC, Monday to Friday, no holidays.

A business day here is 24 hours of weekday time, so "7 business days from Monday 10:00" ends on
the next Wednesday at 10:00 and a weekend adds nothing. Holidays differ by country and the guide
names none, so none are skipped (rulings).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

DAY = timedelta(days=1)
WEEK = timedelta(weeks=1)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("business-day arithmetic needs an aware datetime (UTC)")
    return moment.astimezone(UTC)


#: The last moment a datetime holds: the midnight after 9999-12-31 does not exist, and an
#: expiry on that day (``se=9999-12-31T23:59:59Z``, anyone may write one) must not crash.
_END_OF_TIME = datetime.max.replace(tzinfo=UTC)


def _midnight_after(moment: datetime) -> datetime:
    day = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    return day + DAY if day.date() < _END_OF_TIME.date() else _END_OF_TIME


def _skip_weekend(moment: datetime) -> datetime:
    """``moment`` itself on a weekday, else the Monday 00:00 that follows."""
    while moment.weekday() >= 5 and moment < _END_OF_TIME:
        moment = _midnight_after(moment)
    return moment


def business_time(start: datetime, end: datetime) -> timedelta:
    """The weekday (Mon–Fri, UTC) time between ``start`` and ``end``; zero when end <= start."""
    start, end = _utc(start), _utc(end)
    if end <= start:
        return timedelta()
    # Any 7 days hold exactly 5 days of weekday time: step whole weeks at once, so that an
    # expiry in the year 9999 (anyone may write one) costs no more than one next week.
    weeks = (end - start) // WEEK
    total = weeks * 5 * DAY
    moment = start + weeks * WEEK
    while moment < end:
        boundary = min(_midnight_after(moment), end)
        if moment.weekday() < 5:
            total += boundary - moment
        moment = boundary
    return total


def business_days(start: datetime, end: datetime) -> float:
    """:func:`business_time` in days (fractional)."""
    return business_time(start, end) / DAY


def add_business_days(start: datetime, days: int) -> datetime:
    """The moment ``days`` business days after ``start`` (weekends are stepped over)."""
    if days < 0:
        raise ValueError("days must not be negative")
    moment = _skip_weekend(_utc(start))
    weeks = max(0, (days - 1) // 5)  # 5 business days from a weekday: the same time a week on
    moment += weeks * WEEK
    remaining = (days - 5 * weeks) * DAY
    while remaining > timedelta():
        boundary = _midnight_after(moment)
        step = min(remaining, boundary - moment)
        moment += step
        remaining -= step
        if remaining > timedelta():
            moment = _skip_weekend(boundary)
    return moment


def end_of_day(moment: datetime) -> datetime:
    """The midnight UTC that ends ``moment``'s day (strictly after it)."""
    return _midnight_after(_utc(moment))
