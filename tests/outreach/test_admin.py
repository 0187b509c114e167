import datetime as dt

import pytest

from agents.models import LinkedInTask, Message
from tests.factories import LinkedInTaskFactory, MessageFactory

pytestmark = pytest.mark.django_db


def test_linkedin_queue_pending_first_and_mark_sent(admin_client):
    handled = LinkedInTaskFactory(status="skipped")
    pending = LinkedInTaskFactory(message=MessageFactory(channel="linkedin", status="queued"))
    page = admin_client.get("/admin/agents/linkedintask/")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.index(f"/admin/agents/linkedintask/{pending.pk}/") < html.index(
        f"/admin/agents/linkedintask/{handled.pk}/"
    )
    assert f'href="{pending.profile_url}"' in html

    response = admin_client.post(
        "/admin/agents/linkedintask/", {"action": "mark_sent", "_selected_action": [pending.pk, handled.pk]}
    )
    assert response.status_code == 302
    assert LinkedInTask.objects.get(pk=pending.pk).status == "sent"
    assert LinkedInTask.objects.get(pk=handled.pk).status == "skipped"  # a handled task is left alone
    assert Message.objects.get(pk=pending.message_id).status == Message.Status.SENT


def test_messages_stuck_in_sending_filter(admin_client):
    stuck = MessageFactory(status="sending")
    Message.objects.filter(pk=stuck.pk).update(updated_at=stuck.updated_at - dt.timedelta(minutes=30))
    fresh = MessageFactory(status="sending")
    page = admin_client.get("/admin/agents/message/", {"stuck": "yes"})
    assert page.status_code == 200
    html = page.content.decode()
    assert f"/admin/agents/message/{stuck.pk}/" in html and f"/admin/agents/message/{fresh.pk}/" not in html
