"""The lead lifecycle and the mission status, as python-statemachine machines: the decision engine's first layer.

The machine classes are the single source of truth. Checking an event (``lead_can``) runs for every lead at
every agent, so it reads a ``(state, event) -> target`` table built once at import from the class definition;
instantiating a machine costs ~0.1 ms, which is fine when applying a transition (that writes the database
anyway) but not for a check inside a ≤ 1 ms decision.
"""

import logging

from django.utils import timezone
from statemachine import State, StateMachine
from statemachine.exceptions import TransitionNotAllowed

from agents.models import Lead, Mission

logger = logging.getLogger("rex.lifecycle")

S = Lead.State


class IllegalTransition(Exception):
    """An event that the lifecycle does not allow from the object's current state."""


class LeadLifecycle(StateMachine):
    new = State(value=S.NEW.value, initial=True)
    scored = State(value=S.SCORED.value)
    qualified = State(value=S.QUALIFIED.value)
    disqualified = State(value=S.DISQUALIFIED.value)
    enriched = State(value=S.ENRICHED.value)
    personalized = State(value=S.PERSONALIZED.value)
    scheduled = State(value=S.SCHEDULED.value)
    contacted = State(value=S.CONTACTED.value)
    engaged = State(value=S.ENGAGED.value)
    replied = State(value=S.REPLIED.value)
    meeting = State(value=S.MEETING.value)
    won = State(value=S.WON.value)
    lost = State(value=S.LOST.value)
    suppressed = State(value=S.SUPPRESSED.value)

    # Re-scoring is allowed for any lead that is not in a live conversation (engaged, replied, meeting) or done.
    score = scored.from_(new, scored, qualified, disqualified, enriched, personalized, scheduled, contacted, lost)
    qualify = qualified.from_(scored, qualified)
    disqualify = disqualified.from_(new, scored, qualified, enriched, personalized, scheduled)
    enrich = enriched.from_(qualified, enriched)
    personalize = personalized.from_(enriched, qualified, personalized)
    schedule = scheduled.from_(personalized, scheduled)
    contact = contacted.from_(personalized, scheduled, contacted)
    engage = engaged.from_(contacted, engaged)
    reply = replied.from_(contacted, engaged, replied)
    book_meeting = meeting.from_(contacted, engaged, replied, meeting)
    win = won.from_(contacted, engaged, replied, meeting)
    lose = lost.from_(contacted, engaged, replied, meeting, scheduled, personalized)
    # An opt-out wins over everything, including a won deal.
    suppress = suppressed.from_.any()
    resubscribe = new.from_(suppressed)


class MissionLifecycle(StateMachine):
    queued = State(value=Mission.Status.QUEUED.value, initial=True)
    running = State(value=Mission.Status.RUNNING.value)
    completed = State(value=Mission.Status.COMPLETED.value, final=True)
    failed = State(value=Mission.Status.FAILED.value, final=True)
    cancelled = State(value=Mission.Status.CANCELLED.value, final=True)

    start = running.from_(queued)
    complete = completed.from_(running)
    fail = failed.from_(queued, running)
    cancel = cancelled.from_(queued, running)


class _Holder:
    """A bare object for a machine to keep its state on, so the Django model is never scanned for callbacks."""

    def __init__(self, state: str):
        self.state = state


def _transition_table(machine: type[StateMachine]) -> dict[tuple[str, str], str]:
    return {
        (str(state.value), str(event)): str(transition.target.value)
        for state in machine.states_map.values()
        for transition in state.transitions
        for event in transition.events
    }


LEAD_TRANSITIONS = _transition_table(LeadLifecycle)
MISSION_TRANSITIONS = _transition_table(MissionLifecycle)
# The statuses each mission event may start from: the WHERE clause of its conditional UPDATE.
MISSION_SOURCES = {
    event: sorted(source for source, name in MISSION_TRANSITIONS if name == event)
    for event in {name for _, name in MISSION_TRANSITIONS}
}


def _refuse(kind: str, pk, state: str, event: str) -> IllegalTransition:
    message = f"{kind} {pk} is '{state}': '{event}' is not allowed"
    logger.warning(message)
    return IllegalTransition(message)


def lead_can(lead: Lead, event: str) -> bool:
    return (lead.state, event) in LEAD_TRANSITIONS


def lead_transition(lead: Lead, event: str, *, save: bool = True) -> str:
    """Apply ``event`` to ``lead.state`` through the lifecycle machine and return the new state.

    An event the lifecycle does not allow raises IllegalTransition and leaves the lead untouched.
    """
    if not lead_can(lead, event):
        raise _refuse("Lead", lead.pk, lead.state, event)
    holder = _Holder(lead.state)
    try:
        LeadLifecycle(model=holder).send(event)
    except TransitionNotAllowed as error:  # only if a guard is added to the machine one day
        raise _refuse("Lead", lead.pk, lead.state, event) from error
    lead.state = holder.state
    if save:
        lead.save(update_fields=["state", "updated_at"])
    return lead.state


def mission_can(mission: Mission, event: str) -> bool:
    return (mission.status, event) in MISSION_TRANSITIONS


def mission_transition(mission: Mission, event: str, *, reason: str = "") -> bool:
    """Move the mission's status with a conditional UPDATE, so two workers racing cannot both apply ``event``.

    Raises IllegalTransition when the event is not allowed from the status in memory, or when the row has
    already left every allowed source status (another worker got there first; the instance is then refreshed).
    """
    if not mission_can(mission, event):
        raise _refuse("Mission", mission.pk, mission.status, event)
    now = timezone.now()
    changes = {
        "status": MISSION_TRANSITIONS[(mission.status, event)],
        "started_at" if event == "start" else "finished_at": now,
        "failure_reason": reason,
    }
    updated = Mission.objects.filter(pk=mission.pk, status__in=MISSION_SOURCES[event]).update(**changes)
    if not updated:
        mission.refresh_from_db(fields=["status", "started_at", "finished_at", "failure_reason"])
        raise _refuse("Mission", mission.pk, mission.status, event)
    for field, value in changes.items():
        setattr(mission, field, value)
    return True
