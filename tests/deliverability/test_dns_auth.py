"""SPF, DKIM and DMARC checks against a real DNS server on 127.0.0.1."""

import pytest

from agents.domains import dns_check
from agents.domains.dns_auth import resolver
from tests.factories import SendingDomainFactory

pytestmark = pytest.mark.django_db


def test_an_authenticated_domain_passes_all_three(zone):
    domain = SendingDomainFactory(domain="mail.good.example", dkim_selector="rex2024")
    zone.authenticate("mail.good.example", selector="rex2024")

    checks = dns_check(domain)

    assert checks["spf"] == {"ok": True, "record": "v=spf1 include:sendgrid.net -all"}
    assert checks["dkim"]["ok"] is True
    assert checks["dkim"]["selector"] == "rex2024"
    assert checks["dkim"]["record"].startswith("v=DKIM1")
    assert checks["dmarc"]["ok"] is True
    assert checks["dmarc"]["policy"] == "reject"


def test_a_missing_dkim_key_fails_with_the_reason(zone):
    domain = SendingDomainFactory(domain="mail.nodkim.example", dkim_selector="s1")
    zone.authenticate("mail.nodkim.example", selector="other")

    checks = dns_check(domain)

    assert checks["spf"]["ok"] and checks["dmarc"]["ok"]
    assert checks["dkim"]["ok"] is False
    assert "NXDOMAIN" in checks["dkim"]["error"]
    assert "s1._domainkey.mail.nodkim.example" in checks["dkim"]["error"]


def test_a_revoked_dkim_key_fails(zone):
    domain = SendingDomainFactory(domain="mail.revoked.example")
    zone.authenticate("mail.revoked.example")
    zone.txt["s1._domainkey.mail.revoked.example"] = ["v=DKIM1; k=rsa; p="]

    assert "revoked" in dns_check(domain)["dkim"]["error"]


@pytest.mark.parametrize("policy", ["none", "quarantine", "reject"])
def test_the_dmarc_policy_is_read(zone, policy):
    domain = SendingDomainFactory(domain="mail.dmarc.example")
    zone.authenticate("mail.dmarc.example", policy=policy)

    assert dns_check(domain)["dmarc"] == {
        "ok": True,
        "record": f"v=DMARC1; p={policy}; rua=mailto:dmarc@mail.dmarc.example",
        "policy": policy,
    }


def test_a_dmarc_record_without_a_valid_policy_fails(zone):
    domain = SendingDomainFactory(domain="mail.badpolicy.example")
    zone.authenticate("mail.badpolicy.example")
    zone.txt["_dmarc.mail.badpolicy.example"] = ["v=DMARC1; rua=mailto:x@example.com"]

    assert dns_check(domain)["dmarc"]["ok"] is False


def test_txt_records_without_spf_fail_and_a_name_without_txt_is_no_answer(zone):
    domain = SendingDomainFactory(domain="mail.nospf.example")
    zone.authenticate("mail.nospf.example")
    zone.txt["mail.nospf.example"] = ["google-site-verification=abc"]
    zone.txt["_dmarc.mail.nospf.example"] = []  # the name exists, with no TXT record

    checks = dns_check(domain)

    assert checks["spf"] == {"ok": False, "error": "no TXT record at mail.nospf.example starts with v=spf1"}
    assert checks["dmarc"] == {"ok": False, "error": "no TXT record at _dmarc.mail.nospf.example"}


def test_two_spf_records_are_a_failure(zone):
    domain = SendingDomainFactory(domain="mail.twospf.example")
    zone.authenticate("mail.twospf.example")
    zone.txt["mail.twospf.example"] = ["v=spf1 -all", "v=spf1 include:x.example -all"]

    assert "2 SPF records" in dns_check(domain)["spf"]["error"]


def test_a_server_that_never_answers_is_a_timeout_failure(zone, settings):
    settings.DNS_TIMEOUT = 0.3
    domain = SendingDomainFactory(domain="mail.slow.example")
    zone.authenticate("mail.slow.example")
    zone.silent.add("mail.slow.example")

    checks = dns_check(domain)

    assert checks["spf"] == {"ok": False, "error": "timeout looking up mail.slow.example"}
    assert checks["dkim"]["ok"] is True


def test_the_resolver_uses_the_configured_nameservers_and_timeout(settings):
    settings.DNS_NAMESERVERS = ["127.0.0.1:5353", "10.0.0.2", "[::1]:5300"]
    settings.DNS_TIMEOUT = 1.5

    res = resolver()

    assert [(ns.address, ns.port) for ns in res.nameservers] == [("127.0.0.1", 5353), ("10.0.0.2", 53), ("::1", 5300)]
    assert res.lifetime == res.timeout == 1.5
