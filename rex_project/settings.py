"""REX settings: one module, every knob an environment variable (see .env.example).

With nothing set, REX runs on the embedded default: a SQLite file, a broker that needs
no server (kombu's filesystem transport) and a local-memory cache, all under ``var/``.
Production sets DATABASE_URL, CELERY_BROKER_URL, REDIS_URL, SECRET_KEY and DEBUG=false.
"""

import secrets
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# Variables already in the environment win over the file.
environ.Env.read_env(env.str("ENV_FILE", default=str(BASE_DIR / ".env")), overwrite=False)

VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# Embedded default is a developer's machine; production must say DEBUG=false.
DEBUG = env.bool("DEBUG", default=True)


def _secret_key() -> str:
    key = env.str("SECRET_KEY", default="")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    # Embedded default: generate once and keep it, so sessions and signed links survive restarts.
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(64))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_celery_results",
    "django_celery_beat",
    "agents",
    "outcomes",
    "training",
    "webhooks",
    "simulation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "rex_project.urls"
WSGI_APPLICATION = "rex_project.wsgi.application"
ASGI_APPLICATION = "rex_project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
SQLITE_PATH = VAR_DIR / "rex.sqlite3"
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{SQLITE_PATH}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets the web server, worker and beat read while one of them writes;
        # IMMEDIATE takes the write lock up front instead of failing mid-transaction.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file, not memory, so a worker process started by the tests sees the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_rex.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"]["ATOMIC_REQUESTS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, locks, rate limits --------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "rex"}}

# --- Auth, i18n, static ---------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = VAR_DIR / "media"
LOGIN_URL = "admin:login"

# --- Security: on by default whenever DEBUG is off (manage.py check --deploy is clean) ---
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# /health is probed by load balancers over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^health$"]

# --- REST framework -------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rex_project.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.UserRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"user": env.str("API_THROTTLE_RATE", default="100/minute")},
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "rex_project.exceptions.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "REX API",
    "DESCRIPTION": "Missions, leads, outcomes and the training flywheel of REX.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Stable enum names where two models' choices would otherwise collide (e.g. StateBa1Enum).
    "ENUM_NAME_OVERRIDES": {
        "WebhookEventStateEnum": "webhooks.models.WebhookEvent.State",
        "OutcomePolarityEnum": "outcomes.models.OutcomeLabel.Label",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "rex_project.schema.paths_without_trailing_slash",
    ],
}

# --- Celery ---------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost/")
BROKER_DIR = VAR_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "staging", "control", "processed"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "staging_folder": str(BROKER_DIR / "staging"),  # see rex_project/broker.py
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": False,
        # kombu polls the folder when idle; its 1 s default caps a worker at ~2 tasks/s.
        "polling_interval": 0.01,
    }
else:
    # Must exceed the longest task (see time limits below); long waits live in the database.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_IMPORTS = ["rex_project.tasks"]
CELERY_RESULT_BACKEND = "django-db"
# Results are stored only where something reads them (round trips, the last step of a chord's chains).
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_EXTENDED = True
CELERY_RESULT_EXPIRES = 7 * 24 * 3600
CELERY_CACHE_BACKEND = "default"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
# Every REX task takes ids and checks the world before acting, so redelivery is safe:
# acknowledge after the work, and requeue if the worker process dies mid-task.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=300)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=360)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "agents.tasks.*": {"queue": "pipeline"},
    "webhooks.tasks.*": {"queue": "webhooks"},
    "outcomes.tasks.*": {"queue": "webhooks"},
    "training.tasks.*": {"queue": "training"},
}
# A worker consumes every queue listed here unless started with -Q (e.g. a training-only node).
CELERY_TASK_QUEUES = [Queue(name) for name in ("default", "pipeline", "webhooks", "training")]
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

FLOWER_BASIC_AUTH = env.str("FLOWER_BASIC_AUTH", default="")

# --- Providers (each integration turns on only when its key is set) --------------------
OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="") or None
OPENAI_MODEL = env.str("OPENAI_MODEL", default="gpt-4o-mini")
OPENAI_FINE_TUNE_BASE_MODEL = env.str("OPENAI_FINE_TUNE_BASE_MODEL", default="gpt-4o-2024-08-06")
# % of leads never contacted, so the real lift of the models can be measured (0-100; raising it only adds leads).
TRAINING_HOLDOUT_PERCENTAGE = env.float("TRAINING_HOLDOUT_PERCENTAGE", default=0.0)
# The local policy learns only from messages sent at least this long ago: a reply, meeting or bounce takes days to
# come back, and a fresh message without one yet is not a "no response".
TRAINING_SETTLE_HOURS = env.float("TRAINING_SETTLE_HOURS", default=72.0)
# Exported fine-tuning datasets (one folder per run) and trained local models live here.
TRAINING_DIR = Path(env.str("TRAINING_DIR", default=str(VAR_DIR / "training")))
OPENAI_TIMEOUT = env.float("OPENAI_TIMEOUT", default=20.0)
OPENAI_MAX_RETRIES = env.int("OPENAI_MAX_RETRIES", default=2)

SENDGRID_API_KEY = env.str("SENDGRID_API_KEY", default="")
SENDGRID_API_HOST = env.str("SENDGRID_API_HOST", default="https://api.sendgrid.com")
SENDGRID_WEBHOOK_PUBLIC_KEY = env.str("SENDGRID_WEBHOOK_PUBLIC_KEY", default="")

TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default="")
TWILIO_API_BASE_URL = env.str("TWILIO_API_BASE_URL", default="")
TWILIO_FROM_NUMBER = env.str("TWILIO_FROM_NUMBER", default="+15005550006")
DEFAULT_SENDER_LOCALPART = env.str("DEFAULT_SENDER_LOCALPART", default="hello")

# --- Deliverability -----------------------------------------------------------------------
# Resolvers for SPF/DKIM/DMARC checks: "ip", "ip:port" or "[v6]:port"; empty = the system's.
DNS_NAMESERVERS = env.list("DNS_NAMESERVERS", default=[])
DNS_TIMEOUT = env.float("DNS_TIMEOUT", default=3.0)

# --- Pipeline --------------------------------------------------------------------------
MISSION_BATCH_SIZE = env.int("MISSION_BATCH_SIZE", default=25)
SCRAPER_WEBSITE_ENABLED = env.bool("SCRAPER_WEBSITE_ENABLED", default=True)
# Lead websites come from CRM data; fetching private, loopback or link-local addresses is refused.
SCRAPER_ALLOW_PRIVATE_HOSTS = env.bool("SCRAPER_ALLOW_PRIVATE_HOSTS", default=False)
SCRAPER_FIRMOGRAPHICS_FILE = env.str(
    "SCRAPER_FIRMOGRAPHICS_FILE", default=str(BASE_DIR / "agents" / "data" / "firmographics.csv")
)
SCRAPER_CACHE_TTL = env.int("SCRAPER_CACHE_TTL", default=7 * 24 * 3600)

HUBSPOT_CLIENT_SECRET = env.str("HUBSPOT_CLIENT_SECRET", default="")
PIPEDRIVE_WEBHOOK_USER = env.str("PIPEDRIVE_WEBHOOK_USER", default="")
PIPEDRIVE_WEBHOOK_PASSWORD = env.str("PIPEDRIVE_WEBHOOK_PASSWORD", default="")
# Salesforce Outbound Messages cannot be signed: the endpoint URL carries ?token=<SALESFORCE_WEBHOOK_TOKEN>, and
# only this org's messages (15- or 18-character id) are accepted.
SALESFORCE_WEBHOOK_TOKEN = env.str("SALESFORCE_WEBHOOK_TOKEN", default="")
SALESFORCE_ORGANIZATION_ID = env.str("SALESFORCE_ORGANIZATION_ID", default="")
# CRM REST APIs, read in the Celery task when a webhook event carries no REX ids (HubSpot: a private app's token
# with crm.objects.deals.read and crm.objects.contacts.read; Pipedrive: an API token, base URL without /api).
HUBSPOT_ACCESS_TOKEN = env.str("HUBSPOT_ACCESS_TOKEN", default="")
HUBSPOT_API_BASE_URL = env.str("HUBSPOT_API_BASE_URL", default="https://api.hubapi.com")
PIPEDRIVE_API_TOKEN = env.str("PIPEDRIVE_API_TOKEN", default="")
PIPEDRIVE_API_URL = env.str("PIPEDRIVE_API_URL", default="https://api.pipedrive.com")
CRM_WEBHOOK_SECRET = env.str("CRM_WEBHOOK_SECRET", default="")
INBOX_WEBHOOK_SECRET = env.str("INBOX_WEBHOOK_SECRET", default="")

# --- Logging: structured, one line per event ------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
