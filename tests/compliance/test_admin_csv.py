"""Suppression admin: CSV import (through the suppression service) and export."""

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from agents.models import Message, Suppression
from tests.factories import MessageFactory, OrganizationFactory, SuppressionFactory

pytestmark = pytest.mark.django_db

IMPORT_URL = "/admin/agents/suppression/import/"


def test_import_page_renders_and_is_linked_from_the_changelist(admin_client):
    assert reverse("admin:agents_suppression_import") == IMPORT_URL
    assert admin_client.get(IMPORT_URL).status_code == 200
    assert IMPORT_URL.encode() in admin_client.get(reverse("admin:agents_suppression_changelist")).content


def test_import_creates_skips_and_reports_invalid_rows(admin_client):
    organization = OrganizationFactory()
    SuppressionFactory(organization=organization, kind="email", value="already@example.com")
    queued = MessageFactory(organization=organization, lead__email="Jo@Acme.example", status=Message.Status.QUEUED)
    rows = (
        "value,kind\nJo@Acme.example\n+1 415 555 0199\nspam.example\nALREADY@example.com\nnot-a-phone,phone\nx,fax\n\n"
    )
    upload = SimpleUploadedFile("list.csv", rows.encode(), content_type="text/csv")

    response = admin_client.post(
        IMPORT_URL, {"organization": organization.pk, "file": upload, "reason": "manual"}, follow=True
    )

    assert response.status_code == 200
    entries = set(Suppression.objects.filter(organization=organization).values_list("kind", "value", "reason"))
    assert entries == {
        ("email", "already@example.com", "unsubscribe"),
        ("email", "jo@acme.example", "manual"),
        ("phone", "+14155550199", "manual"),
        ("domain", "spam.example", "manual"),
    }
    shown = [str(m) for m in response.context["messages"]]
    assert shown[0] == "CSV import: 3 created, 1 skipped (already suppressed), 2 invalid."
    assert "line 6: 'not-a-phone'" in shown[1] and "line 7: 'x'" in shown[1]
    queued.refresh_from_db()
    assert queued.status == Message.Status.CANCELLED


def test_import_refuses_a_non_utf8_file(admin_client):
    upload = SimpleUploadedFile("list.csv", b"\xff\xfe\x00bad", content_type="text/csv")

    response = admin_client.post(
        IMPORT_URL, {"organization": OrganizationFactory().pk, "file": upload, "reason": "manual"}
    )

    assert response.status_code == 200
    assert b"not UTF-8" in response.content
    assert not Suppression.objects.exists()


def test_export_selected_as_csv(admin_client):
    chosen = [SuppressionFactory(kind="domain", value="spam.example"), SuppressionFactory()]
    SuppressionFactory()  # not selected

    response = admin_client.post(
        reverse("admin:agents_suppression_changelist"),
        {"action": "export_csv", "_selected_action": [s.pk for s in chosen]},
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["value", "kind", "reason", "organization", "note", "created_at"]
    assert sorted(row[0] for row in rows[1:]) == sorted(s.value for s in chosen)


def test_adding_an_entry_in_the_admin_goes_through_the_service(admin_client):
    message = MessageFactory(status=Message.Status.QUEUED)

    response = admin_client.post(
        reverse("admin:agents_suppression_add"),
        {"organization": message.organization.pk, "kind": "email", "value": message.lead.email.upper(),
         "reason": "manual", "note": "asked by phone"},
    )  # fmt: skip

    assert response.status_code == 302
    assert Suppression.objects.get().value == message.lead.email
    message.refresh_from_db()
    assert message.status == Message.Status.CANCELLED
