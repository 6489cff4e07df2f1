"""chatsite settings: one module, driven by the environment (and ``.env`` when present).

Every setting read here is listed in ``.env.example``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
TESTING = env.bool("CHATSITE_TESTING", default="pytest" in sys.modules)

if DEBUG or TESTING:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="insecure-dev-key-" + "x" * 40)
else:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY")  # required in production: fails loudly when unset

# JWTs are signed with their own key, so rotating one secret does not invalidate the other.
JWT_SIGNING_KEY = env.str(
    "JWT_SIGNING_KEY",
    default=hashlib.sha256(("chatsite-jwt:" + SECRET_KEY).encode()).hexdigest(),
)

# Fernet keys for secrets stored in the database (providers' API keys), chatsite/crypto.py: the
# first encrypts, all decrypt. Derived from the secret key when unset (`make run` writes one).
ENCRYPTION_KEY = [key for key in env.list("ENCRYPTION_KEY", default=[]) if key.strip()] or [
    base64.urlsafe_b64encode(
        hashlib.sha256(("chatsite-encryption:" + SECRET_KEY).encode()).digest()
    ).decode()
]

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# A CSRF failure under /api/ answers the API's JSON error, not Django's HTML page.
CSRF_FAILURE_VIEW = "chatsite.api.exceptions.csrf_failure"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "csp",
    "audit",
    "accounts",
    "governance",
    "conversations",
    "attachments",
    "review",
]

MIDDLEWARE = [
    "chatsite.middleware.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # A signed-in user whose account waits for approval sees the waiting page (docs/signup.md).
    "accounts.middleware.PendingApprovalMiddleware",
    # Names the staff member behind a change to a user's groups (governance/audit.py).
    "governance.audit.AuditActorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "chatsite.middleware.RejectNulMiddleware",
]

ROOT_URLCONF = env.str("DJANGO_ROOT_URLCONF", default="chatsite.urls")
WSGI_APPLICATION = "chatsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock at BEGIN, so concurrent writers queue on the busy timeout
    # instead of failing with "database is locked" when a read transaction upgrades.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Idle connections a process keeps for its next requests (chatsite/sqlite_pool);
    # gunicorn.conf.py turns it on for its workers. 0: Django's backend, a connection a request.
    SQLITE_POOL_SIZE = env.int("SQLITE_POOL_SIZE", default=0)
    if SQLITE_POOL_SIZE > 0:
        DATABASES["default"]["ENGINE"] = "chatsite.sqlite_pool"
        DATABASES["default"]["POOL_SIZE"] = SQLITE_POOL_SIZE
    # A file, not memory, so that the threads of live-server tests share one database.
    # One file per test process, so that two suites running at once do not share it.
    DATABASES["default"]["TEST"] = {
        "NAME": str(Path(tempfile.gettempdir()) / f"chatsite-test-{os.getpid()}.sqlite3")
    }
else:
    # Short-lived connections: a gevent worker serves many requests at once, and no stream holds
    # a connection while it streams (docs/architecture.md, "The reply flow").
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=0)
    # psycopg's pool (gunicorn.conf.py turns it on): each worker process keeps at most this many
    # PostgreSQL connections and lends one to a request while Django holds it, so the server never
    # sees more than workers x size connections and no request pays for a new backend process.
    DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=0)
    if DB_POOL_MAX_SIZE and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django requires it with a pool
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": DB_POOL_MAX_SIZE,
            "timeout": env.float("DB_POOL_TIMEOUT", default=30.0),
        }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "conversations:chat"
LOGOUT_REDIRECT_URL = "accounts:login"

# --- Cache (shared by all worker processes: it backs the rate limits) --------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "chatsite_cache",
            # The default of 300 entries would cull rate-limit counters under load.
            "OPTIONS": {"MAX_ENTRIES": 100_000, "CULL_FREQUENCY": 4},
        }
    }
    # django-ratelimit wants an atomic increment, which the database cache lacks: its counts are
    # approximate under simultaneous bursts. Acceptable for this embedded default only; set
    # REDIS_URL for exact counts.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]

RATELIMIT_USE_CACHE = "default"
RATELIMIT_VIEW = "chatsite.api.exceptions.ratelimited_view"
CHAT_RATE_LIMIT = env.str("CHAT_RATE_LIMIT", default="10/m")
LOGIN_RATE_LIMIT = env.str("LOGIN_RATE_LIMIT", default="10/m")
REGISTER_RATE_LIMIT = env.str("REGISTER_RATE_LIMIT", default="5/m")
RATELIMIT_ENABLE = env.bool("RATELIMIT_ENABLE", default=True)
# Behind a reverse proxy, name the header that proxy sets (e.g. HTTP_X_REAL_IP). Left empty, the
# socket address is used and X-Forwarded-For is ignored, so a forged header cannot reset limits.
CLIENT_IP_HEADER = env.str("CLIENT_IP_HEADER", default="")

# --- Internationalisation ---------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files -----------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# Attachments (docs/attachments.md): local disk under ATTACHMENTS_ROOT by default, never served
# directly; an S3-compatible store by naming its backend (django-storages) and its options.
ATTACHMENTS_ROOT = env.str(
    "ATTACHMENTS_ROOT",
    default=tempfile.mkdtemp(prefix="chatsite-attachments-")
    if TESTING
    else str(BASE_DIR / "var" / "attachments"),
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "attachments": {
        "BACKEND": env.str(
            "ATTACHMENTS_STORAGE_BACKEND", default="django.core.files.storage.FileSystemStorage"
        ),
        "OPTIONS": env.json("ATTACHMENTS_STORAGE_OPTIONS", default={})
        or {"location": ATTACHMENTS_ROOT},
    },
    "staticfiles": {
        "BACKEND": (
            "chatsite.storage.StaticStorage"
            if env.bool("STATIC_MANIFEST", default=not (DEBUG or TESTING))
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
# Serve from the source folders (no collectstatic) in development and tests.
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=DEBUG or TESTING)
WHITENOISE_AUTOREFRESH = WHITENOISE_USE_FINDERS

# --- REST API ---------------------------------------------------------------------------------
REST_FRAMEWORK: dict[str, Any] = {
    # JWT first: with session first, an anonymous API call would get 403 instead of 401.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # simplejwt's, without a user query per request (chatsite/api/authentication.py).
        "chatsite.api.authentication.LazyUserJWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # DRF's JSON parser, with a 400 for too-deeply nested JSON (chatsite/api/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["chatsite.api.parsers.JSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "chatsite.api.negotiation.JSONFallbackNegotiation",
    "EXCEPTION_HANDLER": "chatsite.api.exceptions.exception_handler",
    # Documents every error status with the one error shape (chatsite/api/schema.py).
    "DEFAULT_SCHEMA_CLASS": "chatsite.api.schema.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "chatsite.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append(
        "rest_framework.renderers.BrowsableAPIRenderer"
    )

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=15),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=7),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "ALGORITHM": "HS256",
    "AUTH_HEADER_TYPES": ("Bearer",),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "chatsite API",
    "DESCRIPTION": "Chat with iFlytek Spark and other models; conversations are persisted.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "conversations.api.schema.postprocess",
    ],
}

# --- CORS: only the configured origins, only under /api/ ---------------------------------------
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/api/.*$"

# --- Security headers -------------------------------------------------------------------------
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
HTTPS = env.bool("DJANGO_HTTPS", default=False)
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=HTTPS)
# Load balancers and Prometheus probe the backend over plain HTTP: a redirect would fail them.
# Neither carries user data (/metrics has its own token or loopback check).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
if env.bool("DJANGO_BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- Models and providers ---------------------------------------------------------------------
SPARK_API_PASSWORD = env.str("SPARK_API_PASSWORD", default="")
SPARK_BASE_URL = env.str("SPARK_BASE_URL", default="https://spark-api-open.xf-yun.com/v1")
# Spark X models (spark-x, x1) are served from /v2 (docs/providers.md, "Spark"); empty: derived
# from SPARK_BASE_URL when the catalog is built (its /v1 replaced by /v2).
SPARK_X_BASE_URL = env.str("SPARK_X_BASE_URL", default="")


# Sign-up (docs/signup.md): the first sign-up mode (open | approval | invite | closed) and e-mail
# domain allowlist (empty: any); staff change both in admin afterwards.
SIGNUP_MODE = env.str("SIGNUP_MODE", default="open")
SIGNUP_EMAIL_DOMAINS = env.list("SIGNUP_EMAIL_DOMAINS", default=[])


# Quotas (docs/governance.md): the site default policy's first values (unset: unlimited); staff
# edit it in admin afterwards. Periods are calendar days, weeks and months in QUOTA_TIME_ZONE.
def _optional_int(name: str) -> int | None:
    value = env.str(name, default="").strip()
    return int(value) if value else None


QUOTA_DAILY_MESSAGES = _optional_int("QUOTA_DAILY_MESSAGES")
QUOTA_DAILY_TOKENS = _optional_int("QUOTA_DAILY_TOKENS")
QUOTA_MONTHLY_COST_CNY = env.str("QUOTA_MONTHLY_COST_CNY", default="").strip() or None
QUOTA_TIME_ZONE = env.str("QUOTA_TIME_ZONE", default="Asia/Shanghai")
# How often a worker re-reads policies and prices another worker's admin changed.
POLICY_REFRESH_SECONDS = env.float("POLICY_REFRESH_SECONDS", default=1.0)
# Attachments (docs/attachments.md): the largest file, each user's storage, files per message,
# and the extraction child's time and memory.
ATTACHMENT_MAX_BYTES = env.int("ATTACHMENT_MAX_BYTES", default=20 * 2**20)
ATTACHMENT_USER_QUOTA_BYTES = env.int("ATTACHMENT_USER_QUOTA_BYTES", default=200 * 2**20)
ATTACHMENTS_PER_MESSAGE = env.int("ATTACHMENTS_PER_MESSAGE", default=5)
ATTACHMENT_MAX_PAGES = env.int("ATTACHMENT_MAX_PAGES", default=500)
ATTACHMENT_EXTRACT_TIMEOUT_SECONDS = env.float("ATTACHMENT_EXTRACT_TIMEOUT_SECONDS", default=30)
ATTACHMENT_EXTRACT_MEMORY_MB = env.int("ATTACHMENT_EXTRACT_MEMORY_MB", default=768)
# Days an uploaded file never sent is kept before `manage.py purge_deleted` removes it.
ATTACHMENT_UNSENT_DAYS = env.int("ATTACHMENT_UNSENT_DAYS", default=7)

# Review (docs/review.md): days a conversation its owner deleted is kept for review before
# `manage.py purge_deleted` removes it; minutes a reviewer's claim on a queue item lasts; seconds
# before a worker sees another worker's change to the flag keywords or the sample rate.
DELETED_RETENTION_DAYS = env.int("DELETED_RETENTION_DAYS", default=30)
REVIEW_CLAIM_MINUTES = env.int("REVIEW_CLAIM_MINUTES", default=15)
REVIEW_REFRESH_SECONDS = env.float("REVIEW_REFRESH_SECONDS", default=5.0)
# How often a worker looks for provider and model changes made in admin by another worker.
CATALOG_REFRESH_SECONDS = env.float("CATALOG_REFRESH_SECONDS", default=1.0)
SPARK_MODELS = env.list(
    "SPARK_MODELS", default=["lite", "generalv3", "pro-128k", "generalv3.5", "max-32k", "4.0Ultra"]
)
DEFAULT_MODEL = env.str("DEFAULT_MODEL", default="lite")
# The cheap model that titles a conversation after its first streamed reply (docs/architecture.md,
# "Titles"); empty: titles stay the first message's words. Off under tests unless a test sets it,
# so that other tests' upstream request counts stay theirs.
TITLE_MODEL = env.str("TITLE_MODEL", default="" if TESTING else "lite")
# How long a finished first reply waits for its title (asked beside the reply) before `done`.
TITLE_WAIT_SECONDS = env.float("TITLE_WAIT_SECONDS", default=3.0)


def _model_env_name(model: str) -> str:
    return "SPARK_API_PASSWORD_" + re.sub(r"[^A-Z0-9]", "_", model.upper())


# Spark issues one APIPassword per model version: SPARK_API_PASSWORD_<MODEL> overrides the shared
# one for that model (e.g. SPARK_API_PASSWORD_4_0ULTRA, SPARK_API_PASSWORD_PRO_128K).
SPARK_API_PASSWORDS = {model: os.environ.get(_model_env_name(model), "") for model in SPARK_MODELS}
LLM_CONNECT_TIMEOUT = env.float("LLM_CONNECT_TIMEOUT", default=10.0)
LLM_READ_TIMEOUT = env.float("LLM_READ_TIMEOUT", default=60.0)
# Upstream connections kept for reuse per worker process: one per open stream, so as many as a
# worker holds streams (gunicorn's worker_connections); fewer made urllib3 discard connections.
LLM_POOL_SIZE = env.int(
    "LLM_POOL_SIZE", default=env.int("GUNICORN_WORKER_CONNECTIONS", default=4000)
)
MAX_MESSAGE_CHARS = env.int("MAX_MESSAGE_CHARS", default=8000)
MAX_SYSTEM_PROMPT_CHARS = env.int("MAX_SYSTEM_PROMPT_CHARS", default=8000)
# Export, import and share (docs/export-and-share.md). The TrueType font (or .ttc collection)
# PDF exports embed, subset: it must cover Chinese (Debian's fonts-wqy-microhei, which
# scripts/system-deps.sh installs). A .ttc's second face, when it has one, sets code blocks.
PDF_FONT_PATH = env.str("PDF_FONT_PATH", default="/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
# Imports (POST /api/conversations/import/): the largest file accepted, the most conversations
# (members of a zip), the most bytes a zip's members may hold once uncompressed, and the most
# messages one conversation may hold.
IMPORT_MAX_UPLOAD_BYTES = env.int("IMPORT_MAX_UPLOAD_BYTES", default=20 * 1024 * 1024)
IMPORT_MAX_CONVERSATIONS = env.int("IMPORT_MAX_CONVERSATIONS", default=1000)
IMPORT_MAX_UNCOMPRESSED_BYTES = env.int("IMPORT_MAX_UNCOMPRESSED_BYTES", default=100 * 1024 * 1024)
IMPORT_MAX_MESSAGES = env.int("IMPORT_MAX_MESSAGES", default=10000)
# Shared links readable without signing in ({"public": true}); off: every link asks for a login.
SHARE_PUBLIC_LINKS = env.bool("SHARE_PUBLIC_LINKS", default=False)
# Tokens kept free in the context window for the reply.
LLM_REPLY_RESERVE_TOKENS = env.int("LLM_REPLY_RESERVE_TOKENS", default=1024)
STREAM_KEEPALIVE_SECONDS = env.float("STREAM_KEEPALIVE_SECONDS", default=15.0)
# A finished reply is saved by the request that streams it; if that request does not come back
# for it within this many seconds (stuck writing to a client that stopped reading), the thread
# reading the model saves it instead.
STREAM_FINISH_GRACE_SECONDS = env.float("STREAM_FINISH_GRACE_SECONDS", default=10.0)
# A message still "streaming" after this long belongs to a dead worker.
STALE_STREAM_SECONDS = env.int("STALE_STREAM_SECONDS", default=600)

# --- Observability ----------------------------------------------------------------------------
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "urllib3": {"level": "WARNING"},
    },
}
