"""Time helpers for tests whose outcome depends on the hour it is somewhere."""

import zoneinfo

from django.utils import timezone


def zone_at_local_hour(low: int, high: int) -> str:
    """A fixed-offset zone where it is now between low and high o'clock."""
    now = timezone.now()
    for offset in range(-12, 15):
        name = f"Etc/GMT{'-' if offset >= 0 else '+'}{abs(offset)}"
        if low <= now.astimezone(zoneinfo.ZoneInfo(name)).hour < high:
            return name
    raise AssertionError("no zone found")
