import csv
import json
import time
from datetime import datetime
from pathlib import Path

import pytest
from werkzeug import Response

from agents.models import Lead
from agents.pipeline import scraper
from agents.pipeline.scraper import ScraperAgent
from tests.factories import LeadFactory, MissionFactory, OrganizationFactory

pytestmark = pytest.mark.django_db

PAGE = """<!doctype html>
<html><head>
  <title>Brightlane &mdash; pipeline tools</title>
  <meta name="description" content="Revenue tooling for B2B teams.">
  <meta property="og:description" content="Open graph text.">
  <script>var note = "series a";</script>
</head><body>
  <nav><a href="/pricing">Plans</a> <a href="/careers">Careers</a></nav>
  <p>We&#8217;re hiring! Fresh off our Series B, we integrate with HubSpot and Salesforce.</p>
  <a class="cta" href="/demo">Book a demo</a>
</body></html>"""

FIRMOGRAPHICS = [
    {"domain": "acme-widgets.com", "industry": "Manufacturing", "company_size": "340", "country": "US",
     "founded": "1999", "funding_stage": "private"},
    {"domain": "brightlane.example.com", "industry": "SaaS", "company_size": "180", "country": "US",
     "founded": "2016", "funding_stage": "series_b"},
]  # fmt: skip


@pytest.fixture(autouse=True)
def _local_test_server_allowed(settings):
    settings.SCRAPER_ALLOW_PRIVATE_HOSTS = True  # the test website lives on 127.0.0.1


@pytest.fixture
def organization():
    return OrganizationFactory()


@pytest.fixture
def agent(organization):
    return ScraperAgent(mission=MissionFactory(organization=organization))


@pytest.fixture
def csv_file(tmp_path, settings):
    path = tmp_path / "firmographics.csv"
    header = "domain,industry,company_size,country,founded,funding_stage"
    rows = [",".join(str(row[name]) for name in header.split(",")) for row in FIRMOGRAPHICS]
    path.write_text("\n".join([header, *rows]) + "\n")
    settings.SCRAPER_FIRMOGRAPHICS_FILE = str(path)
    return path


def _site_lead(organization, httpserver, path="/", **fields):
    return LeadFactory(
        organization=organization, website=httpserver.url_for(path), state=Lead.State.QUALIFIED, **fields
    )


def test_website_title_description_and_signals(agent, organization, httpserver, csv_file):
    httpserver.expect_request("/").respond_with_data(PAGE, content_type="text/html; charset=utf-8")
    lead = _site_lead(organization, httpserver)

    result = agent.process(lead)

    lead.refresh_from_db()
    assert result.proceed is True
    assert result.output["sources"] == {"email_domain": "ok", "firmographics": "ok", "website": "ok"}
    assert lead.state == Lead.State.ENRICHED
    assert lead.enrichment["website_title"]["value"] == "Brightlane \u2014 pipeline tools"
    assert lead.enrichment["website_description"]["value"] == "Revenue tooling for B2B teams."
    # The signal in a <script> is not on the page a visitor sees.
    assert lead.enrichment["website_signals"]["value"] == [
        "book_a_demo",
        "hiring",
        "hubspot",
        "pricing",
        "salesforce",
        "series_b",
    ]
    assert lead.enrichment["website_title"]["source"] == "website"


def test_og_description_when_there_is_no_meta_description(agent, organization, httpserver, csv_file):
    page = '<html><head><meta property="og:description" content="From open graph"></head></html>'
    httpserver.expect_request("/").respond_with_data(page, content_type="text/html")
    lead = _site_lead(organization, httpserver)
    agent.process(lead)
    assert lead.enrichment["website_description"]["value"] == "From open graph"


def test_page_over_the_size_cap_is_cut(agent, organization, httpserver, csv_file):
    head = '<html><head><meta name="description" content="Early."></head><body>'
    filler = "<p>" + "x" * scraper.MAX_BYTES + "</p>"
    page = head + filler + "<title>Beyond the cap</title><p>We are hiring</p></body></html>"
    httpserver.expect_request("/").respond_with_data(page, content_type="text/html")
    lead = _site_lead(organization, httpserver)

    result = agent.process(lead)

    assert result.output["sources"]["website"] == "ok"
    assert lead.enrichment["website_description"]["value"] == "Early."
    assert "website_title" not in lead.enrichment
    assert "website_signals" not in lead.enrichment


@pytest.mark.parametrize(
    ("respond", "reason"),
    [
        (lambda server: server.respond_with_data("boom", status=500, content_type="text/html"), "HTTP 500"),
        (lambda server: server.respond_with_json({"title": "not a page"}), "not HTML: application/json"),
        (lambda server: server.respond_with_handler(_slow), "ReadTimeout"),
    ],
    ids=["500", "not-html", "slow"],
)
def test_failing_website_leaves_the_other_sources(
    agent, organization, httpserver, csv_file, monkeypatch, respond, reason
):
    monkeypatch.setattr(scraper, "READ_TIMEOUT", 0.2)
    respond(httpserver.expect_request("/"))
    lead = _site_lead(organization, httpserver, industry="", company_size=None)

    result = agent.process(lead)

    lead.refresh_from_db()
    assert result.proceed is True
    assert result.output["sources"]["website"] == f"unavailable: {reason}"
    assert result.output["sources"]["firmographics"] == "ok"
    assert (lead.industry, lead.company_size, lead.state) == ("SaaS", 180, Lead.State.ENRICHED)
    assert not {"website_url", "website_title", "website_signals"} & set(lead.enrichment)
    _wait_for_the_server(httpserver)


def _wait_for_the_server(httpserver):
    # The slow handler answers after the client gave up; let it finish before the next test uses the server.
    deadline = time.monotonic() + 3
    while not httpserver.log and time.monotonic() < deadline:
        time.sleep(0.05)


def _slow(request):
    time.sleep(1.0)
    return Response("<title>too late</title>", content_type="text/html")


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_firmographics_fill_empty_fields_with_provenance(agent, organization, tmp_path, settings, kind, csv_file):
    if kind == "json":
        path = tmp_path / "firmographics.json"
        path.write_text(
            json.dumps({row["domain"]: {k: v for k, v in row.items() if k != "domain"} for row in FIRMOGRAPHICS})
        )
        settings.SCRAPER_FIRMOGRAPHICS_FILE = str(path)
    settings.SCRAPER_WEBSITE_ENABLED = False
    lead = LeadFactory(
        organization=organization, email="jo@acme-widgets.com", industry="", company_size=None, website="", title="CTO"
    )

    result = agent.process(lead)

    lead.refresh_from_db()
    assert (lead.industry, lead.company_size, lead.website) == ("Manufacturing", 340, "https://acme-widgets.com")
    assert sorted(result.output["filled"]) == ["company_size", "industry", "website"]
    assert result.output["sources"] == {"email_domain": "ok", "firmographics": "ok"}
    industry = lead.enrichment["industry"]
    assert (industry["value"], industry["source"]) == ("Manufacturing", "firmographics")
    assert datetime.fromisoformat(industry["fetched_at"]).tzinfo is not None
    assert lead.enrichment["funding_stage"]["value"] == "private"
    assert lead.state == Lead.State.NEW  # never qualified, so not "enriched" in the lifecycle
    assert lead.enrichment["free_mail"] == {**lead.enrichment["free_mail"], "value": False, "source": "email_domain"}


def test_firmographics_never_overwrite_known_fields(agent, organization, settings, csv_file):
    settings.SCRAPER_WEBSITE_ENABLED = False
    lead = LeadFactory(
        organization=organization, email="jo@acme-widgets.com", website="", industry="Robotics", company_size=12
    )
    agent.process(lead)
    lead.refresh_from_db()
    assert (lead.industry, lead.company_size) == ("Robotics", 12)
    assert lead.enrichment["industry"]["value"] == "Manufacturing"


def test_firmographics_file_is_reloaded_when_it_changes(csv_file):
    assert scraper.firmographics_table(csv_file)["acme-widgets.com"]["company_size"] == 340
    csv_file.write_text("domain,industry,company_size\nacme-widgets.com,Manufacturing,4100\n")
    assert scraper.firmographics_table(csv_file)["acme-widgets.com"]["company_size"] == 4100


def test_missing_firmographics_file_is_reported(agent, organization, settings, tmp_path):
    settings.SCRAPER_WEBSITE_ENABLED = False
    settings.SCRAPER_FIRMOGRAPHICS_FILE = str(tmp_path / "missing.csv")
    result = agent.process(LeadFactory(organization=organization))
    assert result.output["sources"]["firmographics"] == "unavailable: no firmographics file missing.csv"


def test_free_mail_domain_is_not_taken_for_a_website(agent, organization, settings, csv_file):
    lead = LeadFactory(organization=organization, email="maya@gmail.com", website="")
    result = agent.process(lead)
    assert result.output["sources"]["website"] == "unavailable: no company website"
    assert lead.enrichment["free_mail"]["value"] is True
    assert "website_guess" not in lead.enrichment


def test_second_run_is_served_from_the_cache(organization, httpserver, csv_file):
    httpserver.expect_request("/").respond_with_data(PAGE, content_type="text/html")
    lead = _site_lead(organization, httpserver)
    first = ScraperAgent(mission=MissionFactory(organization=organization)).process(lead)
    fetched_at = lead.enrichment["website_title"]["fetched_at"]

    lead.enrichment = {}
    second = ScraperAgent(mission=MissionFactory(organization=organization)).process(lead)

    assert len(httpserver.log) == 1
    assert first.output == second.output
    # Provenance tells when the data was fetched, not when it was read from the cache.
    assert lead.enrichment["website_title"]["fetched_at"] == fetched_at


def test_a_failed_fetch_is_not_cached(organization, httpserver, csv_file):
    httpserver.expect_oneshot_request("/").respond_with_data("down", status=503, content_type="text/html")
    httpserver.expect_request("/").respond_with_data(PAGE, content_type="text/html")
    lead = _site_lead(organization, httpserver)
    agent = ScraperAgent(mission=MissionFactory(organization=organization))

    assert agent.process(lead).output["sources"]["website"] == "unavailable: HTTP 503"
    assert agent.process(lead).output["sources"]["website"] == "ok"
    assert len(httpserver.log) == 2


def test_shipped_firmographics_cover_the_sample_leads():
    sample = Path(scraper.DEFAULT_FIRMOGRAPHICS_FILE).with_name("sample_leads.csv")
    with sample.open(newline="") as handle:
        domains = {row["email"].rsplit("@", 1)[1] for row in csv.DictReader(handle)}
    table = scraper.firmographics_table(scraper.DEFAULT_FIRMOGRAPHICS_FILE)
    assert domains <= set(table)
    assert len(table) >= len(domains) + 20
    assert all(isinstance(row["company_size"], int) and row["industry"] for row in table.values())


def test_internal_addresses_are_refused_by_default(agent, organization, httpserver, settings, csv_file):
    settings.SCRAPER_ALLOW_PRIVATE_HOSTS = False
    httpserver.expect_request("/").respond_with_data("<title>secret admin</title>", content_type="text/html")
    lead = _site_lead(organization, httpserver)
    agent.process(lead)
    lead.refresh_from_db()
    assert "website_title" not in lead.enrichment
    assert len(httpserver.log) == 0  # never even asked


@pytest.mark.parametrize("url", ["http://10.0.0.5/", "http://localhost:8000/admin", "http://169.254.169.254/latest"])
def test_private_loopback_and_link_local_hosts_are_refused(settings, url):
    settings.SCRAPER_ALLOW_PRIVATE_HOSTS = False
    with pytest.raises(scraper.SourceUnavailable, match="non-public"):
        scraper.refuse_internal_host(url)  # checked before any connection is made
