"""careloop's settings: one module, driven by `CARELOOP_*` environment variables.

The defaults run the embedded case (an encrypted SQLite file and keys under `./var/`)
with nothing to configure. `CARELOOP_ENV=production` turns every default secret into
a requirement: careloop refuses to start rather than run with a made-up key.
"""

from __future__ import annotations

from pathlib import Path

from careloop.core.config import (
    ConfigError,
    django_database,
    env,
    env_bool,
    env_int,
    env_list,
    env_time_of_day,
    parse_database_url,
)
from careloop.core.local_secrets import local_secret
from careloop.portal.vapid import vapid_private_from_seed, vapid_public_key

ENV = (env("ENV", "development") or "development").strip().lower()
if ENV not in {"development", "production", "test"}:
    raise ConfigError(f"CARELOOP_ENV must be development, production or test, not {ENV!r}.")
PRODUCTION = ENV == "production"

VAR_DIR = Path(env("VAR_DIR", "var") or "var").resolve()


def _required_in_production(name: str, purpose: str) -> str | None:
    value = env(name)
    if PRODUCTION and not value:
        raise ConfigError(
            f"CARELOOP_{name} is not set. In production careloop needs {purpose}; "
            f"set CARELOOP_{name} (see README, 'Configuration')."
        )
    return value or None


# --- secrets ---------------------------------------------------------------------
SECRET_KEY = _required_in_production("SECRET_KEY", "a secret key for sessions and signing") or (
    local_secret(VAR_DIR, "secret_key")
)
# The master key wraps the data keys that encrypt PHI class I (careloop.security.crypto).
MASTER_KEY = _required_in_production("MASTER_KEY", "the master key that wraps the PHI data keys")
MASTER_KEY_FILE = VAR_DIR / "keys" / "master.key"

DEBUG = env_bool("DEBUG", False)
if PRODUCTION and DEBUG:
    raise ConfigError("CARELOOP_DEBUG must be off in production.")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ConfigError(
        "CARELOOP_ALLOWED_HOSTS is not set. List the host names careloop answers to, "
        "comma-separated."
    )
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# --- database --------------------------------------------------------------------
_database_url = _required_in_production("DATABASE_URL", "a database") or (
    f"sqlite:///{VAR_DIR / 'careloop.db'}"
)
DATABASE = parse_database_url(_database_url)
# The embedded database is encrypted with SQLCipher where the binding is installed;
# `sqlite_key` names the key's source, derived from the master key at connect time.
SQLITE_ENCRYPTION = env_bool("SQLITE_ENCRYPTION", True)
DATABASES = {"default": django_database(DATABASE, sqlite_encrypted=SQLITE_ENCRYPTION)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- apps ------------------------------------------------------------------------
INSTALLED_APPS = [
    # Before django.contrib.auth so that its `createsuperuser` (which validates the
    # password in every mode) wins over Django's.
    "careloop.security.auth",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_tasks",
    "django_tasks_db",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "careloop.core",
    "careloop.security",
    "careloop.patients",
    "careloop.consent",
    "careloop.clinical",
    "careloop.caregaps",
    "careloop.scheduling",
    "careloop.referrals",
    "careloop.leads",
    "careloop.demo",
    "careloop.ehr",
    "careloop.api",
    "careloop.fhirapi",
    "careloop.outreach",
    "careloop.portal",
    "careloop.intake",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "careloop.core.headers.SecurityHeadersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "careloop.security.audit.AuditRequestMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "careloop.security.sessions.SessionPolicyMiddleware",
    "careloop.security.auth.gate.MfaGateMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "careloop.core.middleware.NoStoreMiddleware",
]

ROOT_URLCONF = "careloop.urls"
WSGI_APPLICATION = "careloop.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "careloop.core.context.practice",
                "careloop.security.sessions.session_context",
            ],
        },
    },
]

# --- people and sessions -----------------------------------------------------------
AUTH_USER_MODEL = "security.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SESSION_IDLE_TIMEOUT = env_int("SESSION_IDLE_SECONDS", 15 * 60, minimum=60)
SESSION_COOKIE_AGE = env_int("SESSION_ABSOLUTE_SECONDS", 12 * 60 * 60, minimum=300)
# The banner with "Stay signed in" shows this long before an idle sign-out.
SESSION_IDLE_WARNING_SECONDS = 2 * 60
# Sensitive actions (exports, role changes, key rotation) ask for the password and a
# code again when the last time was longer ago than this (careloop.security.auth.gate).
REAUTH_MAX_AGE_SECONDS = 5 * 60
# Lockout: this many failed passwords or codes within the window lock a staff account.
LOCKOUT_FAILURES = 10
LOCKOUT_WINDOW_SECONDS = 15 * 60
LOCKOUT_SECONDS = 15 * 60
# Sliding-window rate limits, scope: (requests, seconds) (careloop.security.ratelimit).
# Per address generously (a clinic signs in from behind one NAT address), per username
# tightly; the lockout above is what stops password guessing on a real account.
RATE_LIMITS = {
    "login.ip": (60, 10 * 60),
    "login.username": (20, 15 * 60),
    "token.ip": (600, 60),
    # Portal self-registration (careloop.portal.accounts): each attempt may send a code.
    "portal.register.ip": (10, 60 * 60),
}
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_HTTPONLY = True

# --- transport security: careloop is only ever served over TLS ------------------------
SECURE_HSTS_SECONDS = 365 * 24 * 60 * 60
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# The server terminates TLS itself; behind a TLS-terminating proxy set this on.
SECURE_SSL_REDIRECT = env_bool("SSL_REDIRECT", False)
# A TLS-terminating proxy or load balancer is in front: trust its X-Forwarded-Proto and
# let `careloop serve` speak plain HTTP to it (careloop.core.server.plan).
BEHIND_PROXY = env_bool("BEHIND_PROXY", False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# careloop's server speaks only TLS on its port (plain HTTP gets no answer at all), and a
# TLS-terminating proxy in front does its own redirect; a Django-level redirect would
# never see a plain-HTTP request. Hence W008 is silenced on purpose.
SILENCED_SYSTEM_CHECKS = ["security.W008"]
# /healthz and /readyz answer load balancers that may probe over plain HTTP internally.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]

# --- the web server and the worker ---------------------------------------------------
SERVE_BIND = env("BIND", "127.0.0.1:8443") or "127.0.0.1:8443"
SERVE_WORKERS = env_int("WEB_WORKERS", 2, minimum=1)
TLS_CERT_FILE = env("TLS_CERT")
TLS_KEY_FILE = env("TLS_KEY")
TLS_DIR = VAR_DIR / "tls"
WORKER_SWEEP_SECONDS = env_int("SWEEP_SECONDS", 5, minimum=1)
# `careloop mllp` (HL7 v2 over MLLP, careloop.ehr.mllp): where it listens, the largest
# message it reads (larger ones get AR and the connection closes), how long a message
# may take to arrive once started, how long a connection may sit idle, how many at once.
MLLP_BIND = env("MLLP_BIND", "127.0.0.1:2575") or "127.0.0.1:2575"
MLLP_MAX_BYTES = env_int("MLLP_MAX_BYTES", 1024 * 1024, minimum=1024)
MLLP_FRAME_TIMEOUT_SECONDS = env_int("MLLP_FRAME_TIMEOUT", 30, minimum=1)
MLLP_IDLE_TIMEOUT_SECONDS = env_int("MLLP_IDLE_TIMEOUT", 300, minimum=1)
MLLP_MAX_CONNECTIONS = env_int("MLLP_MAX_CONNECTIONS", 32, minimum=1)

TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
        "QUEUES": ["default"],
    }
}

# --- the practice ------------------------------------------------------------------
PRACTICE_NAME = env("PRACTICE_NAME", "Riverbend Family Health") or "Riverbend Family Health"
# TOTP (django-otp): authenticator apps show the practice's name beside the code.
OTP_TOTP_ISSUER = PRACTICE_NAME
PRACTICE_TIME_ZONE = env("PRACTICE_TIME_ZONE", "America/Chicago") or "America/Chicago"
# The number patients call, named in messages ({{ practice.phone }}).
PRACTICE_PHONE = env("PRACTICE_PHONE", "(555) 010-0100") or "(555) 010-0100"
# Messages go out in this language when a template has no version in the patient's.
PRACTICE_DEFAULT_LANGUAGE = env("PRACTICE_DEFAULT_LANGUAGE", "en") or "en"

# --- secure messages in the portal (careloop.portal.messaging) -------------------------
# The team inboxes a patient may write to, each with the business days (Monday to
# Friday, practice time zone) within which the practice answers: "code:days,...".


def _message_inboxes(items: list[str]) -> dict[str, int]:
    inboxes: dict[str, int] = {}
    for item in items:
        code, _, days = item.partition(":")
        if not code.strip().isidentifier() or not days.strip().isdigit():
            raise ConfigError(
                f"CARELOOP_PORTAL_MESSAGE_INBOXES: {item!r} is not inbox_code:business_days."
            )
        inboxes[code.strip()] = int(days)
    return inboxes


PORTAL_MESSAGE_INBOXES = _message_inboxes(
    env_list("PORTAL_MESSAGE_INBOXES", ["care_team:1", "front_desk:1", "billing:2"])
)
# The largest attachment accepted (bytes); larger ones are refused with the reason.
PORTAL_ATTACHMENT_MAX_BYTES = env_int("PORTAL_ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024, minimum=1024)

# --- i18n, time, static ---------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO") or "INFO"},
    "loggers": {
        # Django logs the full request line of 4xx/5xx responses; careloop never puts
        # PHI in URLs, but keep request logging at WARNING so nothing chatty leaks.
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "WARNING"},
        # httpx logs every request URL at INFO; Bulk Data file URLs can be pre-signed
        # (a credential in the query string), so only its warnings are kept.
        "httpx": {"level": "WARNING"},
    },
}

# --- contacting patients (careloop.consent.decisions.may_contact) ---------------------
# Local quiet hours for SMS, voice and push, unless the patient chose others.
CONTACT_QUIET_HOURS = (env("QUIET_START", "21:00") or "21:00", env("QUIET_END", "08:00") or "08:00")
# Per channel: (at most N messages, in D days), for every purpose but appointments.
CONTACT_FREQUENCY_CAPS: dict[str, list[tuple[int, int]]] = {
    "sms": [(1, 1), (3, 7)],
    "voice": [(1, 1), (2, 7)],
    "email": [(2, 1), (5, 7)],
    "push": [(2, 1), (7, 7)],
}

# --- outreach channels (careloop.outreach.channels) -----------------------------------
# E-mail over SMTP; STARTTLS is required, never optional. SMTP_CA_FILE adds a CA bundle
# (a relay with a private certificate authority). SMTP_VENDOR names the relay's entry
# in the BAA registry (careloop vendor).
SMTP_HOST = env("SMTP_HOST", "127.0.0.1") or "127.0.0.1"
SMTP_PORT = env_int("SMTP_PORT", 587, minimum=1)
SMTP_USERNAME = env("SMTP_USERNAME")
SMTP_PASSWORD = env("SMTP_PASSWORD")
SMTP_FROM = env("SMTP_FROM", "care@practice.invalid") or "care@practice.invalid"
SMTP_CA_FILE = env("SMTP_CA_FILE")
SMTP_TIMEOUT_SECONDS = env_int("SMTP_TIMEOUT", 30, minimum=1)
SMTP_VENDOR = env("SMTP_VENDOR", "E-mail relay") or "E-mail relay"
# Bounces and complaints: when set, each message's envelope sender (Return-Path) is a
# VERP address `bounces+<message id>-<mac>@SMTP_BOUNCE_DOMAIN`, so a bounce names the
# message it is about; `careloop outreach bounces --maildir` reads that mailbox.
SMTP_BOUNCE_DOMAIN = env("SMTP_BOUNCE_DOMAIN", "") or ""
# SMS through a Twilio-compatible REST API. SMS_WEBHOOK_BASE_URL is careloop's public
# https origin as the provider calls it: status callbacks go there, and inbound
# signatures are checked against it.
SMS_BASE_URL = env("SMS_BASE_URL", "https://api.twilio.com") or "https://api.twilio.com"
SMS_ACCOUNT_SID = env("SMS_ACCOUNT_SID", "") or ""
SMS_AUTH_TOKEN = env("SMS_AUTH_TOKEN", "") or ""
SMS_MESSAGING_SERVICE_SID = env("SMS_MESSAGING_SERVICE_SID", "") or ""
SMS_WEBHOOK_BASE_URL = env("SMS_WEBHOOK_BASE_URL", "") or ""
SMS_TIMEOUT_SECONDS = env_int("SMS_TIMEOUT", 15, minimum=1)
SMS_VENDOR = env("SMS_VENDOR", "Twilio") or "Twilio"
# What a HELP reply says (carriers require the practice's name and how to reach it).
SMS_HELP_TEXT = env("SMS_HELP_TEXT", "") or (
    f"{PRACTICE_NAME}: call the practice for help. Reply STOP to opt out."
)
# Voice reminders through the same Twilio-compatible account (careloop.outreach.channels
# .voice): the caller id the patient sees, and the vendor's entry in the BAA registry.
VOICE_FROM_NUMBER = env("VOICE_FROM_NUMBER", "") or ""
VOICE_VENDOR = env("VOICE_VENDOR", SMS_VENDOR) or SMS_VENDOR
# Web Push (careloop.outreach.channels.push, docs/outreach-portal-push.md). Browsers'
# subscriptions are bound to the VAPID public key, so every process must share one
# private key: from the environment in production (push is off without it), from a
# local secret in the embedded install. PUSH_SERVICE_HOSTS are the push services'
# host names (suffixes) careloop will post to; PUSH_VENDOR, when set, names a BAA that
# must be in force (the default needs none: payloads are end-to-end encrypted and
# generic, docs/decisions.md).
VAPID_PRIVATE_KEY = env("VAPID_PRIVATE_KEY") or (
    "" if PRODUCTION else vapid_private_from_seed(local_secret(VAR_DIR, "vapid_seed"))
)
try:
    VAPID_PUBLIC_KEY = vapid_public_key(VAPID_PRIVATE_KEY) if VAPID_PRIVATE_KEY else ""
except ValueError:
    raise ConfigError(
        "CARELOOP_VAPID_PRIVATE_KEY must be a P-256 private key: 32 bytes, base64url."
    ) from None
VAPID_SUBJECT = env("VAPID_SUBJECT", f"mailto:{SMTP_FROM}") or f"mailto:{SMTP_FROM}"
PUSH_SERVICE_HOSTS = env_list(
    "PUSH_SERVICE_HOSTS",
    [
        "fcm.googleapis.com",
        "push.services.mozilla.com",
        "push.apple.com",
        "notify.windows.com",
    ],
)
# Plain http to a loopback push service: local development and the tests only.
PUSH_ALLOW_LOOPBACK = DEBUG
PUSH_VENDOR = env("PUSH_VENDOR", "") or ""
# How long a push service keeps an undelivered notification for an offline browser.
PUSH_TTL_SECONDS = env_int("PUSH_TTL_SECONDS", 2 * 24 * 60 * 60)
PUSH_TIMEOUT_SECONDS = env_int("PUSH_TIMEOUT", 15, minimum=1)
# The dispatcher: messages claimed per sweep run, how long a claim holds, and the
# retries of a temporary failure (exponential backoff with jitter) before the dead letters.
OUTREACH_DISPATCH_BATCH = env_int("OUTREACH_DISPATCH_BATCH", 100, minimum=1)
OUTREACH_LEASE_SECONDS = env_int("OUTREACH_LEASE_SECONDS", 120, minimum=5)
OUTREACH_MAX_ATTEMPTS = env_int("OUTREACH_MAX_ATTEMPTS", 8, minimum=1)
OUTREACH_RETRY_BASE_SECONDS = float(env_int("OUTREACH_RETRY_BASE", 30, minimum=1))
OUTREACH_RETRY_MAX_SECONDS = 6 * 60 * 60.0
# The template linter refuses an SMS that, filled with long sample values, takes more
# segments than this (careloop.outreach.templates).
OUTREACH_SMS_MAX_SEGMENTS = env_int("OUTREACH_SMS_MAX_SEGMENTS", 3, minimum=1)
# A closed care gap is attributed to the latest outreach message sent to the patient
# within this many days before the closing event (careloop.caregaps.gaps).
CAREGAP_ATTRIBUTION_DAYS = env_int("CAREGAP_ATTRIBUTION_DAYS", 90, minimum=1)

# --- journeys (careloop.outreach.journeys, careloop.outreach.triggers) -------------------
# careloop's public origin, for links in messages (reschedule, confirm, the portal).
PUBLIC_BASE_URL = (env("PUBLIC_BASE_URL", "https://localhost:8443") or "").rstrip("/")
# Events this many days old or newer enrol patients; older ones (an import of last
# year's appointments, a journey switched on today) do not.
JOURNEY_TRIGGER_LOOKBACK_DAYS = env_int("JOURNEY_TRIGGER_LOOKBACK_DAYS", 2, minimum=1)
# A signed link in a message (reschedule, confirm) works for this many days.
OUTREACH_LINK_DAYS = env_int("OUTREACH_LINK_DAYS", 14, minimum=1)
# Test allowlist: when on, only these addresses (phone numbers, e-mail addresses) are
# sent to; every other message is kept, withheld as "not on the test allowlist". On by
# default in development (the embedded demo), so trying careloop never texts a stranger.
OUTREACH_TEST_MODE = env_bool("OUTREACH_TEST_MODE", ENV == "development")
OUTREACH_TEST_ALLOWLIST = env_list("OUTREACH_TEST_ALLOWLIST", [])

# --- waitlist, telehealth, automatic no-shows (careloop.scheduling) ---------------------
# A freed slot is offered to this many waitlist entries at once (a wave); the first to
# claim it books it. An offer stands this many minutes before the next wave is asked.
WAITLIST_OFFER_WAVE = env_int("WAITLIST_OFFER_WAVE", 3, minimum=1)
WAITLIST_OFFER_MINUTES = env_int("WAITLIST_OFFER_MINUTES", 120, minimum=5)
# Appointments still booked or confirmed this many minutes after their start, with no
# check-in, are marked no-show by a sweep; empty (the default) leaves them to staff.
SCHEDULING_AUTO_NO_SHOW_MINUTES: int | None = (
    env_int("SCHEDULING_AUTO_NO_SHOW_MINUTES", 0, minimum=1)
    if env("SCHEDULING_AUTO_NO_SHOW_MINUTES")
    else None
)
# Telehealth video rooms: a self-hosted Jitsi Meet. With an app id and secret (Jitsi's
# token authentication) each join link carries a signed HS256 JWT.
TELEHEALTH_JITSI_BASE_URL = (
    env("TELEHEALTH_JITSI_BASE_URL", "https://meet.localhost") or "https://meet.localhost"
).rstrip("/")
TELEHEALTH_JITSI_APP_ID = env("TELEHEALTH_JITSI_APP_ID", "") or ""
TELEHEALTH_JITSI_APP_SECRET = env("TELEHEALTH_JITSI_APP_SECRET", "") or ""
# The join button opens this many minutes before the start and stays this many after
# the end.
TELEHEALTH_EARLY_MINUTES = 15
TELEHEALTH_GRACE_MINUTES = env_int("TELEHEALTH_GRACE_MINUTES", 15)

# --- lifecycle stages (careloop.patients.lifecycle) ------------------------------------
LIFECYCLE_DORMANT_MONTHS = env_int("DORMANT_MONTHS", 24, minimum=1)
# Days past the expected visit cadence before a patient counts as a retention risk.
LIFECYCLE_GRACE_DAYS = env_int("RETENTION_GRACE_DAYS", 30)
# How long after the first visit a patient stays in the first-visit stage.
LIFECYCLE_FIRST_VISIT_DAYS = 90
# Patients re-evaluated per sweep run (every minute): about 2.9M a day at the default.
LIFECYCLE_SWEEP_BATCH = env_int("LIFECYCLE_SWEEP_BATCH", 2000, minimum=1)

# --- EHR Bulk Data sync (careloop.ehr.sync) ----------------------------------------------
# The nightly incremental sync of every active FHIR source starts at this local time
# (practice time zone).
EHR_SYNC_AT = env_time_of_day("EHR_SYNC_AT", "02:00")
# careloop's SMART signing keys (encrypted under the master key) and the folder that
# holds an export's files while a sync imports them.
EHR_KEY_DIR = VAR_DIR / "keys" / "ehr"
EHR_WORK_DIR = VAR_DIR / "ehr"
EHR_SYNC_SCOPE = env("EHR_SYNC_SCOPE", "system/*.read") or "system/*.read"
# An export not finished by then is cancelled at the EHR and the sync fails.
EHR_EXPORT_TIMEOUT_SECONDS = env_int("EHR_EXPORT_TIMEOUT_SECONDS", 6 * 60 * 60, minimum=10)
EHR_DOWNLOAD_THREADS = env_int("EHR_DOWNLOAD_THREADS", 4, minimum=1)
# Waits between polls and retries when the EHR sends no Retry-After (doubling each time).
EHR_POLL_SECONDS = 5.0
EHR_RETRY_SECONDS = 1.0
