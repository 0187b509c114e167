"""Deploy check: Twilio and HubSpot sign the public URL they call, and unsubscribe links point at it."""

from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}


@checks.register(checks.Tags.security, deploy=True)
def public_base_url_check(app_configs, **kwargs):
    url = urlsplit(settings.PUBLIC_BASE_URL)
    if url.scheme == "https" and (url.hostname or "") not in LOOPBACK_HOSTS:
        return []
    return [
        checks.Warning(
            f"PUBLIC_BASE_URL is {settings.PUBLIC_BASE_URL!r}.",
            hint="Set it to the public https address providers call (e.g. https://rex.example.com): Twilio and "
            "HubSpot signatures are checked against it and unsubscribe links point at it.",
            id="webhooks.W001",
        )
    ]
