"""The lead lifecycle and mission status machines: every allowed move applies, nothing else does."""

import logging

import pytest

from agents.decisions.lifecycle import (
    LEAD_TRANSITIONS,
    IllegalTransition,
    lead_can,
    lead_transition,
    mission_can,
    mission_transition,
)
from agents.models import Lead, Mission
from tests.factories import LeadFactory, MissionFactory

S = Lead.State
LIVE_OR_DONE = [S.ENGAGED, S.REPLIED, S.MEETING, S.WON, S.SUPPRESSED]

# The lifecycle as the product defines it: event -> (sources, target). Written out here, independently of the
# machine, so a change to the machine that drifts from the definition fails.
EXPECTED = {
    "score": ([s for s in S if s not in LIVE_OR_DONE], S.SCORED),
    "qualify": ([S.SCORED, S.QUALIFIED], S.QUALIFIED),
    "disqualify": ([S.NEW, S.SCORED, S.QUALIFIED, S.ENRICHED, S.PERSONALIZED, S.SCHEDULED], S.DISQUALIFIED),
    "enrich": ([S.QUALIFIED, S.ENRICHED], S.ENRICHED),
    "personalize": ([S.ENRICHED, S.QUALIFIED, S.PERSONALIZED], S.PERSONALIZED),
    "schedule": ([S.PERSONALIZED, S.SCHEDULED], S.SCHEDULED),
    "contact": ([S.PERSONALIZED, S.SCHEDULED, S.CONTACTED], S.CONTACTED),
    "engage": ([S.CONTACTED, S.ENGAGED], S.ENGAGED),
    "reply": ([S.CONTACTED, S.ENGAGED, S.REPLIED], S.REPLIED),
    "book_meeting": ([S.CONTACTED, S.ENGAGED, S.REPLIED, S.MEETING], S.MEETING),
    "win": ([S.CONTACTED, S.ENGAGED, S.REPLIED, S.MEETING], S.WON),
    "lose": ([S.CONTACTED, S.ENGAGED, S.REPLIED, S.MEETING, S.SCHEDULED, S.PERSONALIZED], S.LOST),
    "suppress": (list(S), S.SUPPRESSED),
    "resubscribe": ([S.SUPPRESSED], S.NEW),
}
ALLOWED = [(source, event, target) for event, (sources, target) in EXPECTED.items() for source in sources]
ALLOWED_PAIRS = {(source, event) for source, event, _ in ALLOWED}
ILLEGAL = [(state, event) for state in S for event in EXPECTED if (state, event) not in ALLOWED_PAIRS]


def test_the_machine_allows_exactly_the_defined_transitions():
    assert {key: str(target) for key, target in LEAD_TRANSITIONS.items()} == {
        (str(source), event): str(target) for source, event, target in ALLOWED
    }


@pytest.mark.django_db
@pytest.mark.parametrize(("source", "event", "target"), ALLOWED, ids=lambda v: str(v))
def test_every_allowed_transition_applies_and_is_saved(source, event, target):
    lead = LeadFactory(state=source)
    assert lead_can(lead, event)

    assert lead_transition(lead, event) == target

    assert lead.state == target
    lead.refresh_from_db()
    assert lead.state == target


@pytest.mark.parametrize(("state", "event"), ILLEGAL, ids=lambda v: str(v))
def test_lead_can_refuses_every_other_pair(state, event):
    assert not lead_can(Lead(state=state), event)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("state", "event"),
    [(S.REPLIED, "qualify"), (S.WON, "contact"), (S.NEW, "contact"), (S.SUPPRESSED, "score"), (S.NEW, "explode")],
)
def test_an_illegal_transition_raises_is_logged_and_changes_nothing(caplog, state, event):
    lead = LeadFactory(state=state)

    with caplog.at_level(logging.WARNING, logger="rex.lifecycle"), pytest.raises(IllegalTransition) as raised:
        lead_transition(lead, event)

    message = f"Lead {lead.pk} is '{state}': '{event}' is not allowed"
    assert str(raised.value) == message
    assert message in caplog.text
    assert lead.state == state
    lead.refresh_from_db()
    assert lead.state == state


@pytest.mark.django_db
@pytest.mark.parametrize("state", list(S))
def test_suppress_applies_from_every_state(state):
    lead = LeadFactory(state=state)
    assert lead_transition(lead, "suppress") == S.SUPPRESSED
    lead.refresh_from_db()
    assert lead.state == S.SUPPRESSED


@pytest.mark.django_db
def test_save_false_changes_the_instance_only():
    lead = LeadFactory(state=S.SCORED)
    assert lead_transition(lead, "qualify", save=False) == S.QUALIFIED
    assert lead.state == S.QUALIFIED
    lead.refresh_from_db()
    assert lead.state == S.SCORED


@pytest.mark.django_db
def test_transition_saves_only_the_state(django_assert_num_queries):
    lead = LeadFactory(state=S.SCORED)
    Lead.objects.filter(pk=lead.pk).update(title="CRO")  # written by someone else meanwhile
    with django_assert_num_queries(1) as captured:
        lead_transition(lead, "qualify")
    sql = captured.captured_queries[0]["sql"]
    assert '"state"' in sql and '"updated_at"' in sql and '"title"' not in sql
    lead.refresh_from_db()
    assert lead.title == "CRO"


# --- Missions ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_mission_start_then_complete_stamps_the_times():
    mission = MissionFactory()
    assert mission_can(mission, "start") and not mission_can(mission, "complete")

    assert mission_transition(mission, "start") is True
    assert mission.status == Mission.Status.RUNNING and mission.started_at is not None
    assert mission_transition(mission, "complete") is True

    mission.refresh_from_db()
    assert mission.status == Mission.Status.COMPLETED
    assert mission.started_at is not None and mission.finished_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize("source", [Mission.Status.QUEUED, Mission.Status.RUNNING])
@pytest.mark.parametrize(("event", "target"), [("fail", Mission.Status.FAILED), ("cancel", Mission.Status.CANCELLED)])
def test_mission_fail_and_cancel_record_the_reason(source, event, target):
    mission = MissionFactory(status=source)
    mission_transition(mission, event, reason="operator asked")
    mission.refresh_from_db()
    assert (mission.status, mission.failure_reason) == (target, "operator asked")
    assert mission.finished_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "event"),
    [(Mission.Status.QUEUED, "complete"), (Mission.Status.COMPLETED, "start"), (Mission.Status.CANCELLED, "fail")],
)
def test_an_illegal_mission_event_raises_and_is_logged(caplog, status, event):
    mission = MissionFactory(status=status)
    with caplog.at_level(logging.WARNING, logger="rex.lifecycle"), pytest.raises(IllegalTransition):
        mission_transition(mission, event)
    assert f"Mission {mission.pk} is '{status}': '{event}' is not allowed" in caplog.text
    mission.refresh_from_db()
    assert mission.status == status


@pytest.mark.django_db
def test_a_mission_completed_by_another_worker_cannot_be_cancelled(caplog):
    mission = MissionFactory(status=Mission.Status.RUNNING)
    # Another worker completes the mission after this instance was loaded.
    Mission.objects.filter(pk=mission.pk).update(status=Mission.Status.COMPLETED, failure_reason="")
    assert mission_can(mission, "cancel")  # the stale instance still says running

    with caplog.at_level(logging.WARNING, logger="rex.lifecycle"), pytest.raises(IllegalTransition):
        mission_transition(mission, "cancel", reason="too late")

    assert mission.status == Mission.Status.COMPLETED  # refreshed
    assert "is 'completed': 'cancel' is not allowed" in caplog.text
    mission.refresh_from_db()
    assert (mission.status, mission.failure_reason, mission.finished_at) == (Mission.Status.COMPLETED, "", None)
