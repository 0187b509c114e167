"""Whole missions: through a real worker, and step by step to prove failure handling."""

import time

import pytest

from agents import tasks
from agents.decisions.rules import rules_install_defaults
from agents.missions import mission_create, mission_leads_materialize
from agents.models import AgentRun, Message, Mission, MissionLead
from agents.pipeline.scraper import ScraperAgent
from outcomes.models import OutcomeLabel
from tests.factories import LeadFactory, OrganizationFactory, SendingDomainFactory

AGENTS = {"icp", "scraper", "reviver", "personalizer", "deliverability", "outreach"}


def _organization_with_leads(n: int):
    organization = OrganizationFactory()
    rules_install_defaults(organization=organization)
    SendingDomainFactory(organization=organization, reputation_score=0.95, daily_cap=500, is_paused=False)
    leads = [
        LeadFactory(
            organization=organization, title="VP Sales", industry="SaaS", company_size=200, timezone="UTC",
            lost_reason="timing", state="new", last_contacted_at=None,
        )
        for _ in range(n)
    ]  # fmt: skip
    return organization, leads


def _start(mission: Mission) -> None:
    """What the launch task does, without handing the canvas to a broker: the steps run inline."""
    mission_leads_materialize(mission=mission)
    Mission.objects.filter(pk=mission.pk).update(status=Mission.Status.RUNNING)


def _wait(mission: Mission, timeout: float = 90) -> Mission:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mission.refresh_from_db()
        if mission.status not in (Mission.Status.QUEUED, Mission.Status.RUNNING):
            return mission
        time.sleep(0.2)
    pytest.fail(f"mission still {mission.status} after {timeout}s ({mission.processed}/{mission.total})")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_reactivation_mission_completes_through_a_real_worker(live_worker, settings):
    organization, leads = _organization_with_leads(7)
    mission, _ = mission_create(
        organization=organization, type=Mission.Type.LEAD_REACTIVATION, lead_ids=[lead.pk for lead in leads]
    )
    mission = _wait(mission)
    assert mission.status == Mission.Status.COMPLETED, mission.failure_reason
    assert mission.processed == mission.total == 7
    assert set(MissionLead.objects.filter(mission=mission).values_list("status", flat=True)) <= {"done", "skipped"}
    runs = AgentRun.objects.filter(mission=mission)
    assert set(runs.values_list("agent", flat=True)) >= AGENTS
    assert not runs.filter(success=False).exists()
    # Every lead that went all the way has exactly one message for step 1, sent or waiting for its window.
    messages = Message.objects.filter(mission=mission)
    assert messages.count() == MissionLead.objects.filter(mission=mission, status="done").count()
    for message in messages:
        assert message.status in (Message.Status.SENT, Message.Status.QUEUED)
        assert message.framework in {"PAS", "AIDA", "BAB", "FAB"}
        if message.status == Message.Status.SENT:
            assert message.provider_request and OutcomeLabel.objects.filter(message=message).exists()
    assert mission.report.get("funnel", {}).get("leads") == 7


@pytest.mark.django_db
def test_a_lead_whose_enrichment_raises_does_not_fail_the_mission(monkeypatch):
    organization, leads = _organization_with_leads(3)
    mission, _ = mission_create(
        organization=organization, type=Mission.Type.ENRICHMENT, lead_ids=[lead.pk for lead in leads]
    )
    _start(mission)
    broken = leads[1].pk
    original = ScraperAgent.process

    def process(self, lead):
        if lead.pk == broken:
            raise RuntimeError("firmographics service exploded")
        return original(self, lead)

    monkeypatch.setattr(ScraperAgent, "process", process)
    after_icp = tasks.icp({"mission_id": mission.pk, "lead_ids": [lead.pk for lead in leads]})
    tasks.scraper(after_icp, final=True)
    tasks.mission_finish(mission.pk)

    mission.refresh_from_db()
    assert mission.status == Mission.Status.COMPLETED
    statuses = dict(MissionLead.objects.filter(mission=mission).values_list("lead_id", "status"))
    assert statuses[broken] == "failed"
    assert "firmographics service exploded" in MissionLead.objects.get(mission=mission, lead_id=broken).error
    assert [s for lead_id, s in statuses.items() if lead_id != broken] == ["done", "done"]
    failed_run = AgentRun.objects.get(mission=mission, lead_id=broken, agent="scraper")
    assert not failed_run.success and "RuntimeError" in failed_run.error
    assert mission.processed == 3


@pytest.mark.django_db
def test_cancelled_mission_does_no_more_work():
    organization, leads = _organization_with_leads(2)
    mission, _ = mission_create(
        organization=organization, type=Mission.Type.LEAD_REACTIVATION, lead_ids=[lead.pk for lead in leads]
    )
    mission_leads_materialize(mission=mission)
    Mission.objects.filter(pk=mission.pk).update(status=Mission.Status.CANCELLED)
    result = tasks.icp({"mission_id": mission.pk, "lead_ids": [lead.pk for lead in leads]})
    assert result == {"mission_id": mission.pk, "lead_ids": []}
    assert not AgentRun.objects.filter(mission=mission).exists()
    tasks.mission_launch(mission.pk)  # a late launch does nothing either
    mission.refresh_from_db()
    assert mission.status == Mission.Status.CANCELLED


@pytest.mark.django_db
def test_retried_batch_does_not_send_twice():
    organization, leads = _organization_with_leads(2)
    mission, _ = mission_create(
        organization=organization, type=Mission.Type.LEAD_REACTIVATION, lead_ids=[lead.pk for lead in leads]
    )
    _start(mission)
    payload = {"mission_id": mission.pk, "lead_ids": [lead.pk for lead in leads]}
    for step in ("icp", "scraper", "reviver", "personalizer", "deliverability"):
        payload = tasks.AGENT_TASKS[step](payload)
    before = list(payload["lead_ids"])
    tasks.outreach(dict(payload), final=True)
    sent = set(Message.objects.filter(mission=mission, status="sent").values_list("pk", "provider_message_id"))
    # Redelivery of the same outreach task after success: nothing new goes out.
    MissionLead.objects.filter(mission=mission).update(status="pending")
    tasks.outreach({"mission_id": mission.pk, "lead_ids": before}, final=True)
    assert set(Message.objects.filter(mission=mission, status="sent").values_list("pk", "provider_message_id")) == sent
    assert OutcomeLabel.objects.filter(mission=mission).count() == len(sent)
