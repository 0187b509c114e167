import datetime as dt

import pytest
from django.utils import timezone

from agents.models import LinkedInTask, Message
from tests.factories import LinkedInTaskFactory, MessageFactory

pytestmark = pytest.mark.django_db


def _ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_messages_are_scoped_and_show_what_was_sent(api_client, membership):
    organization = membership.organization
    request = {"url": "https://api.sendgrid.com/v3/mail/send", "json": {"subject": "Hi"}}
    sent = MessageFactory(
        organization=organization, status="sent", sent_at=timezone.now(), provider_request=request,
        custom_args={"rex_message_id": "1"}, headers={"List-Unsubscribe": "<https://x>"},
    )  # fmt: skip
    other = MessageFactory()

    assert _ids(api_client.get("/api/messages/")) == {sent.pk}
    body = api_client.get(f"/api/messages/{sent.pk}").json()
    assert body["provider_request"] == request and body["custom_args"] == {"rex_message_id": "1"}
    assert body["headers"] == {"List-Unsubscribe": "<https://x>"}
    assert body["provider_message_id"] == sent.provider_message_id and body["mission"] == sent.mission_id
    assert api_client.get(f"/api/messages/{other.pk}").status_code == 404


def test_messages_filter_by_mission_lead_status_and_channel(api_client, membership):
    organization = membership.organization
    first = MessageFactory(organization=organization, status="sent", channel="email")
    second = MessageFactory(organization=organization, status="queued", channel="sms",
                            scheduled_for=timezone.now() + dt.timedelta(hours=1))  # fmt: skip
    assert _ids(api_client.get("/api/messages", {"mission": first.mission_id})) == {first.pk}
    assert _ids(api_client.get("/api/messages", {"lead": second.lead_id})) == {second.pk}
    assert _ids(api_client.get("/api/messages", {"status": "queued"})) == {second.pk}
    assert _ids(api_client.get("/api/messages", {"channel": "email"})) == {first.pk}
    assert api_client.get("/api/messages", {"status": "lost"}).status_code == 400


def test_linkedin_queue_lists_pending_and_completes(api_client, membership):
    organization = membership.organization
    message = MessageFactory(organization=organization, channel="linkedin", status="queued")
    task = LinkedInTaskFactory(message=message)
    done = LinkedInTaskFactory(message=MessageFactory(organization=organization, channel="linkedin"), status="sent")
    LinkedInTaskFactory()  # another organization's

    assert _ids(api_client.get("/api/linkedin-tasks")) == {task.pk}
    assert _ids(api_client.get("/api/linkedin-tasks", {"status": "sent"})) == {done.pk}

    response = api_client.post(f"/api/linkedin-tasks/{task.pk}/complete", {"sent": True}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "sent" and response.json()["message_status"] == "sent"
    assert Message.objects.get(pk=message.pk).status == Message.Status.SENT
    again = api_client.post(f"/api/linkedin-tasks/{task.pk}/complete", {"sent": False}, format="json")
    assert again.status_code == 400
    assert api_client.post(f"/api/linkedin-tasks/{task.pk}/complete", {}, format="json").status_code == 400


def test_another_organizations_task_is_not_found(api_client):
    task = LinkedInTaskFactory()
    response = api_client.post(f"/api/linkedin-tasks/{task.pk}/complete", {"sent": True}, format="json")
    assert response.status_code == 404
    assert LinkedInTask.objects.get(pk=task.pk).status == "pending"
