"""Ids in requests must fit the database: a huge one is a 400 on its field, never an overflow 500 (SQLite's
integers are 64-bit; Python's are not)."""

import functools

import pytest

HUGE = 10**20

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("method", "path", "payload", "field"),
    [
        ("post", "/rex/command", {"type": "lead_reactivation", "lead_ids": [HUGE]}, "lead_ids"),
        ("post", "/rex/command", {"type": "lead_reactivation", "campaign_id": HUGE}, "campaign_id"),
        ("post", "/domain/assign", {"lead_id": HUGE}, "lead_id"),
        ("post", "/domain/rotate", {"mailbox_id": HUGE}, "mailbox_id"),
        ("get", "/api/messages", {"lead": HUGE}, "lead"),
        ("get", "/api/outcomes/", {"campaign": HUGE}, "campaign"),
        ("post", "/api/campaigns", {"name": "Spring", "lead_ids": [HUGE]}, "lead_ids"),
    ],
)
def test_a_huge_id_is_a_400_on_its_field(api_client, method, path, payload, field):
    send = api_client.get if method == "get" else functools.partial(api_client.post, format="json")
    response = send(path, payload)

    assert response.status_code == 400, response.content
    assert field in str(response.json())
