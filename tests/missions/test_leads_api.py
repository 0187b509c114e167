import pytest

from agents.models import Campaign, Lead

pytestmark = pytest.mark.django_db

CSV = """first_name,last_name,email,phone,company,company_size,timezone
Maya,Okafor,maya@brightlane.io,+14155550131,Brightlane,180,America/Los_Angeles
Dup,Licate,MAYA@brightlane.io,,Brightlane,,
Bad,Email,not-an-email,,Nowhere,,
Bad,Phone,bad.phone@acme.io,12,Acme,,
Bad,Zone,zone@acme.io,,Acme,,Mars/Base
Jonas,Weber,j.weber@kraftwerk.de,+49 30 901820,Kraftwerk,850,Europe/Berlin
"""


def test_csv_import_validates_every_row_and_dedupes(api_client, membership, tmp_path):
    path = tmp_path / "leads.csv"
    path.write_text(CSV)
    with path.open("rb") as handle:
        response = api_client.post("/api/leads/import", {"file": handle}, format="multipart")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["received"] == 6 and body["created"] == 2
    reasons = {row["row"]: set(row["errors"]) for row in body["rejected"]}
    assert reasons == {2: {"email"}, 3: {"email"}, 4: {"phone"}, 5: {"timezone"}}
    assert set(Lead.objects.values_list("email", "phone")) == {
        ("maya@brightlane.io", "+14155550131"),
        ("j.weber@kraftwerk.de", "+4930901820"),
    }


def test_json_import_and_repeat_is_all_duplicates(api_client, membership):
    rows = [{"email": "a@acme.io", "company": "Acme"}, {"email": "b@acme.io", "company_size": "12"}]
    first = api_client.post("/api/leads/import", {"leads": rows}, format="json")
    assert first.status_code == 201 and first.json()["created"] == 2
    again = api_client.post("/api/leads/import", rows, format="json")
    assert again.status_code == 200 and again.json()["created"] == 0
    assert [r["errors"] for r in again.json()["rejected"]] == [{"email": ["duplicate"]}] * 2


def test_import_without_rows_is_a_clear_400(api_client, membership):
    response = api_client.post("/api/leads/import", {"something": "else"}, format="json")
    assert response.status_code == 400 and "leads" in response.json()


def test_lead_filters_pagination_and_update(api_client, membership):
    for i in range(3):
        api_client.post("/api/leads", {"email": f"l{i}@acme.io", "industry": "SaaS" if i else "Retail"}, format="json")
    listed = api_client.get("/api/leads?industry=SaaS")
    assert listed.json()["count"] == 2
    lead_id = listed.json()["results"][0]["id"]
    updated = api_client.patch(
        f"/api/leads/{lead_id}", {"title": "VP Sales", "phone": "+1 415 555 0100"}, format="json"
    )
    assert updated.status_code == 200 and updated.json()["phone"] == "+14155550100"
    clash = api_client.patch(f"/api/leads/{lead_id}", {"email": "l0@acme.io"}, format="json")
    assert clash.status_code == 400 and "email" in clash.json()


def test_campaign_create_update_and_leads(api_client, membership):
    lead = api_client.post("/api/leads", {"email": "c@acme.io"}, format="json").json()
    created = api_client.post(
        "/api/campaigns", {"name": "Q4 revival", "channels": ["email", "sms"], "lead_ids": [lead["id"]]}, format="json"
    )
    assert created.status_code == 201, created.json()
    assert created.json()["lead_count"] == 1
    bad = api_client.post("/api/campaigns", {"name": "Other", "channels": ["fax"]}, format="json")
    assert bad.status_code == 400 and "channels" in bad.json()
    duplicate = api_client.post("/api/campaigns", {"name": "Q4 revival"}, format="json")
    assert duplicate.status_code == 400
    patched = api_client.patch(f"/api/campaigns/{created.json()['id']}", {"status": "paused"}, format="json")
    assert patched.json()["status"] == "paused"
    assert Campaign.objects.count() == 1
