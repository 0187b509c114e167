"""The policy model's features: who the lead is × which strategy we used, as one flat context per message.

The same context is built from two places: an outcome label (training: what we knew when we wrote, from
``lead_context``, and when it actually went out) and a live lead (inference: the send hour is the one the
outreach gate will use, the start of the lead's next send window). Crossed columns such as
framework × seniority let a linear model learn that a strategy works for some leads and not for others; which
crosses a model uses is chosen from the data when it is trained, and travels with its artifact.
"""

import datetime as dt
import math
import zoneinfo

import numpy as np

from agents.industries import sector_of
from agents.models import Campaign, Lead
from agents.pipeline.seniority import seniority_band, seniority_of
from agents.send_windows import lead_zone, next_window_start

# Bump when the columns change: an artifact trained on other columns refuses to load.
# 2: the crossed columns are chosen per model from the data (``CANDIDATE_CROSSES``) and stored in the artifact.
# 3: the industry's sector and the seniority's band, coarser levels a preference is learned on from less data.
# 4: the artifact holds a two-stage model (``training.policy.TwoStageModel``).
FEATURES_VERSION = 4
UNKNOWN = "unknown"
# What REX chooses, and what it knows about the lead and the send when it chooses.
STRATEGY = ("framework", "tone", "channel")
# Industry and seniority come at two levels: a cross with the sector (four frameworks × a handful of sectors)
# is learned from a few hundred labels, one with the industry needs several times more; model selection keeps
# the level the data supports.
CONTEXT = ("industry", "sector", "seniority", "seniority_band", "company_size", "send_hour", "lost_reason")
CATEGORICAL = STRATEGY + CONTEXT
# The interactions a model may use: only those with a strategy column. A context × context cross shifts every
# strategy of a lead alike, so it can never change which strategy is best; strategy × context crosses can ("PAS
# works for executives"), and so can strategy × strategy ("PAS reads well only in a direct tone"). Which of
# them the data supports is the trainer's choice (``training.policy``): unused crosses only dilute the model.
CANDIDATE_CROSSES = tuple((a, b) for a in STRATEGY for b in CONTEXT) + tuple(
    (a, b) for i, a in enumerate(STRATEGY) for b in STRATEGY[i + 1 :]
)
NUMERIC = ("icp_score", "icp_known")


def cross_name(cross: tuple[str, str]) -> str:
    return f"{cross[0]}_x_{cross[1]}"


def categorical_columns(crosses=()) -> tuple[str, ...]:
    return CATEGORICAL + tuple(cross_name(cross) for cross in crosses)


def columns(crosses=()) -> tuple[str, ...]:
    """The columns of ``feature_matrix(contexts, crosses)``: categorical first (plain, then crossed), then numeric."""
    return categorical_columns(crosses) + NUMERIC


# Employees: the usual firmographic bands.
SIZE_BANDS = ((10, "1-10"), (50, "11-50"), (200, "51-200"), (1000, "201-1000"), (5000, "1001-5000"))
# Local hour → part of the day; replies cluster by the recipient's working rhythm, not by the exact hour.
HOUR_BANDS = ((6, "night"), (9, "early"), (12, "morning"), (14, "midday"), (17, "afternoon"), (21, "evening"))


def company_size_band(size) -> str:
    if size is None or size == "":
        return UNKNOWN
    size = int(size)
    return next((band for limit, band in SIZE_BANDS if size <= limit), "5000+")


def send_hour_band(hour: int | None) -> str:
    if hour is None:
        return UNKNOWN
    return next((band for limit, band in HOUR_BANDS if hour < limit), "night")


def _zone(name: str | None) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name) if name else zoneinfo.ZoneInfo("UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def _text(value) -> str:
    text = " ".join(str(value or "").casefold().split())
    return text or UNKNOWN


def _lost_reason(reason: str) -> str:
    # Imported here: the reviver imports the policy model, which imports this module.
    from agents.pipeline.reviver import lost_reason_category

    return lost_reason_category(reason or "")


def _context(*, lead: dict, strategy: dict, hour: int | None) -> dict:
    seniority = lead.get("seniority") or UNKNOWN
    return {
        "framework": strategy.get("framework") or UNKNOWN,
        "tone": strategy.get("tone") or UNKNOWN,
        "channel": strategy.get("channel") or "email",
        "industry": _text(lead.get("industry")),
        "sector": sector_of(lead.get("industry") or ""),
        "seniority": seniority,
        "seniority_band": seniority_band(seniority),
        "company_size": company_size_band(lead.get("company_size")),
        "send_hour": send_hour_band(hour),
        "lost_reason": lead.get("lost_reason_category") or _lost_reason(lead.get("lost_reason") or ""),
        "icp_score": lead.get("icp_score"),
    }


def label_context(row: dict) -> dict:
    """The context of one outcome label, from its ``.values()`` row (lead_context first, then the flat columns)."""
    saved = row.get("lead_context") or {}
    lead = {
        "industry": saved.get("industry") or row.get("lead_industry"),
        "seniority": saved.get("seniority") or seniority_of(saved.get("role") or row.get("lead_role") or ""),
        "company_size": saved.get("company_size") if saved.get("company_size") is not None else row.get("company_size"),
        "lost_reason": saved.get("lost_reason"),
        "icp_score": saved.get("icp_score") if saved.get("icp_score") is not None else row.get("icp_score"),
    }
    sent_at = row.get("sent_at")
    hour = sent_at.astimezone(_zone(saved.get("timezone"))).hour if sent_at else None
    return _context(lead=lead, strategy=row, hour=hour)


def lead_profile(lead: Lead) -> dict:
    """What the model knows about a live lead, computed once and reused for every candidate strategy."""
    return {
        "industry": lead.industry,
        "seniority": seniority_of(lead.title),
        "company_size": lead.company_size,
        "lost_reason_category": _lost_reason(lead.lost_reason),
        "icp_score": lead.icp_score,
    }


def expected_send_hour(*, lead: Lead, channel: str, now: dt.datetime, campaign: Campaign | None = None) -> int:
    """The lead's local hour when the outreach gate will send: now if inside the window, else the window's start."""
    return next_window_start(lead=lead, channel=channel, now=now, campaign=campaign).astimezone(lead_zone(lead)).hour


def lead_contexts(*, lead: Lead, strategies: list[dict], now: dt.datetime, campaign: Campaign | None = None) -> list:
    """One context per candidate strategy ({"framework", "tone", "channel"}) for a live lead."""
    profile = lead_profile(lead)
    hours: dict[str, int] = {}
    contexts = []
    for strategy in strategies:
        channel = strategy.get("channel") or "email"
        if channel not in hours:
            hours[channel] = expected_send_hour(lead=lead, channel=channel, now=now, campaign=campaign)
        contexts.append(_context(lead=profile, strategy=strategy, hour=hours[channel]))
    return contexts


def feature_matrix(contexts: list[dict], crosses=()) -> np.ndarray:
    """An (n, len(columns(crosses))) object array: strings for the categorical columns, floats for the numeric
    ones. ``crosses`` are (a, b) pairs of categorical columns, each one column of "a|b" values."""
    crosses = tuple(tuple(cross) for cross in crosses)
    matrix = np.empty((len(contexts), len(columns(crosses))), dtype=object)
    for i, context in enumerate(contexts):
        score = context.get("icp_score")
        known = score is not None and not (isinstance(score, float) and math.isnan(score))
        values = [context[name] for name in CATEGORICAL]
        values += [f"{context[a]}|{context[b]}" for a, b in crosses]
        values += [float(score) if known else 0.5, 1.0 if known else 0.0]
        matrix[i] = values
    return matrix
