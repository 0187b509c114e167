import pytest
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token

from agents.models import Membership, Organization

pytestmark = pytest.mark.django_db


def test_create_operator_creates_org_user_and_prints_token(capsys):
    call_command("create_operator", "--org", "Acme", "--email", "Ops@Acme.io", "--staff")
    out = capsys.readouterr().out
    membership = Membership.objects.get(user__username="ops@acme.io")
    assert membership.organization.name == "Acme"
    assert membership.user.is_staff
    assert f"token: {Token.objects.get(user=membership.user).key}" in out
    assert "password: " in out

    # Running it again reuses the organization and the user.
    call_command("create_operator", "--org", "Acme", "--email", "ops@acme.io")
    assert Organization.objects.filter(name="Acme").count() == 1
    assert Membership.objects.count() == 1


def test_create_operator_refuses_a_user_of_another_organization():
    call_command("create_operator", "--org", "Acme", "--email", "ops@acme.io")
    with pytest.raises(CommandError, match="already belongs"):
        call_command("create_operator", "--org", "Globex", "--email", "ops@acme.io")


def test_create_operator_refuses_a_bad_email():
    with pytest.raises(CommandError, match="email"):
        call_command("create_operator", "--org", "Acme", "--email", "nope")
