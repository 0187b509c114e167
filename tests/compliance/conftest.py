import pytest


@pytest.fixture(autouse=True)
def _sandbox_providers(settings):
    # No provider keys: message_send goes through the sandbox, which builds the real SendGrid/Twilio request.
    settings.SENDGRID_API_KEY = ""
    settings.TWILIO_ACCOUNT_SID = ""
    settings.TWILIO_AUTH_TOKEN = ""
    settings.PUBLIC_BASE_URL = "https://rex.example.com"
