"""Operator-editable business rules: the decision engine's second layer.

Conditions are rule-engine expressions over a dict of facts (never Python eval); a fact the caller did not
supply is null, so ``x != null and x < 1`` is the safe way to test an optional number. Compiled rules are
kept in-process per organization. ``rules_changed`` stores a fresh version stamp in the Django cache; each
process compares its copy's stamp at most every RECHECK_SECONDS, so an admin edit reaches every worker
within seconds without a cache round trip per decision. With a process-local cache (the embedded default's
LocMemCache) reading the stamp costs no round trip, so it is read on every call, and since it cannot carry
another process's edit, the rules are also reloaded from the database every RECHECK_SECONDS.
"""

import copy
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import rule_engine
from django.core.cache import cache, caches
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.exceptions import ValidationError
from django.db import transaction

from agents.models import DecisionRule, Organization

logger = logging.getLogger("rex.rules")

RECHECK_SECONDS = 2.0
VERSION_KEY = "rex:rules:version:{organization_id}"

Stage, Action = DecisionRule.Stage, DecisionRule.Action

DEFAULT_RULES: list[dict[str, Any]] = [
    {
        "name": "ICP below threshold disqualifies",
        "stage": Stage.QUALIFY,
        "condition": "icp_score != null and icp_score < icp_threshold",
        "action": Action.DISQUALIFY,
        "priority": 100,
        "parameters": {},
    },
    {
        "name": "Suppressed contacts are never contacted",
        "stage": Stage.OUTREACH,
        "condition": "suppressed",
        "action": Action.STOP,
        "priority": 10,
        "parameters": {},
    },
    {
        "name": "Contacted in the last 14 days waits",
        "stage": Stage.OUTREACH,
        "condition": "days_since_contact != null and days_since_contact < 14",
        "action": Action.DELAY,
        "priority": 20,
        "parameters": {"days": 14},
    },
    {
        "name": "Frequency cap reached waits",
        "stage": Stage.OUTREACH,
        "condition": (
            "touches_last_7_days != null and max_touches_per_week != null"
            " and touches_last_7_days >= max_touches_per_week"
        ),
        "action": Action.DELAY,
        "priority": 25,
        "parameters": {"days": 7},
    },
    {
        "name": "Outside the send window waits",
        "stage": Stage.OUTREACH,
        "condition": "not in_send_window",
        "action": Action.DELAY,
        "priority": 30,
        "parameters": {"until": "next_window"},
    },
    {
        "name": "Domain reputation below 0.7 rotates",
        "stage": Stage.DELIVERABILITY,
        "condition": "domain_reputation != null and domain_reputation < 0.7",
        "action": Action.ROTATE_DOMAIN,
        "priority": 100,
        "parameters": {},
    },
    {
        "name": "Very unlikely to revive is skipped",
        "stage": Stage.REACTIVATE,
        "condition": "reactivation_probability != null and reactivation_probability < 0.15",
        "action": Action.SKIP,
        "priority": 10,
        "parameters": {},
    },
    {
        "name": "Borderline revival goes to the LLM",
        "stage": Stage.REACTIVATE,
        "condition": (
            "reactivation_probability != null and reactivation_probability >= 0.35 and reactivation_probability < 0.45"
        ),
        "action": Action.ESCALATE_LLM,
        "priority": 20,
        "parameters": {},
    },
]


@dataclass(frozen=True)
class CompiledRule:
    id: int
    name: str
    stage: str
    action: str
    parameters: dict
    priority: int
    expression: rule_engine.Rule = field(repr=False, compare=False)

    def matches(self, facts: dict) -> bool:
        return self.expression.matches(facts)


def _compile(condition: str) -> rule_engine.Rule:
    # One context per rule: a context collects the symbols of the rules compiled with it.
    return rule_engine.Rule(condition, context=rule_engine.Context(default_value=None))


def validate_condition(text: str) -> None:
    """Raise ValidationError({"condition": <parse error>}) unless ``text`` is a valid rule-engine expression."""
    try:
        _compile(text)
    except rule_engine.errors.EngineError as error:
        # str(error) is a tuple repr; .message is the readable text, e.g. "syntax error at: EOF".
        raise ValidationError({"condition": f"Invalid condition: {error.message}"}) from error


# --- In-process cache of compiled rules -------------------------------------------------------------------


@dataclass
class _Loaded:
    stamp: str | None
    by_stage: dict[str, list[CompiledRule]]
    loaded_at: float
    checked_at: float


# Replaced whole, never mutated in place but for checked_at, so threads can share it without a lock.
_loaded: dict[int, _Loaded] = {}


def _cache_is_process_local() -> bool:
    # A local-memory cache is not shared between processes, so its stamp cannot carry an edit made in the
    # web process to a worker, but reading it costs no round trip.
    return isinstance(caches["default"], LocMemCache | DummyCache)


def _current_stamp(organization_id: int) -> str | None:
    key = VERSION_KEY.format(organization_id=organization_id)
    stamp = cache.get(key)
    if stamp is None:
        # Never compare against "missing": after an eviction or cache.clear() a process would keep stale rules.
        cache.add(key, uuid.uuid4().hex, timeout=None)
        stamp = cache.get(key)
    return stamp


def _load(organization_id: int, stamp: str | None, now: float) -> _Loaded:
    by_stage: dict[str, list[CompiledRule]] = {}
    rows = DecisionRule.objects.filter(organization_id=organization_id, enabled=True).order_by("priority", "id")
    for row in rows:
        try:
            expression = _compile(row.condition)
        except rule_engine.errors.EngineError as error:
            # Only rows written around the admin form get here; one bad rule must not stop the others.
            logger.error("Decision rule %s (%s) does not compile, ignored: %s", row.pk, row.name, error.message)
            continue
        compiled = CompiledRule(
            id=row.pk,
            name=row.name,
            stage=row.stage,
            action=row.action,
            parameters=row.parameters or {},
            priority=row.priority,
            expression=expression,
        )
        by_stage.setdefault(row.stage, []).append(compiled)
    return _Loaded(stamp=stamp, by_stage=by_stage, loaded_at=now, checked_at=now)


def _fresh(entry: _Loaded | None, organization_id: int, now: float) -> _Loaded:
    local = _cache_is_process_local()
    if entry is not None and not local and now - entry.checked_at < RECHECK_SECONDS:
        return entry
    stamp = _current_stamp(organization_id)
    # A process-local stamp never sees another process's edit, so those rules also expire after RECHECK_SECONDS.
    expired = local and entry is not None and now - entry.loaded_at >= RECHECK_SECONDS
    if entry is None or entry.stamp != stamp or expired:
        entry = _load(organization_id, stamp, now)
        _loaded[organization_id] = entry
    else:
        entry.checked_at = now
    return entry


def _stage_rules(organization_id: int, stage: str) -> list[CompiledRule]:
    entry = _fresh(_loaded.get(organization_id), organization_id, time.monotonic())
    return entry.by_stage.get(stage, [])


def active_rules(organization_id: int, stage: str) -> list[CompiledRule]:
    """The organization's enabled rules for ``stage``, lowest priority number first."""
    return list(_stage_rules(organization_id, stage))


def first_match(organization_id: int, stage: str, facts: dict) -> CompiledRule | None:
    for rule in _stage_rules(organization_id, stage):
        try:
            if rule.matches(facts):
                return rule
        except (rule_engine.errors.EngineError, TypeError) as error:
            # A runtime type mismatch (e.g. a string fact compared with a number) skips this rule only.
            message = getattr(error, "message", str(error))
            logger.warning("Decision rule %s (%s) failed on these facts, skipped: %s", rule.id, rule.name, message)
    return None


def forget_loaded_rules() -> None:
    """Drop this process's compiled rules (tests, or after a bulk change made outside the services)."""
    _loaded.clear()


# --- Services -----------------------------------------------------------------------------------------------


def _bump(organization_id: int) -> None:
    cache.set(VERSION_KEY.format(organization_id=organization_id), uuid.uuid4().hex, timeout=None)
    _loaded.pop(organization_id, None)


def rules_changed(organization_id: int) -> None:
    """Tell every process that the organization's rules changed.

    Bumped now, and again after the transaction commits: a worker that reloads between the two would
    otherwise cache the pre-commit rows under the new stamp.
    """
    _bump(organization_id)
    transaction.on_commit(lambda: _bump(organization_id))


@transaction.atomic
def rules_install_defaults(*, organization: Organization) -> int:
    """Install DEFAULT_RULES for ``organization`` and return how many were created.

    Idempotent: a rule that already exists by name is left as the operator edited it.
    """
    created = 0
    for spec in DEFAULT_RULES:
        defaults = {key: copy.deepcopy(value) for key, value in spec.items() if key != "name"}
        _, was_created = DecisionRule.objects.get_or_create(
            organization=organization, name=spec["name"], defaults=defaults
        )
        created += was_created
    rules_changed(organization.pk)
    return created
