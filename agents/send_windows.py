"""When a lead may be contacted, in the lead's own local time.

Email: working days 08:00–18:00 (or the campaign's window). SMS: 08:00–21:00 every day,
whatever the campaign says (TCPA quiet hours).
"""

import datetime as dt
import zoneinfo

import phonenumbers
from phonenumbers import timezone as phone_timezones

from agents.models import Campaign, Lead

EMAIL_WINDOW = (dt.time(8, 0), dt.time(18, 0))
SMS_WINDOW = (dt.time(8, 0), dt.time(21, 0))
WORKING_DAYS = range(0, 5)  # Monday..Friday


def lead_zone(lead: Lead) -> zoneinfo.ZoneInfo:
    """The lead's time zone, else the one its phone number implies, else UTC."""
    if lead.timezone:
        return zoneinfo.ZoneInfo(lead.timezone)
    if lead.phone:
        try:
            zones = phone_timezones.time_zones_for_number(phonenumbers.parse(lead.phone))
        except phonenumbers.NumberParseException:
            zones = ()
        if zones and zones[0] != "Etc/Unknown":
            return zoneinfo.ZoneInfo(zones[0])
    return zoneinfo.ZoneInfo("UTC")


def _window(channel: str, campaign: Campaign | None) -> tuple[dt.time, dt.time, bool]:
    """(start, end, working days only) for a channel."""
    if channel == "sms":
        return (*SMS_WINDOW, False)
    start, end = EMAIL_WINDOW
    if campaign and campaign.send_window_start and campaign.send_window_end:
        start, end = campaign.send_window_start, campaign.send_window_end
    return start, end, True


def in_send_window(*, lead: Lead, channel: str, now: dt.datetime, campaign: Campaign | None = None) -> bool:
    start, end, working_days_only = _window(channel, campaign)
    local = now.astimezone(lead_zone(lead))
    if working_days_only and local.weekday() not in WORKING_DAYS:
        return False
    if channel == "sms":  # the campaign may narrow SMS hours, never widen them
        start, end = max(start, SMS_WINDOW[0]), min(end, SMS_WINDOW[1])
    return start <= local.time() < end


def next_window_start(*, lead: Lead, channel: str, now: dt.datetime, campaign: Campaign | None = None) -> dt.datetime:
    """The first moment at or after ``now`` inside the window, as an aware UTC datetime."""
    if in_send_window(lead=lead, channel=channel, now=now, campaign=campaign):
        return now
    start, _end, working_days_only = _window(channel, campaign)
    zone = lead_zone(lead)
    local = now.astimezone(zone)
    day = local.date() if local.time() < start else local.date() + dt.timedelta(days=1)
    while working_days_only and day.weekday() not in WORKING_DAYS:
        day += dt.timedelta(days=1)
    return dt.datetime.combine(day, start, tzinfo=zone).astimezone(dt.UTC)
