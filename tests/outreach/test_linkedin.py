import pytest

from agents.linkedin import linkedin_task_complete
from agents.models import Lead, LinkedInTask, Message
from outcomes.models import OutcomeLabel
from rex_project.exceptions import ApplicationError
from tests.factories import LeadFactory, LinkedInTaskFactory, MessageFactory, UserFactory

pytestmark = pytest.mark.django_db


def _task(**lead_fields) -> LinkedInTask:
    lead = LeadFactory(state=Lead.State.PERSONALIZED, **lead_fields)
    message = MessageFactory(
        organization=lead.organization, lead=lead, channel="linkedin", status="queued", provider="",
        provider_message_id="", sending_domain=None,
    )  # fmt: skip
    return LinkedInTaskFactory(message=message)


def test_marked_sent_counts_as_the_send():
    task, user = _task(), UserFactory()
    task = linkedin_task_complete(task=task, user=user, sent=True)
    assert (task.status, task.handled_by, task.handled_at is not None) == ("sent", user, True)
    message = Message.objects.select_related("lead").get(pk=task.message_id)
    assert (message.status, message.provider) == ("sent", "linkedin-manual") and message.sent_at is not None
    outcome = OutcomeLabel.objects.get(message=message)
    assert outcome.channel == "linkedin" and outcome.sent_at == message.sent_at
    assert message.lead.state == Lead.State.CONTACTED and message.lead.last_contacted_at == message.sent_at


def test_marked_skipped_cancels_the_message():
    task = linkedin_task_complete(task=_task(), user=UserFactory(), sent=False)
    message = Message.objects.select_related("lead").get(pk=task.message_id)
    assert task.status == "skipped" and message.status == Message.Status.CANCELLED
    assert not OutcomeLabel.objects.filter(message=message).exists()
    assert message.lead.state == Lead.State.PERSONALIZED


def test_a_task_is_completed_once():
    task = linkedin_task_complete(task=_task(), user=UserFactory(), sent=True)
    with pytest.raises(ApplicationError, match="already sent"):
        linkedin_task_complete(task=task, user=UserFactory(), sent=False)
    assert Message.objects.get(pk=task.message_id).status == Message.Status.SENT
