"""Settings from the REGISTRY_* environment, checked once at start."""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import limits
import limits.storage
import phonenumbers
from flask import Flask, current_app
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from registry import ratelimit  # registers sqlite:// (and memory://) with limits

CONFIG_KEY = "REGISTRY"  # where the app keeps its Settings (current_settings reads them)

POLICIES = ("opt-in", "opt-out")
SMS_NUMBER = re.compile(r"\+?[0-9]{3,20}")  # the shape of a sender's address
SMS_BACKENDS = ("console", "http", "kannel")
VALIDITY = re.compile(r"([1-9][0-9]{0,2})d")  # REGISTRY_RESULT_VALIDITY: "21d", "31d", ...


class ConfigError(ValueError):
    """A REGISTRY_* setting has a value the registry cannot run with."""


def parse_window(text: str) -> tuple[time, time]:
    """Parse ``HH:MM-HH:MM`` into a (start, end) pair of local times."""
    try:
        start_s, end_s = text.strip().split("-")
        start, end = time.fromisoformat(start_s.strip()), time.fromisoformat(end_s.strip())
    except ValueError as exc:
        raise ConfigError(f"expected HH:MM-HH:MM, got {text!r}") from exc
    if any(t.second or t.microsecond or t.tzinfo for t in (start, end)):
        # The window is applied by the minute in the number's own zone.
        raise ConfigError(f"expected HH:MM-HH:MM (no seconds, no offset), got {text!r}")
    if start == end:
        raise ConfigError(f"an empty window {text!r} would forbid every call")
    return start, end


def _psycopg(url: str) -> str:
    """Accept the libpq-style URL everyone copies; psycopg 3 is the driver.

    A multi-host URL (``postgresql://h1:5432,h2:5432/db?target_session_attrs=read-write``,
    as pg_auto_failover prints it) becomes SQLAlchemy's form, one ``host``
    query parameter per host; psycopg then tries them in order and keeps the
    first that ``target_session_attrs`` accepts.
    """
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.startswith("postgresql"):
        return url
    netloc, _, tail = rest.partition("/")
    credentials, at, hosts = netloc.rpartition("@")
    if "," not in hosts:
        return url
    database, _, query = tail.partition("?")
    params = "&".join(f"host={h}" for h in hosts.split(",") if h)
    query = f"{params}&{query}" if query else params
    return f"{scheme}://{credentials}{at}/{database}?{query}"


def _seconds_or_off(text: str) -> float:
    """Seconds, or 0 for no timeout at all."""
    return 0.0 if float(text) == 0 else _seconds(text)


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value <= 3600:
        raise ConfigError(f"expected seconds between 0 and 3600, got {text!r}")
    return value


def _database_url(text: str) -> str:
    """Return the URL with the psycopg 3 driver for PostgreSQL; only SQLite and PostgreSQL run."""
    text = _psycopg(text)
    try:
        backend = make_url(text).get_backend_name()
    except ArgumentError as exc:
        raise ConfigError("not a database URL (value not shown: it may hold a password)") from exc
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(f"expected a sqlite:// or postgresql:// URL, got {backend!r}")
    return text


def _rate_limit(text: str) -> str:
    """Check a Flask-Limiter limit such as ``6000 per minute``; a bad one would silently not limit."""
    try:
        limits.parse_many(text)
    except ValueError as exc:
        raise ConfigError(f"expected a limit such as '6000 per minute', got {text!r}") from exc
    return text


def _storage_url(text: str) -> str:
    scheme = text.split("://", 1)[0] if "://" in text else ""
    if scheme not in limits.storage.SCHEMES or text == f"{ratelimit.SCHEME}:///":
        raise ConfigError(
            f"expected sqlite:///path (one machine), redis://host:port (several) or "
            f"memory:// (one process), got {text!r}"
        )
    return text


def _http_url(text: str) -> str:
    """Accept only http(s) URLs: urllib would also open file:// and ftp:// ones."""
    if not text.lower().startswith(("http://", "https://")):
        raise ConfigError(f"expected an http:// or https:// URL, got {text.split(':', 1)[0]!r}")
    return text


def _sms_number(text: str) -> str:
    """Return the registry's number as sender addresses are kept: digits, an optional +."""
    cleaned = text.replace(" ", "").replace("-", "")
    if not SMS_NUMBER.fullmatch(cleaned):
        raise ConfigError(f"expected an SMS port or number such as 10690000, got {text!r}")
    return cleaned


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"expected true or false, got {text!r}")


@dataclass(frozen=True)
class Settings:
    """Every setting of SPEC §6, validated."""

    database_url: str
    secret_key: str
    # Default: a file in the instance folder that every worker counts in (registry/ratelimit.py).
    ratelimit_storage_url: str
    policy: str = "opt-in"
    default_region: str = "CN"
    timezone: str = "Asia/Shanghai"
    calling_hours: tuple[time, time] = (time(8, 0), time(21, 0))
    require_confirmation: bool = True
    # Every check must name its calling address (``from``), e.g. where a regulator demands it.
    require_from: bool = False
    disconnect_data_since: date | None = None
    sms_backend: str = "console"
    sms_http_url: str | None = None
    sms_http_token: str | None = None
    # The registry's own SMS number (port): its texts come from it, and replies to
    # it, brought by the gateway (role ``gateway``), are the holder's own voice.
    sms_number: str = "10690000"
    # Kannel's smsbox (REGISTRY_SMS_BACKEND=kannel): its sendsms URL and sendsms-user, and
    # the registry's own base URL as Kannel reaches it, for the delivery reports' dlr-url.
    sms_kannel_url: str | None = None
    sms_kannel_username: str | None = None
    sms_kannel_password: str | None = None
    sms_dlr_base_url: str | None = None
    # The SMS clouds' callbacks (registry/sms/callbacks.py): Twilio signs with the account's
    # auth token; Aliyun, Tencent Cloud and Huawei Cloud do not sign, so their callback URL
    # carries a secret token of the operator's choosing.
    sms_twilio_auth_token: str | None = None
    sms_aliyun_token: str | None = None
    sms_tencent_token: str | None = None
    sms_huawei_token: str | None = None
    ratelimit_check: str = "6000 per minute"
    ratelimit_write: str = "1200 per minute"
    # Every GET of /api/v1, per key (per client address without one): feed, consents, receipts...
    ratelimit_read: str = "600 per minute"
    ratelimit_login_number: str = "5 per 10 minutes"
    ratelimit_login_client: str = "30 per hour"
    # Sign-in codes tried from one client address (each code also locks after 5 wrong tries).
    ratelimit_code_client: str = "20 per 10 minutes"
    ratelimit_consent_number: str = "10 per hour"
    # Checks on numbers the sender has no record with, per organization (anti-enumeration).
    ratelimit_cold_check: str = "1000000 per day"
    # "Who is calling me" (registry/lookup): per phone app's key, per client address
    # (API and site alike), and per signed-in holder on the site.
    ratelimit_lookup_key: str = "6000 per minute"
    ratelimit_lookup_client: str = "60 per minute"
    ratelimit_lookup_holder: str = "30 per hour"
    # The console's sign-ins per client address, on top of each account's lock-out
    # (registry/admin/auth.py): slows password spraying across many accounts.
    ratelimit_staff_login: str = "30 per minute"
    max_batch: int = 10_000
    # How long an answer may be relied on after it was given: zero (the default,
    # "contact") means check again before each contact; 21 or 31 days are what
    # DNC-style registries grant a washed list (REGISTRY_RESULT_VALIDITY).
    result_validity: timedelta = timedelta(0)
    # File scrubs (registry/scrubs): numbers per file, bytes per upload, jobs
    # queued or running per organization at once.
    scrub_max_rows: int = 1_000_000
    scrub_max_bytes: int = 128 * 1024 * 1024
    scrub_max_jobs: int = 2
    cookie_secure: bool = False
    replica_urls: tuple[str, ...] = ()
    replica_max_lag: float = 2.0
    # Every connection is bounded (registry/database/engines.py, Timeouts): opening one, each
    # statement on the primary (0: none), and each read on a standby.
    database_connect_timeout: float = 5.0
    database_statement_timeout: float = 60.0
    replica_timeout: float = 1.0
    # A number whose facts changed (fact_change) this much before a standby's measured
    # staleness is checked on the primary (docs/scaling.md, "A fresh refusal is never served stale").
    replica_commit_allowance: float = 60.0
    # With the primary unreachable, standbys' freshness is measured against the
    # highest WAL position any of them received, once this many answer (0: off;
    # docs/scaling.md, "Failover": for ANY k of n synchronous standbys, n - k + 1).
    replica_sync_quorum: int = 0
    # Checks answered from a standby while the primary cannot take their log row
    # spool it in a local file, replayed later (registry/checks/spool.py).
    check_spool: bool = False
    check_spool_path: str = ""
    # Months of check log kept whole (0: all); older months are dropped (checks/partitions.py).
    check_log_retention_months: int = 0
    consent_pending_days: int = 7
    # The regulator console (issue 6).
    complaint_answer_days: int = 7
    # Complaint deadlines in working days (issue 16, registry/complaints/deadlines.py).
    complaint_ack_days: int = 1
    complaint_org_days: int = 5
    complaint_final_days: int = 15
    sanction_complaints: int = 5
    sanction_days: int = 10
    sanction_auto_suspend: bool = False
    sanction_suspend_days: int = 30
    # Webhooks may reach loopback/private/link-local addresses (on-premise receivers, tests).
    webhook_allow_private: bool = False
    # Who runs this registry, shown in every page's footer (issue 13).
    operator_name: str = "Anning demo registry (not a real service)"
    operator_contact: str = "registry@example.org"
    privacy_url: str | None = None  # None: the registry's own /privacy page
    # What sits in front of the app (issue 13): who may read /metrics, which proxies to believe.
    metrics_token: str | None = None
    trusted_proxies: int = 0

    @property
    def tz(self) -> ZoneInfo:
        """Return the registry's default time zone."""
        return ZoneInfo(self.timezone)

    def as_flask_config(self) -> dict[str, object]:
        """Return the Flask config keys these settings imply."""
        return {"SECRET_KEY": self.secret_key, CONFIG_KEY: self}


def _instance_secret(instance_path: Path) -> str:
    """Return the secret kept in the instance folder, creating it on first use."""
    path = instance_path / "secret_key"
    if not path.exists():
        instance_path.mkdir(parents=True, exist_ok=True)
        # Written whole to a private temporary file, then linked into place: link()
        # fails if another process got there first, and nobody ever reads a file
        # that exists but is not written yet (an empty secret would sign anything).
        fd, tmp = tempfile.mkstemp(dir=instance_path, prefix=".secret_key.")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    key = path.read_text().strip()
    if len(key) < 16:
        raise ConfigError(
            f"REGISTRY_SECRET_KEY: {path} holds no usable key; delete it to make a new one"
        )
    return key


def instance_path(environ: dict[str, str] | None = None) -> str | None:
    """Return ``REGISTRY_INSTANCE_PATH`` made absolute, or None for Flask's default folder.

    The folder holds the generated secret key, the default SQLite database and
    the demo's API key: ``instance/`` beside a checkout, ``<venv>/var/registry-instance``
    for an installed wheel.
    """
    value = (os.environ if environ is None else environ).get("REGISTRY_INSTANCE_PATH")
    return str(Path(value).expanduser().resolve()) if value else None


def load_settings(instance_path: str | Path, environ: dict[str, str] | None = None) -> Settings:
    """Read and check every REGISTRY_* variable; raise ConfigError naming the bad one."""
    env = dict(os.environ if environ is None else environ)
    instance = Path(instance_path)

    def get(name: str) -> str | None:
        value = env.get(f"REGISTRY_{name}")
        return value if value not in (None, "") else None

    def check(name: str, parse: Callable[[str], Any], raw: str) -> Any:
        try:
            return parse(raw)
        except (ConfigError, ValueError) as exc:
            raise ConfigError(f"REGISTRY_{name}: {exc}") from exc

    kwargs: dict[str, object] = {}
    url = get("DATABASE_URL")
    if url is None:
        instance.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{instance / 'registry.sqlite3'}"
    else:
        url = check("DATABASE_URL", _database_url, url)
    kwargs["database_url"] = url
    kwargs["secret_key"] = get("SECRET_KEY") or _instance_secret(instance)
    if (replicas := get("DATABASE_REPLICA_URLS")) is not None:
        urls = tuple(_psycopg(u.strip()) for u in replicas.split(",") if u.strip())
        if any(not u.startswith("postgresql") for u in urls):
            raise ConfigError(
                "REGISTRY_DATABASE_REPLICA_URLS: only PostgreSQL standbys are supported"
            )
        kwargs["replica_urls"] = urls
    if (lag := get("REPLICA_MAX_LAG")) is not None:
        kwargs["replica_max_lag"] = check("REPLICA_MAX_LAG", _seconds, lag)
    for name, parse in (
        ("DATABASE_CONNECT_TIMEOUT", _seconds),
        ("DATABASE_STATEMENT_TIMEOUT", _seconds_or_off),
        ("REPLICA_TIMEOUT", _seconds),
        ("REPLICA_COMMIT_ALLOWANCE", _seconds),
    ):
        if (raw := get(name)) is not None:
            kwargs[name.lower()] = check(name, parse, raw)

    if (policy := get("POLICY")) is not None:
        if policy not in POLICIES:
            raise ConfigError(f"REGISTRY_POLICY: expected one of {POLICIES}, got {policy!r}")
        kwargs["policy"] = policy
    if (region := get("DEFAULT_REGION")) is not None:
        region = region.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigError(f"REGISTRY_DEFAULT_REGION: unknown region {region!r}")
        kwargs["default_region"] = region
    if (tz := get("TIMEZONE")) is not None:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"REGISTRY_TIMEZONE: unknown time zone {tz!r}") from exc
        kwargs["timezone"] = tz
    if (hours := get("CALLING_HOURS")) is not None:
        kwargs["calling_hours"] = check("CALLING_HOURS", parse_window, hours)
    if (secure := get("COOKIE_SECURE")) is not None:
        kwargs["cookie_secure"] = check("COOKIE_SECURE", _bool, secure)
    if (confirm := get("REQUIRE_CONFIRMATION")) is not None:
        kwargs["require_confirmation"] = check("REQUIRE_CONFIRMATION", _bool, confirm)
    if (need_from := get("REQUIRE_FROM")) is not None:
        kwargs["require_from"] = check("REQUIRE_FROM", _bool, need_from)
    if (since := get("DISCONNECT_DATA_SINCE")) is not None:
        kwargs["disconnect_data_since"] = check("DISCONNECT_DATA_SINCE", date.fromisoformat, since)
    if (backend := get("SMS_BACKEND")) is not None:
        if backend not in SMS_BACKENDS:
            raise ConfigError(f"REGISTRY_SMS_BACKEND: expected one of {SMS_BACKENDS}")
        kwargs["sms_backend"] = backend
    if (gateway := get("SMS_HTTP_URL")) is not None:
        kwargs["sms_http_url"] = check("SMS_HTTP_URL", _http_url, gateway)
    kwargs["sms_http_token"] = get("SMS_HTTP_TOKEN")
    if (number := get("SMS_NUMBER")) is not None:
        kwargs["sms_number"] = check("SMS_NUMBER", _sms_number, number)
    if kwargs.get("sms_backend") == "http" and not kwargs.get("sms_http_url"):
        raise ConfigError("REGISTRY_SMS_HTTP_URL is required with REGISTRY_SMS_BACKEND=http")
    if (kannel := get("SMS_KANNEL_URL")) is not None:
        kwargs["sms_kannel_url"] = check("SMS_KANNEL_URL", _http_url, kannel)
    if (dlr := get("SMS_DLR_BASE_URL")) is not None:
        kwargs["sms_dlr_base_url"] = check("SMS_DLR_BASE_URL", _http_url, dlr).rstrip("/")
    for name in ("KANNEL_USERNAME", "KANNEL_PASSWORD", "TWILIO_AUTH_TOKEN", "ALIYUN_TOKEN",
                 "TENCENT_TOKEN", "HUAWEI_TOKEN"):  # fmt: skip
        kwargs[f"sms_{name.lower()}"] = get(f"SMS_{name}") or None
    if kwargs.get("sms_backend") == "kannel" and not (
        kwargs.get("sms_kannel_url") and kwargs.get("sms_kannel_username")
    ):
        raise ConfigError(
            "REGISTRY_SMS_KANNEL_URL and REGISTRY_SMS_KANNEL_USERNAME are required with "
            "REGISTRY_SMS_BACKEND=kannel"
        )
    if (storage := get("RATELIMIT_STORAGE_URL")) is not None:
        kwargs["ratelimit_storage_url"] = check("RATELIMIT_STORAGE_URL", _storage_url, storage)
    else:
        instance.mkdir(parents=True, exist_ok=True)
        kwargs["ratelimit_storage_url"] = ratelimit.machine_url(instance)
    if (limit := get("RATELIMIT_CHECK")) is not None:
        kwargs["ratelimit_check"] = check("RATELIMIT_CHECK", _rate_limit, limit)
    if (limit := get("RATELIMIT_WRITE")) is not None:
        kwargs["ratelimit_write"] = check("RATELIMIT_WRITE", _rate_limit, limit)
    if (limit := get("RATELIMIT_READ")) is not None:
        kwargs["ratelimit_read"] = check("RATELIMIT_READ", _rate_limit, limit)
    if (limit := get("RATELIMIT_LOGIN_NUMBER")) is not None:
        kwargs["ratelimit_login_number"] = check("RATELIMIT_LOGIN_NUMBER", _rate_limit, limit)
    if (limit := get("RATELIMIT_LOGIN_CLIENT")) is not None:
        kwargs["ratelimit_login_client"] = check("RATELIMIT_LOGIN_CLIENT", _rate_limit, limit)
    if (limit := get("RATELIMIT_CODE_CLIENT")) is not None:
        kwargs["ratelimit_code_client"] = check("RATELIMIT_CODE_CLIENT", _rate_limit, limit)
    if (limit := get("RATELIMIT_CONSENT_NUMBER")) is not None:
        kwargs["ratelimit_consent_number"] = check("RATELIMIT_CONSENT_NUMBER", _rate_limit, limit)
    if (limit := get("RATELIMIT_COLD_CHECK")) is not None:
        kwargs["ratelimit_cold_check"] = check("RATELIMIT_COLD_CHECK", _rate_limit, limit)
    for name in ("LOOKUP_KEY", "LOOKUP_CLIENT", "LOOKUP_HOLDER", "STAFF_LOGIN"):
        if (limit := get(f"RATELIMIT_{name}")) is not None:
            kwargs[f"ratelimit_{name.lower()}"] = check(f"RATELIMIT_{name}", _rate_limit, limit)
    if (months := get("CHECK_LOG_RETENTION_MONTHS")) is not None:
        kwargs["check_log_retention_months"] = _positive_int(
            "CHECK_LOG_RETENTION_MONTHS", months, 1200
        )
    if (quorum := get("REPLICA_SYNC_QUORUM")) is not None and quorum.strip() != "0":
        kwargs["replica_sync_quorum"] = _positive_int("REPLICA_SYNC_QUORUM", quorum, 64)
    if (spool := get("CHECK_SPOOL")) is not None:
        kwargs["check_spool"] = check("CHECK_SPOOL", _bool, spool)
    kwargs["check_spool_path"] = get("CHECK_SPOOL_PATH") or str(instance / "check-spool.sqlite3")
    if (private := get("WEBHOOK_ALLOW_PRIVATE")) is not None:
        kwargs["webhook_allow_private"] = check("WEBHOOK_ALLOW_PRIVATE", _bool, private)
    kwargs.update(_console_settings(get))
    kwargs.update(_operator_settings(get))
    kwargs.update(_edge_settings(get))
    kwargs.update(_scrub_settings(get))
    return Settings(**kwargs)  # type: ignore[arg-type]


def _positive_int(name: str, raw: str, upper: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError as exc:
        raise ConfigError(f"REGISTRY_{name}: expected a whole number, got {raw!r}") from exc
    if not 1 <= value <= upper:
        raise ConfigError(f"REGISTRY_{name}: expected 1 to {upper}, got {value}")
    return value


def _validity(text: str) -> timedelta:
    """Return ``contact`` as zero (check before each contact), ``<N>d`` as N days (1 to 999)."""
    value = text.strip().lower()
    if value == "contact":
        return timedelta(0)
    match = VALIDITY.fullmatch(value)
    if match is None:
        raise ConfigError(f"expected 'contact' or a number of days such as 31d, got {text!r}")
    return timedelta(days=int(match.group(1)))


def _scrub_settings(get: Callable[[str], str | None]) -> dict[str, object]:
    """Read how long answers hold and the file scrubs' caps."""
    out: dict[str, object] = {}
    if (raw := get("RESULT_VALIDITY")) is not None:
        try:
            out["result_validity"] = _validity(raw)
        except ConfigError as exc:
            raise ConfigError(f"REGISTRY_RESULT_VALIDITY: {exc}") from exc
    for name, key, upper in (
        ("SCRUB_MAX_ROWS", "scrub_max_rows", 1_000_000),
        ("SCRUB_MAX_BYTES", "scrub_max_bytes", 1024 * 1024 * 1024),
        ("SCRUB_MAX_JOBS", "scrub_max_jobs", 100),
    ):
        if (raw := get(name)) is not None:
            out[key] = _positive_int(name, raw, upper)
    return out


def _console_settings(get: Callable[[str], str | None]) -> dict[str, object]:
    """Read the regulator console's settings: complaint ageing and the sanction trigger."""
    out: dict[str, object] = {}
    for name, key, upper in (
        ("COMPLAINT_ANSWER_DAYS", "complaint_answer_days", 365),
        ("COMPLAINT_ACK_DAYS", "complaint_ack_days", 60),
        ("COMPLAINT_ORG_DAYS", "complaint_org_days", 60),
        ("COMPLAINT_FINAL_DAYS", "complaint_final_days", 120),
        ("SANCTION_COMPLAINTS", "sanction_complaints", 100_000),
        ("SANCTION_DAYS", "sanction_days", 365),
        ("SANCTION_SUSPEND_DAYS", "sanction_suspend_days", 3650),
    ):
        if (raw := get(name)) is not None:
            out[key] = _positive_int(name, raw, upper)
    if (raw := get("SANCTION_AUTO_SUSPEND")) is not None:
        try:
            out["sanction_auto_suspend"] = _bool(raw)
        except ConfigError as exc:
            raise ConfigError(f"REGISTRY_SANCTION_AUTO_SUSPEND: {exc}") from exc
    return out


def _operator_settings(get: Callable[[str], str | None]) -> dict[str, object]:
    """Read who runs the registry: a name, a contact and the privacy notice's address."""
    out: dict[str, object] = {}
    for name, key in (("OPERATOR_NAME", "operator_name"), ("OPERATOR_CONTACT", "operator_contact")):
        if (raw := get(name)) is not None:
            if len(raw.strip()) > 200:
                raise ConfigError(f"REGISTRY_{name}: at most 200 characters")
            out[key] = raw.strip()
    if (raw := get("PRIVACY_URL")) is not None:
        url = raw.strip()
        if not (url.startswith(("https://", "http://", "/"))):
            raise ConfigError(
                f"REGISTRY_PRIVACY_URL: expected an http(s):// address or a path, got {raw!r}"
            )
        out["privacy_url"] = url
    return out


def _edge_settings(get: Callable[[str], str | None]) -> dict[str, object]:
    """Read who may read /metrics besides this machine, and how many proxies to believe."""
    out: dict[str, object] = {}
    if (token := get("METRICS_TOKEN")) is not None:
        if len(token) < 16:
            raise ConfigError("REGISTRY_METRICS_TOKEN: use at least 16 characters")
        out["metrics_token"] = token
    if (raw := get("TRUSTED_PROXIES")) is not None:
        try:
            count = int(raw.strip())
        except ValueError as exc:
            raise ConfigError(f"REGISTRY_TRUSTED_PROXIES: expected 0 to 5, got {raw!r}") from exc
        if not 0 <= count <= 5:
            raise ConfigError(f"REGISTRY_TRUSTED_PROXIES: expected 0 to 5, got {count}")
        out["trusted_proxies"] = count
    return out


def current_settings(app: Flask | None = None) -> Settings:
    """Return the settings of ``app``, by default the running app's: the one accessor.

    ``create_app`` keeps them in the app's config (``as_flask_config``); views,
    the CLI and the extensions read them here, never from the config directly.
    """
    running = app or current_app._get_current_object()  # type: ignore[attr-defined]
    settings: Settings = running.config[CONFIG_KEY]
    return settings
