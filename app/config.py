"""Configuration read from the environment."""

import math
import os


def database_url_from(value: str) -> str:
    """Return a SQLAlchemy URL for psycopg 3, accepting the postgres:// form hosts hand out."""
    for prefix in ("postgres://", "postgresql://"):
        if value.startswith(prefix):
            return "postgresql+psycopg://" + value[len(prefix) :]
    return value


# Web threads per process that live sockets never take, by default.
THREADS_KEPT_FOR_REQUESTS = 16
# The fewest days of per-hour counts kept: the 30d window sums them, and retention goes by
# whole days.
HOURLY_DAYS_MIN = 31
# The longest span in days any setting may give: a century, well within datetime's range.
DAYS_MAX = 36_500


def _int(name: str, default: int, low: int | None = None, high: int | None = None) -> int:
    """Read an integer setting, naming the variable when it is not a number or out of range."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if (low is not None and value < low) or (high is not None and value > high):
        wanted = f"at least {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{name} must be {wanted}, got {value}")
    return value


SWITCH_ON = ("1", "true", "yes", "on")
SWITCH_OFF = ("0", "false", "no", "off")


def _switch(name: str, default: bool) -> bool:
    """Read an on/off setting; a value that is neither (a typo) is refused, not taken as off."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value not in SWITCH_ON + SWITCH_OFF:
        raise ValueError(f"{name} must be on or off (1, true, yes, on / 0, false, no, off),"
                         f" got {raw!r}")
    return value in SWITCH_ON


def _float(name: str, default: float) -> float:
    """Read a duration setting, naming the variable when it is not a positive number."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    # Every such setting is a time: 0 would divide by zero (the live tick) or mean
    # nothing sensible (a timeout, a retry delay).
    if not 0 < value < math.inf:
        raise ValueError(f"{name} must be a positive number, got {raw!r}")
    return value


class Config:
    """Settings for one Logdash process; every LOGDASH_* variable is listed in .env.example."""

    def __init__(self) -> None:
        """Read the environment now, so tests can change it before creating an app."""
        self.SECRET_KEY = os.environ.get("SECRET_KEY", "")
        self.SQLALCHEMY_DATABASE_URI = database_url_from(os.environ.get("DATABASE_URL", ""))
        self.REDIS_URL = os.environ.get("REDIS_URL", "")
        self.SQLALCHEMY_ENGINE_OPTIONS = {
            # Connections left from before a database restart are found and replaced.
            "pool_pre_ping": True,
            # gunicorn runs many threads per worker; give them connections, and give up
            # quickly (503) rather than queueing requests for half a minute.
            "pool_size": _int("LOGDASH_DB_POOL_SIZE", 10, 1),
            "max_overflow": _int("LOGDASH_DB_MAX_OVERFLOW", 20, 0),
            "pool_timeout": _int("LOGDASH_DB_POOL_TIMEOUT", 10, 1),
            "connect_args": {"connect_timeout": _int("LOGDASH_DB_CONNECT_TIMEOUT", 5, 1)},
        }
        self.MAX_CONTENT_LENGTH = _int("LOGDASH_MAX_BODY_BYTES", 10 * 1024 * 1024, 1024)
        self.LOGDASH_MAX_BODY_BYTES = self.MAX_CONTENT_LENGTH
        self.LOGDASH_MAX_LINES_PER_REQUEST = _int("LOGDASH_MAX_LINES_PER_REQUEST", 50_000, 1)
        self.LOGDASH_MAX_MESSAGE_BYTES = _int("LOGDASH_MAX_MESSAGE_BYTES", 32 * 1024, low=64)
        self.LOGDASH_MAX_ATTRIBUTES = _int("LOGDASH_MAX_ATTRIBUTES", 100, 0)
        self.LOGDASH_MAX_ATTRIBUTE_DEPTH = _int("LOGDASH_MAX_ATTRIBUTE_DEPTH", 8, 1)
        self.LOGDASH_MAX_ATTRIBUTE_CHARS = _int("LOGDASH_MAX_ATTRIBUTE_CHARS", 64 * 1024, 64)
        self.LOGDASH_MAX_SERVICES = _int("LOGDASH_MAX_SERVICES", 1000, 0)
        self.LOGDASH_ACCEPT_PAST_DAYS = _int("LOGDASH_ACCEPT_PAST_DAYS", 30, 1, DAYS_MAX)
        self.LOGDASH_ACCEPT_FUTURE_HOURS = _int("LOGDASH_ACCEPT_FUTURE_HOURS", 24, 0, DAYS_MAX * 24)
        self.LOGDASH_PARTITION_DAYS_AHEAD = _int("LOGDASH_PARTITION_DAYS_AHEAD", 3, 0, 366)
        # Retention per tier, in days; raw lines go by whole daily partitions. Hours are kept
        # longer than the longest window (30d, read from hours), and ingest accepts lines a
        # day less far back than they are kept.
        self.LOGDASH_RETAIN_RAW_DAYS = _int("LOGDASH_RETAIN_RAW_DAYS", 14, 1, DAYS_MAX)
        self.LOGDASH_RETAIN_MINUTE_DAYS = _int("LOGDASH_RETAIN_MINUTE_DAYS", 2, 1, DAYS_MAX)
        # Per-minute service x level counts, read by alert checks and the 7-day backtest.
        self.LOGDASH_RETAIN_MINUTE_COUNTS_DAYS = _int("LOGDASH_RETAIN_MINUTE_COUNTS_DAYS", 8, 1,
                                                      DAYS_MAX)
        self.LOGDASH_RETAIN_HOURLY_DAYS = _int("LOGDASH_RETAIN_HOURLY_DAYS", 90, HOURLY_DAYS_MIN,
                                               DAYS_MAX)
        self.LOGDASH_RETAIN_DAILY_DAYS = _int("LOGDASH_RETAIN_DAILY_DAYS", 730, 1, DAYS_MAX)
        # How long an ingest Idempotency-Key is remembered.
        self.LOGDASH_IDEMPOTENCY_HOURS = _int("LOGDASH_IDEMPOTENCY_HOURS", 24, 1)
        # Health over the last hour (errors = error + critical).
        self.LOGDASH_HEALTH_ERROR_ERRORS = _int("LOGDASH_HEALTH_ERROR_ERRORS", 50)
        self.LOGDASH_HEALTH_WARNING_ERRORS = _int("LOGDASH_HEALTH_WARNING_ERRORS", 10)
        self.LOGDASH_HEALTH_WARNING_WARNINGS = _int("LOGDASH_HEALTH_WARNING_WARNINGS", 50)
        # Health looks at the last hour, by the minute.
        # Health reads the last hour by the minute: the silent minutes, and the one before
        # them (app/stats/health.py), must fall in it.
        self.LOGDASH_HEALTH_SILENT_MINUTES = _int("LOGDASH_HEALTH_SILENT_MINUTES", 15, 1, 59)
        # Links in alerts point here.
        self.LOGDASH_BASE_URL = os.environ.get("LOGDASH_BASE_URL") or "http://127.0.0.1:8000"
        # Alert delivery: retries with exponential backoff until the horizon.
        self.LOGDASH_ALERT_RETRY_BASE_SECONDS = _float("LOGDASH_ALERT_RETRY_BASE_SECONDS", 30)
        self.LOGDASH_ALERT_RETRY_MAX_SECONDS = _float("LOGDASH_ALERT_RETRY_MAX_SECONDS", 3600)
        self.LOGDASH_ALERT_RETRY_HORIZON_HOURS = _float("LOGDASH_ALERT_RETRY_HORIZON_HOURS", 24)
        self.LOGDASH_WEBHOOK_TIMEOUT_SECONDS = _float("LOGDASH_WEBHOOK_TIMEOUT_SECONDS", 10)
        self.LOGDASH_SMTP_TIMEOUT_SECONDS = _float("LOGDASH_SMTP_TIMEOUT_SECONDS", 10)
        # Non-public webhook destinations that are allowed anyway: CIDRs and host names.
        self.LOGDASH_WEBHOOK_ALLOW = os.environ.get("LOGDASH_WEBHOOK_ALLOW", "")
        # The daily job moves violations resolved this long ago, and deliveries as old, to
        # the archive tables (or deletes them with LOGDASH_ALERT_ARCHIVE=0).
        self.LOGDASH_ALERT_ARCHIVE_DAYS = _int("LOGDASH_ALERT_ARCHIVE_DAYS", 90, 1)
        self.LOGDASH_ALERT_ARCHIVE = _switch("LOGDASH_ALERT_ARCHIVE", True)
        # Runs recorded in logs.job_executions are kept this long.
        self.LOGDASH_JOB_HISTORY_DAYS = _int("LOGDASH_JOB_HISTORY_DAYS", 30, 1)
        # Flask-Mail reads these names.
        self.MAIL_SERVER = os.environ.get("MAIL_SERVER", "localhost")
        self.MAIL_PORT = _int("MAIL_PORT", 25)
        self.MAIL_USE_TLS = _switch("MAIL_USE_TLS", False)
        self.MAIL_USE_SSL = _switch("MAIL_USE_SSL", False)
        self.MAIL_USERNAME = os.environ.get("MAIL_USERNAME") or None
        self.MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD") or None
        self.MAIL_DEFAULT_SENDER = os.environ.get("MAIL_DEFAULT_SENDER", "logdash@localhost")
        # Access: ingest without a token only where every sender is trusted (the embedded
        # run on localhost); request and sign-in limits.
        self.LOGDASH_OPEN_INGEST = _switch("LOGDASH_OPEN_INGEST", False)
        self.LOGDASH_TOKEN_RATE_PER_MINUTE = _int("LOGDASH_TOKEN_RATE_PER_MINUTE", 1200, 1)
        self.LOGDASH_LOGIN_ATTEMPTS = _int("LOGDASH_LOGIN_ATTEMPTS", 10, 1)
        # Reverse proxies in front of the web process whose X-Forwarded-For and
        # X-Forwarded-Proto are believed (0: none; anyone could write those headers).
        # /metrics without a token, for a scraper on a private network (app.auth.access).
        self.LOGDASH_METRICS_PUBLIC = _switch("LOGDASH_METRICS_PUBLIC", False)
        self.LOGDASH_TRUSTED_PROXIES = _int("LOGDASH_TRUSTED_PROXIES", 0, 0, 10)
        # Session cookies: not readable by scripts, not sent cross-site, HTTPS only unless
        # LOGDASH_SECURE_COOKIES=0 (browsers treat localhost as secure anyway).
        self.SESSION_COOKIE_SECURE = _switch("LOGDASH_SECURE_COOKIES", True)
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.PERMANENT_SESSION_LIFETIME = _int("LOGDASH_SESSION_HOURS", 12, 1) * 3600
        self.LOGDASH_SEARCH_MAX_LIMIT = _int("LOGDASH_SEARCH_MAX_LIMIT", 1000, 1)
        # A text search (q) stops after the slice of time that used up this budget, and
        # answers with what it found and how far back it read (app/search).
        self.LOGDASH_SEARCH_BUDGET_MS = _int("LOGDASH_SEARCH_BUDGET_MS", 2000, 0, 600_000)
        self.LOGDASH_QUEUE_PREFIX = os.environ.get("LOGDASH_QUEUE_PREFIX", "logdash")
        self.LOGDASH_RETRY_AFTER_SECONDS = _int("LOGDASH_RETRY_AFTER_SECONDS", 5, 1)
        # Live pages: how often dashboard sockets get fresh numbers.
        self.LOGDASH_LIVE_TICK_SECONDS = _float("LOGDASH_LIVE_TICK_SECONDS", 1.0)
        # Pings keep idle sockets open through proxies that drop silent connections.
        # Pages never send on their sockets; a message that is not small closes it.
        self.SOCK_SERVER_OPTIONS = {"ping_interval": 25, "max_message_size": 1024}
        # Each open socket holds one of a web process's threads (LOGDASH_WEB_THREADS, as the
        # Procfile passes it to gunicorn); past this many, more are refused with 503, so that
        # some threads are always left for pages, the API and ingest.
        threads = _int("LOGDASH_WEB_THREADS", 64, 1)
        self.LOGDASH_LIVE_MAX_SOCKETS = _int("LOGDASH_LIVE_MAX_SOCKETS",
                                             max(threads - THREADS_KEPT_FOR_REQUESTS, 1), 0)
        # A client that stops reading is let go after a send has waited this long.
        self.LOGDASH_LIVE_SEND_TIMEOUT_SECONDS = _int("LOGDASH_LIVE_SEND_TIMEOUT_SECONDS", 10,
                                                      1, 3600)
