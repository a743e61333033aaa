"""ChargeFlow settings: every value comes from the environment, with a safe local default.

The embedded defaults (no variables set) run the whole shop on one machine: SQLite, Django's
database cache, moto's SQS on 127.0.0.1:4566, localstripe on 127.0.0.1:8420, the partner
simulator on 127.0.0.1:8430 and the SMTP sink on 127.0.0.1:1025. `.env.example` lists them all.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CHARGEFLOW_VAR_DIR", BASE_DIR / "var"))


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


# --- Core -----------------------------------------------------------------------------------
# Off unless set: `make run`, `make test` (chargeflow/devenv.py), docker compose and the bench set
# DEBUG=true for the local stand-ins. With DEBUG off every secret must be set to a real value
# (see the checks below and docs/security.md).
DEBUG = env_bool("DEBUG", False)
_INSECURE_KEY = "django-insecure-local-only-never-use-in-production"
SECRET_KEY = env("SECRET_KEY", _INSECURE_KEY if DEBUG else "")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_URL = env("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

if not DEBUG:
    if not SECRET_KEY or SECRET_KEY == _INSECURE_KEY or len(SECRET_KEY) < 32:
        raise ImproperlyConfigured("DEBUG is off: set SECRET_KEY to a random value (32+ chars).")
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("DEBUG is off: set ALLOWED_HOSTS (comma-separated).")

# The values published in .env.example and the local defaults: never accepted with DEBUG off.
EXAMPLE_SECRETS = {
    "STRIPE_SECRET_KEY": {"sk_test_chargeflow_local"},
    "STRIPE_PUBLISHABLE_KEY": {"pk_test_chargeflow_local"},
    "STRIPE_WEBHOOK_SECRET": {"whsec_chargeflow_local"},
    "SHIPPING_PARTNER_API_KEY": {"dev-partner-key"},
    "ANYMAIL_WEBHOOK_SECRET": {"local:webhook-secret"},
    "AWS_SECRET_ACCESS_KEY": {"local"},
    "EMAIL_HOST_PASSWORD": {"local"},
}
REQUIRED_SECRETS = (
    "STRIPE_SECRET_KEY",
    "STRIPE_PUBLISHABLE_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "SHIPPING_PARTNER_API_KEY",
    "ANYMAIL_WEBHOOK_SECRET",
)


def dev_default(value: str) -> str:
    """A local stand-in's value: the default with DEBUG on, nothing (must be set) with it off."""
    return value if DEBUG else ""


if not DEBUG:
    _missing = [name for name in REQUIRED_SECRETS if not env(name).strip()]
    _examples = [name for name, values in EXAMPLE_SECRETS.items() if env(name).strip() in values]
    if _missing or _examples:
        raise ImproperlyConfigured(
            "DEBUG is off: "
            + "; ".join(
                part
                for part in (
                    f"set {', '.join(_missing)}" if _missing else "",
                    f"replace the published example value of {', '.join(_examples)}"
                    if _examples
                    else "",
                )
                if part
            )
            + " (docs/security.md)."
        )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "csp",
    "drf_spectacular_sidecar",  # Swagger UI served from here: no CDN
    "anymail",
    "outbox",
    "orders",
    "invoicing",
    "billing",
    "shipping",
    "notifications",
    "desk",  # after the apps whose admin it extends
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "chargeflow.middleware.RejectNulBytesMiddleware",
    "chargeflow.middleware.CSPMiddleware",
    "chargeflow.logcontext.RequestContextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "chargeflow.lockout.LoginLockoutMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chargeflow.urls"
WSGI_APPLICATION = "chargeflow.wsgi.application"
ASGI_APPLICATION = "chargeflow.asgi.application"

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
                "chargeflow.context_processors.shop",
            ],
        },
    },
]

# --- Database: PostgreSQL when DATABASE_URL is set, SQLite otherwise -------------------------
DATABASE_URL = env("DATABASE_URL")
# The statements run for every order (the API checkout, the relay's claim and mark) are prepared
# per connection on PostgreSQL (chargeflow/db.py), and so is any other statement a connection
# runs 5 times (psycopg's prepare_threshold); off behind a pooler that cannot keep them.
DATABASE_PREPARED = env_bool("DATABASE_PREPARED_STATEMENTS", True)
if DATABASE_URL:
    # Persistent connections (60 s), checked before reuse at the start of each request or task:
    # after a database restart a stale connection is replaced instead of answering 500.
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=env_int("CONN_MAX_AGE", 60),
            conn_health_checks=env_bool("CONN_HEALTH_CHECKS", True),
        )
    }
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend, with a health check that polls the socket before it sends
        # `SELECT 1` (chargeflow/postgresql/base.py).
        DATABASES["default"]["ENGINE"] = "chargeflow.postgresql"
        if env_bool("DATABASE_SERVER_SIDE_BINDING", True):
            # Values bound by PostgreSQL instead of quoted into the SQL text in Python: ~8% less
            # of our CPU per ORM statement, and with prepare_threshold PostgreSQL parses and
            # plans a repeated statement once per connection (issue 11, docs/performance.md).
            DATABASES["default"]["OPTIONS"] = {
                **DATABASES["default"].get("OPTIONS", {}),
                "server_side_binding": True,
                "prepare_threshold": 5 if DATABASE_PREPARED else None,
            }
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": Path(env("SQLITE_PATH", str(VAR_DIR / "chargeflow.sqlite3"))),
            # One writer at a time, waiting instead of failing: the web, worker and relay processes
            # share this file. IMMEDIATE takes the write lock at BEGIN, so no upgrade deadlocks.
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            "TEST": {"NAME": VAR_DIR / "test-chargeflow.sqlite3"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and sessions: Redis when REDIS_URL is set, the database cache otherwise ------------
REDIS_URL = env("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", "chargeflow"),
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "chargeflow_cache",
        }
    }
SESSION_ENGINE = "django.contrib.sessions.backends.cache"

# --- Auth, i18n, static, media ----------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The model backend with a login lockout (chargeflow/lockout.py): LOGIN_LOCKOUT_FAILURES failed
# logins for one username from one IP address lock it there for LOGIN_LOCKOUT_SECONDS (429).
AUTHENTICATION_BACKENDS = ["chargeflow.lockout.LockoutModelBackend"]
LOGIN_LOCKOUT_FAILURES = env_int("LOGIN_LOCKOUT_FAILURES", 5)  # 0 turns the lockout off
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 900)
# Failed logins from one IP address, whatever the username, before the address is locked.
LOGIN_LOCKOUT_IP_FAILURES = env_int("LOGIN_LOCKOUT_IP_FAILURES", 50)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "orders:product-list"
LOGOUT_REDIRECT_URL = "orders:product-list"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media/"  # never served publicly: documents go through authorised views
# Invoice and credit-note PDFs: local files under MEDIA_ROOT by default; Amazon S3 (django-storages)
# when AWS_STORAGE_BUCKET_NAME is set. Documents are private: served only through the order's
# authorised views, never by public URL.
AWS_STORAGE_BUCKET_NAME = env("AWS_STORAGE_BUCKET_NAME")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    if not AWS_STORAGE_BUCKET_NAME
    else {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "region_name": env("AWS_REGION", "eu-west-1"),
            "endpoint_url": env("AWS_S3_ENDPOINT_URL") or None,  # an emulator, e.g. moto
            "default_acl": "private",
            "querystring_auth": True,
            "file_overwrite": False,
        },
    },
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Transport security (docs/security.md) ----------------------------------------------------
# On by default with DEBUG off, each one configurable. The proxy header is trusted only when set:
# SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https, and only behind a proxy that always sets
# (and overwrites) it; otherwise any client could claim to be on https.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = env_list("SECURE_REDIRECT_EXEMPT", r"^health/$,^ready/$")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
_proxy_header = env_list("SECURE_PROXY_SSL_HEADER")
if _proxy_header:
    if len(_proxy_header) != 2:
        raise ImproperlyConfigured("SECURE_PROXY_SSL_HEADER: expected HEADER,value")
    SECURE_PROXY_SSL_HEADER = (_proxy_header[0], _proxy_header[1])
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Request bodies: forms, uploads and the API's JSON (chargeflow/parsers.py) alike. Over it: 413
# (API) or 400. API_JSON_MAX_DEPTH: deeper JSON documents are refused with 400.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 2_621_440)  # 2.5 MB
DATA_UPLOAD_MAX_NUMBER_FIELDS = env_int("DATA_UPLOAD_MAX_NUMBER_FIELDS", 1000)
API_JSON_MAX_DEPTH = env_int("API_JSON_MAX_DEPTH", 20)

# --- REST API --------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "EXCEPTION_HANDLER": "chargeflow.api.exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
    # JSON only, with size and depth limits (chargeflow/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["chargeflow.parsers.SafeJSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Rates per client (the user, else the IP address) and per IP address; "N/s|min|hour|day".
    # Over a rate: 429 with Retry-After (chargeflow/throttling.py, docs/security.md).
    "DEFAULT_THROTTLE_RATES": {
        "checkout": env("THROTTLE_CHECKOUT_RATE", "10/min"),
        "checkout_ip": env("THROTTLE_CHECKOUT_IP_RATE", "30/min"),
        "order_lookup": env("THROTTLE_ORDER_LOOKUP_RATE", "120/min"),
        "quote": env("THROTTLE_QUOTE_RATE", "60/min"),
        "find_order": env("THROTTLE_FIND_ORDER_RATE", "5/min"),
    },
    # Trusted reverse proxies in front of the app (X-Forwarded-For); unset: REMOTE_ADDR.
    "NUM_PROXIES": env_int("NUM_PROXIES", 0) if env("NUM_PROXIES") else None,
}

# The OpenAPI document at /api/schema/ (Swagger UI at /api/docs/): docs/api.md.
SPECTACULAR_SETTINGS = {
    "TITLE": "ChargeFlow API",
    "DESCRIPTION": (
        "The shop's public API (stable: extended, never broken). Amounts are decimal strings."
        " Rate-limited requests get 429 with Retry-After."
    ),
    "VERSION": "1.0.0",
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_GENERATE_CHOICE_DESCRIPTION": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Shop ------------------------------------------------------------------------------------
SHOP_NAME = env("SHOP_NAME", "ChargeFlow Demo Shop")
SHOP_CURRENCY = env("SHOP_CURRENCY", "EUR")
SHOP_BRAND_COLOR = env("SHOP_BRAND_COLOR", "#0b6e4f")  # emails: header and buttons
# True (the EU default for a consumer shop): catalog prices and shipping fees include VAT, the
# price shown is the price paid whatever the country; False (B2B): they are net and VAT is added.
# Either way an order's totals are net subtotal + net shipping + tax == total (docs/pricing.md).
PRICES_INCLUDE_TAX = env_bool("PRICES_INCLUDE_TAX", True)
# The country the cart quotes for until the shopper chooses one (ISO 3166-1 alpha-2).
SHOP_COUNTRY = env("SHOP_COUNTRY", "DE").upper()
SHIPPING_FEE = Decimal(env("SHIPPING_FEE", "4.90"))
FREE_SHIPPING_THRESHOLD = Decimal(env("FREE_SHIPPING_THRESHOLD", "100.00"))
DEFAULT_TAX_RATE = Decimal(env("DEFAULT_TAX_RATE", "0.20"))
SELLER = {
    "name": env("SELLER_NAME", "ChargeFlow GmbH"),
    "address": env("SELLER_ADDRESS", "Hauptstrasse 1, 10115 Berlin, Germany"),
    "vat_id": env("SELLER_VAT_ID", "DE123456789"),
    "email": env("SELLER_EMAIL", "billing@chargeflow.example"),
}
STUCK_ORDER_MINUTES = env_int("STUCK_ORDER_MINUTES", 15)
# Guest links to an order (emails, the 3-D Secure return) expire after this many days; the
# customer can still log in, or use the API's X-Order-Token. docs/security.md.
ORDER_LINK_MAX_AGE_DAYS = env_int("ORDER_LINK_MAX_AGE_DAYS", 30)

# --- Stripe ----------------------------------------------------------------------------------
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", dev_default("sk_test_chargeflow_local"))
STRIPE_PUBLISHABLE_KEY = env("STRIPE_PUBLISHABLE_KEY", dev_default("pk_test_chargeflow_local"))
# Empty (the default with DEBUG off): the real Stripe API.
STRIPE_API_BASE = env("STRIPE_API_BASE", dev_default("http://127.0.0.1:8420"))
STRIPE_JS_URL = env(
    "STRIPE_JS_URL", f"{STRIPE_API_BASE or 'https://js.stripe.com'}/js.stripe.com/v3/"
)
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", dev_default("whsec_chargeflow_local"))
STRIPE_TIMEOUT_SECONDS = env_int("STRIPE_TIMEOUT_SECONDS", 20)
# An unfinished 3-D Secure authentication is cancelled (payment.failed) after this long.
# How long a checkout holds its stock while the card is authorized (the checkout page's Stripe.js
# confirmation, 3-D Secure included); then the stock goes back on the shelf.
CHECKOUT_HOLD_MINUTES = env_int("CHECKOUT_HOLD_MINUTES", 10)
# How long after a hold expired the sweep waits for Stripe's webhook before it voids the
# authorization of a checkout whose order was never placed.
CHECKOUT_RELEASE_GRACE_SECONDS = env_int("CHECKOUT_RELEASE_GRACE_SECONDS", 120)
# The API's checkout on PostgreSQL (orders.selectors, docs/performance.md): how long one web process
# reuses the tax rates and shipping zones it read (the products: 12 times as long; the reservation
# re-checks each product, so a change only redoes that checkout). A tax rate or shipping zone
# edited in the admin reaches the API's new orders within this many seconds (0: no cache).
CHECKOUT_CATALOG_CACHE_SECONDS = env_int("CHECKOUT_CATALOG_CACHE_SECONDS", 5)
# An API order whose card needs 3-D Secure holds its stock this long (the same short hold).
BILLING_ACTION_TIMEOUT_MINUTES = env_int("BILLING_ACTION_TIMEOUT_MINUTES", CHECKOUT_HOLD_MINUTES)
# How long a Stripe call in flight belongs to the worker that started it; after that (the worker
# died), a redelivery resumes it with the same idempotency key. Longer than a call with retries.
BILLING_STEP_LEASE_SECONDS = env_int("BILLING_STEP_LEASE_SECONDS", 90)


# --- Content-Security-Policy (django-csp; docs/security.md) -------------------------------------
# Scripts only from this site, Stripe.js's origin and inline scripts carrying the request's nonce;
# Stripe's frames and API. chargeflow.middleware.CSPMiddleware adds the Stripe origins from
# STRIPE_JS_URL and STRIPE_API_BASE (js.stripe.com, api.stripe.com and hooks.stripe.com for the
# real Stripe). Inline styles are allowed (style attributes in the pages and the admin, Stripe
# Elements). CSP_REPORT_ONLY=true tries a change out without enforcing it.
_CSP = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "frame-src": [SELF],
        "worker-src": [SELF, "blob:"],
        "frame-ancestors": [SELF],
        "form-action": [SELF],
        "base-uri": [SELF],
        "object-src": [NONE],
    }
}
if env_bool("CSP_REPORT_ONLY", False):
    CONTENT_SECURITY_POLICY_REPORT_ONLY = _CSP
else:
    CONTENT_SECURITY_POLICY = _CSP

# --- Shipping partner ------------------------------------------------------------------------
SHIPPING_PARTNER_URL = env("SHIPPING_PARTNER_URL", "http://127.0.0.1:8430").rstrip("/")
SHIPPING_PARTNER_API_KEY = env("SHIPPING_PARTNER_API_KEY", dev_default("dev-partner-key"))
SHIPPING_PARTNER_CONNECT_TIMEOUT = float(env("SHIPPING_PARTNER_CONNECT_TIMEOUT", "3"))
SHIPPING_PARTNER_READ_TIMEOUT = float(env("SHIPPING_PARTNER_READ_TIMEOUT", "10"))
# In-call retries (urllib3): backoff factor * 2**n s, capped, with jitter. docs/shipping.md.
SHIPPING_PARTNER_RETRIES = env_int("SHIPPING_PARTNER_RETRIES", 4)
SHIPPING_PARTNER_BACKOFF_FACTOR = float(env("SHIPPING_PARTNER_BACKOFF_FACTOR", "0.5"))
SHIPPING_PARTNER_BACKOFF_MAX = float(env("SHIPPING_PARTNER_BACKOFF_MAX", "8"))
# Deliveries of payment.succeeded (each one a full in-call retry round) before a transient
# partner failure fails the shipment (and the order is refunded): at most the runs Celery makes,
# CELERY_TASK_MAX_RETRIES + 1 (check shipping.W001). 9: a partner outage of ~5-10 minutes.
SHIPPING_CREATE_MAX_ATTEMPTS = env_int("SHIPPING_CREATE_MAX_ATTEMPTS", 9)
SHIPPING_POLL_SECONDS = float(env("SHIPPING_POLL_SECONDS", "30"))

# --- Email -----------------------------------------------------------------------------------
# Locally: SMTP to the sink on 127.0.0.1:1025. Production: an anymail backend, for example
# EMAIL_BACKEND=anymail.backends.amazon_ses.EmailBackend with AWS credentials in the environment.
EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = env_int("EMAIL_PORT", 1025)
EMAIL_HOST_USER = env("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "ChargeFlow Shop <shop@chargeflow.example>")
MAILBOX_DIR = Path(env("MAILBOX_DIR", str(VAR_DIR / "mailbox")))
# A failed send is retried by a beat task, backoff base * 2**n s, capped (docs/notifications.md).
EMAIL_SEND_MAX_ATTEMPTS = env_int("EMAIL_SEND_MAX_ATTEMPTS", 8)
EMAIL_RETRY_BASE_SECONDS = env_int("EMAIL_RETRY_BASE_SECONDS", 30)
EMAIL_RETRY_MAX_SECONDS = env_int("EMAIL_RETRY_MAX_SECONDS", 3600)
# The domain of our deterministic Message-IDs (<kind.order-id@domain>); the sender's by default.
EMAIL_MESSAGE_ID_DOMAIN = env(
    "EMAIL_MESSAGE_ID_DOMAIN", DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].strip(" >") or "localhost"
)
ANYMAIL = {
    "AMAZON_SES_CLIENT_PARAMS": {
        **({"endpoint_url": env("AWS_SES_ENDPOINT_URL")} if env("AWS_SES_ENDPOINT_URL") else {}),
        "region_name": env("AWS_REGION", "eu-west-1"),
    },
    "WEBHOOK_SECRET": env("ANYMAIL_WEBHOOK_SECRET", dev_default("local:webhook-secret")),
}

# --- Broker and Celery -----------------------------------------------------------------------
AWS_REGION = env("AWS_REGION", "eu-west-1")
# Locally the emulators' dummy keys; with DEBUG off unset means the usual AWS chain (a role).
AWS_ACCESS_KEY_ID = env("AWS_ACCESS_KEY_ID", dev_default("local")) or None
AWS_SECRET_ACCESS_KEY = env("AWS_SECRET_ACCESS_KEY", dev_default("local")) or None
# The SQS endpoint comes from the broker URL's host (moto locally); `sqs://` alone is real SQS
# with credentials from the usual AWS chain (environment, instance role).
CELERY_BROKER_URL = env("CELERY_BROKER_URL", "sqs://local:local@127.0.0.1:4566")
SQS_IS_SECURE = env_bool("SQS_IS_SECURE", CELERY_BROKER_URL == "sqs://")
# A redis:// broker (the bench, a local run): kombu's Redis transport with one client per channel
# for its per-message commands instead of a new one for each (chargeflow/redis_transport.py).
if CELERY_BROKER_URL.startswith("redis://"):
    CELERY_BROKER_TRANSPORT = "chargeflow.redis_transport:Transport"
SQS_QUEUE_PREFIX = env("SQS_QUEUE_PREFIX", "chargeflow-")
SQS_MAX_RECEIVE_COUNT = env_int("SQS_MAX_RECEIVE_COUNT", 5)
# Set to e.g. https://sqs.eu-west-1.amazonaws.com/123456789012 to use predefined queues (no
# ListQueues/CreateQueue permissions needed at run time; `manage.py sqs_create_queues` made them).
SQS_QUEUE_URL_BASE = env("SQS_QUEUE_URL_BASE").rstrip("/")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_ACKS_ON_FAILURE_OR_TIMEOUT = False  # a poison message goes to the DLQ, not the bin
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 120)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 10
# An email attempt in flight for longer than this is taken as cut off (its worker died) and is
# resumed, with the same Message-ID, by the beat task: past the task time limit, the worker that
# started it is done or dead (docs/notifications.md).
EMAIL_SEND_LEASE_SECONDS = env_int("EMAIL_SEND_LEASE_SECONDS", CELERY_TASK_TIME_LIMIT + 30)
# "Find my order" sends an order's link at most once in this many minutes (whoever asks).
ORDER_LINK_EMAIL_COOLDOWN_MINUTES = env_int("ORDER_LINK_EMAIL_COOLDOWN_MINUTES", 5)
# A cancellation or refund email waits this long for its credit note, then goes without it.
NOTICE_WAIT_MINUTES = env_int("NOTICE_WAIT_MINUTES", 15)
CELERY_TASK_MAX_RETRIES = env_int("CELERY_TASK_MAX_RETRIES", 8)
CELERY_RETRY_BACKOFF_MAX = env_int("CELERY_RETRY_BACKOFF_MAX", 300)
# Visibility: short leases, renewed. A queue hides a received message for SQS_VISIBILITY_TIMEOUT;
# the worker extends that every SQS_VISIBILITY_HEARTBEAT seconds while it holds the message
# (running, or waiting for a retry countdown): chargeflow/sqs_heartbeat.py. A worker that dies
# stops extending, so its messages come back within SQS_VISIBILITY_TIMEOUT (480 s before).
# A message held longer than SQS_VISIBILITY_MAX_HOLD (the longest task plus the longest retry
# countdown) is no longer extended: a hung task cannot keep it forever.
SQS_VISIBILITY_TIMEOUT = env_int("SQS_VISIBILITY_TIMEOUT", 60)
SQS_VISIBILITY_HEARTBEAT = float(
    env("SQS_VISIBILITY_HEARTBEAT", str(max(1, SQS_VISIBILITY_TIMEOUT // 4)))
)
SQS_VISIBILITY_MAX_HOLD = CELERY_TASK_TIME_LIMIT + CELERY_RETRY_BACKOFF_MAX + 60
if SQS_VISIBILITY_HEARTBEAT * 2 > SQS_VISIBILITY_TIMEOUT:
    raise ImproperlyConfigured(
        "SQS_VISIBILITY_HEARTBEAT must be at most half of SQS_VISIBILITY_TIMEOUT, or held "
        "messages are delivered twice."
    )
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_SEND_TASK_EVENTS = False
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A broker pause never ends a worker: it reconnects (with Celery's backoff) for as long as it takes.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None

# One queue per consuming app (DESIGN.md §3) plus one for housekeeping. Names are SQS names.
CONSUMER_APPS = ("orders", "invoicing", "billing", "shipping", "notifications")
QUEUE_NAMES = {app: f"{SQS_QUEUE_PREFIX}{app}" for app in (*CONSUMER_APPS, "default")}
CELERY_TASK_DEFAULT_QUEUE = QUEUE_NAMES["default"]
# A worker started without -Q consumes all of these; `-Q chargeflow-billing` scales one app.
CELERY_TASK_QUEUES = tuple(Queue(name) for name in QUEUE_NAMES.values())
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "region": AWS_REGION,
    "is_secure": SQS_IS_SECURE,
    "visibility_timeout": SQS_VISIBILITY_TIMEOUT,
    # How many times, and since when, SQS handed a message out: Event.attempt and
    # Event.first_delivered_at count deliveries to a worker that died (outbox/tasks.py).
    "fetch_message_attributes": ["ApproximateReceiveCount", "ApproximateFirstReceiveTimestamp"],
    # Real SQS: long polling (10 s, fewer paid requests); run one worker per queue there, since a
    # worker polls its queues in turn and each empty long poll delays the others. The local
    # emulator: short polling every 0.1 s (measured: 4-5 s instead of ~26 s from checkout to
    # shipped with one worker on six queues; moto idles at ~3 % of a core).
    "wait_time_seconds": env_int("SQS_WAIT_TIME_SECONDS", 10 if SQS_IS_SECURE else 0),
    "polling_interval": float(env("SQS_POLLING_INTERVAL", "1" if SQS_IS_SECURE else "0.1")),
}
if SQS_QUEUE_URL_BASE:
    CELERY_BROKER_TRANSPORT_OPTIONS["predefined_queues"] = {
        name: {"url": f"{SQS_QUEUE_URL_BASE}/{name}"} for name in QUEUE_NAMES.values()
    }
CELERY_BEAT_SCHEDULE = {
    "outbox-cleanup": {"task": "outbox.cleanup", "schedule": 3600.0},
    "orders-flag-stuck": {"task": "orders.flag_stuck_orders", "schedule": 60.0},
    "shipping-poll-tracking": {
        "task": "shipping.poll_open_shipments",
        "schedule": SHIPPING_POLL_SECONDS,
    },
    "notifications-send-due": {"task": "notifications.send_due_emails", "schedule": 30.0},
    "billing-expire-actions": {"task": "billing.expire_actions", "schedule": 60.0},
    "orders-sweep-checkouts": {"task": "orders.sweep_checkouts", "schedule": 30.0},
}

# --- Outbox ----------------------------------------------------------------------------------
OUTBOX_RELAY_BATCH_SIZE = env_int("OUTBOX_RELAY_BATCH_SIZE", 100)
OUTBOX_RELAY_POLL_SECONDS = float(env("OUTBOX_RELAY_POLL_SECONDS", "0.5"))
# After a batch that found events, the relay waits this long before the next claim, so that under
# load a batch carries several events (cheaper per event); an event committed while the relay is
# idle is claimed at once. 0: claim again immediately.
OUTBOX_RELAY_GATHER_SECONDS = float(env("OUTBOX_RELAY_GATHER_SECONDS", "0.01"))
OUTBOX_RETENTION_DAYS = env_int("OUTBOX_RETENTION_DAYS", 7)

# --- Logging ---------------------------------------------------------------------------------
LOG_LEVEL = env("LOG_LEVEL", "INFO")
# json (default; one object per line, for the log pipeline) or plain (readable, local). Either way
# every line carries order_id, event_id, correlation_id and subscriber when they are known
# (chargeflow.logcontext; docs/operations.md "Logs").
LOG_FORMAT = env("LOG_FORMAT", "plain" if DEBUG else "json")
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured("LOG_FORMAT must be json or plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "chargeflow.logcontext.ContextFilter"}},
    "formatters": {
        "json": {"()": "chargeflow.logcontext.JsonFormatter"},
        "plain": {"()": "chargeflow.logcontext.KeyValueFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "botocore": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        "stripe": {"level": "WARNING"},
        "mail.log": {"level": "WARNING"},
    },
}
# Celery workers log through the same handler (and formatter) as everything else.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Prometheus (/metrics, docs/operations.md "Metrics"). With several processes (gunicorn workers,
# Celery workers, the relay) set PROMETHEUS_MULTIPROC_DIR to a directory they share, emptied at
# deploy: each process writes its counters there and /metrics adds them up.
METRICS_DLQ_CACHE_SECONDS = env_int("METRICS_DLQ_CACHE_SECONDS", 15)
# The Celery worker and the relay have no web server: with METRICS_PORT set they serve their own
# counters (handler durations and failures, relay publishes) on it for Prometheus to scrape.
METRICS_PORT = env_int("METRICS_PORT", 0)
# Who may read /ready/'s details and /metrics besides staff: these client addresses.
OPS_TRUSTED_IPS = env_list("OPS_TRUSTED_IPS", "127.0.0.1,::1")
# Or a scraper sending `Authorization: Bearer <METRICS_TOKEN>` (Prometheus `authorization:`).
METRICS_TOKEN = env("METRICS_TOKEN")
