"""Configuration classes of the study server and their ``EMOSTUDY_`` environment overrides.

Every upper-case attribute of a ``Config`` class can be overridden by an environment variable of the same
name with the ``EMOSTUDY_`` prefix (``EMOSTUDY_DATABASE_URL``, ``EMOSTUDY_SECRET_KEY``,
``EMOSTUDY_ASSIGNMENT_TIMEOUT_S``...); values are parsed to the type of the class default (bool: 1/0,
true/false, yes/no, on/off). Secrets come only from the environment (or a test's dict) and are never
logged: ``describe_config`` masks them.

Which class: ``create_app(config)`` takes a class, a name (``development``, ``testing``, ``production``),
a dict of overrides (on top of ``EMOSTUDY_ENV``'s class, default development) or None.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Mapping

from sqlalchemy.engine import make_url
from werkzeug.security import generate_password_hash

from study_server.core.errors import ConfigError

ENV_PREFIX = "EMOSTUDY_"
# Keys whose values must never appear in a log, a page or an error message.
SECRET_KEYS = frozenset({"SECRET_KEY", "ADMIN_PASSWORD", "ADMIN_PASSWORD_HASH", "S3_SECRET_ACCESS_KEY",
                         "MTURK_SECRET_ACCESS_KEY", "PROLIFIC_API_TOKEN"})


class Config:
    """Defaults shared by every environment."""

    ENV_NAME = "base"
    DEBUG = False
    TESTING = False
    SECRET_KEY: str | None = None
    # None: SQLite file ``emostudy.sqlite3`` in the app's instance folder.
    DATABASE_URL: str | None = None
    DATABASE_POOL_SIZE = 10
    DATABASE_MAX_OVERFLOW = 20
    DATABASE_PRE_PING = False  # True: test each pooled connection before use (one more round trip)
    DATABASE_POOL_RECYCLE_S = 1800
    # PostgreSQL: give up connecting after this long (a down server answers 503 instead of hanging a worker).
    DATABASE_CONNECT_TIMEOUT_S = 5
    # Database faults (study_server.store.faults): a deadlock or serialization failure re-runs the request up to
    # this many times; after that, and while the database is away, requests get 503 with this Retry-After.
    DATABASE_TRANSIENT_RETRIES = 3
    DATABASE_RETRY_AFTER_S = 5
    SQLITE_BUSY_TIMEOUT_MS = 30000
    DATABASE_ECHO = False

    # Admin login (F2's admin blueprint): a werkzeug password hash; a plain password given in
    # EMOSTUDY_ADMIN_PASSWORD is hashed at start-up and the plain text dropped.
    ADMIN_USER = "admin"
    ADMIN_PASSWORD: str | None = None
    ADMIN_PASSWORD_HASH: str | None = None

    # HTTP security (read by study_server.web.security, F2's module; see its docstring for the formats).
    # Pages may be framed by these origins only (MTurk's ExternalQuestion and Prolific show us in a frame).
    FRAME_ANCESTORS = "'self' https://*.mturk.com https://*.amazon.com https://app.prolific.com"
    CSP_MEDIA_SRC = ""  # filled with the bucket's origin when MEDIA_BACKEND is s3 and this is empty
    COOKIE_SECURE: bool | None = None  # None: Secure unless debug
    SESSION_COOKIE_SAMESITE = "Lax"  # participant pages carry their token in the URL, not in a cookie
    RATE_LIMIT_ENABLED = True
    RATE_LIMIT_PER_IP = "1200/60"
    RATE_LIMIT_PER_ASSIGNMENT = "240/60"
    # Reverse proxies in front of the app (study_server.web.security): 1 behind nginx, so that per-address
    # limits see each participant's address rather than the proxy's.
    TRUSTED_PROXIES = 0

    MAX_CONTENT_LENGTH = 1 << 20  # bytes of a request body (an answer is < 1 KB)
    # Participant API JSON bodies (study_server.web.bodies): larger -> 413 body_too_large, deeper -> 400 json_too_deep.
    JSON_MAX_BYTES = 64 * 1024
    JSON_MAX_DEPTH = 16
    # An answer sooner than (clip duration - this) after its media's first request is flagged too_fast
    # (study_server.study.watching).
    WATCH_TOLERANCE_S = 0.5
    # The record of media requests that every worker process of this server shares (study_server.study.fetch_table),
    # so an answer about a clip another worker served needs no database read: "auto" (/dev/shm, else the
    # instance folder), "instance", "off", or a file path (study_server.study.watching.table_path).
    FETCH_TABLE = "auto"
    FETCH_TABLE_SLOTS = 65536  # 64 bytes each: 4 MiB; room for the trials of ~3,000 participants at a time
    # PostgreSQL: ordinary answer saves skip the framework (study_server.participant.fastpath); False: every save
    # goes through the Flask route (same replies, ~2.5x the CPU per save).
    FAST_ANSWERS = True

    # A participant with no request for this long loses their slot (status expired).
    ASSIGNMENT_TIMEOUT_S = 1800
    # Arrival holds (study_server.participant.holds): an arrival that has not started (given consent) this long after
    # it was given a place loses it (0: no hold, only ASSIGNMENT_TIMEOUT_S). New arrivals are limited per
    # client address and per study ("N/SECONDS"; "" for no limit); RATE_LIMIT_ENABLED=0 turns both off.
    ARRIVAL_HOLD_S = 180
    # Places held only by progress (study_server.study.progress): a started session without an answer, a
    # listening-check step or media bytes for this long loses its place at the next arrival's sweep (and gets
    # it back on return if there is room). Pings do not count. 0: off (only ASSIGNMENT_TIMEOUT_S applies).
    IDLE_RELEASE_S = 300
    # Places held at once by one address (IPv6: one /64) in one study (study_server.study.addresses); a lab
    # behind one address lists its networks in LAB_NETWORKS (CIDR) to get LAB_PLACES_PER_ADDRESS and
    # LAB_ARRIVAL_RATE_PER_IP instead. 0: no cap.
    PLACES_PER_ADDRESS = 5
    LAB_NETWORKS = ""
    LAB_PLACES_PER_ADDRESS = 100
    LAB_ARRIVAL_RATE_PER_IP = "600/300"
    ARRIVAL_RATE_PER_IP = "30/300"
    ARRIVAL_RATE_PER_STUDY = "300/60"
    AUDIO_CHECK_ATTEMPTS = 3
    # Media: "local" serves files from the stimulus set folder; "s3" redirects to presigned URLs.
    MEDIA_BACKEND = "local"
    MEDIA_MAX_AGE_S = 3600
    S3_BUCKET: str | None = None
    S3_PREFIX = "emostudy/"
    S3_REGION: str | None = None
    S3_ENDPOINT_URL: str | None = None
    S3_URL_EXPIRES_S = 3600
    # Where the participant's browser is sent: MTurk's live site only when asked explicitly.
    MTURK_SANDBOX = True
    PROLIFIC_COMPLETE_URL = "https://app.prolific.com/submissions/complete"
    # Hosts allowed as MTurk's turkSubmitTo (we post the assignment there; anything else is refused).
    MTURK_SUBMIT_HOSTS = ("www.mturk.com", "workersandbox.mturk.com")
    CONTACT_EMAIL = ""


class DevelopmentConfig(Config):
    ENV_NAME = "development"
    DEBUG = True


class TestingConfig(Config):
    ENV_NAME = "testing"
    TESTING = True
    SECRET_KEY = "testing-secret-key-not-for-production"
    COOKIE_SECURE = False
    RATE_LIMIT_ENABLED = False
    DATABASE_POOL_SIZE = 5
    FETCH_TABLE = "instance"  # each test's own folder, not /dev/shm
    FETCH_TABLE_SLOTS = 1024  # 64 KiB per test app, not 4 MiB


class ProductionConfig(Config):
    ENV_NAME = "production"


CONFIGS: dict[str, type[Config]] = {"development": DevelopmentConfig, "testing": TestingConfig,
                                    "production": ProductionConfig}


def _parse(name: str, raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        low = raw.strip().lower()
        if low in {"1", "true", "yes", "on"}:
            return True
        if low in {"0", "false", "no", "off", ""}:
            return False
        raise ConfigError(f"{ENV_PREFIX}{name}={raw!r}: expected a boolean (1/0, true/false, yes/no, on/off)")
    if default is None and name == "COOKIE_SECURE":
        return _parse(name, raw, False)
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{ENV_PREFIX}{name}={raw!r}: expected an integer") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{ENV_PREFIX}{name}={raw!r}: expected a number") from None
    if isinstance(default, tuple):
        return tuple(part for part in raw.replace(",", " ").split() if part)
    return raw


def config_keys(cls: type[Config]) -> list[str]:
    return [k for k in dir(cls) if k.isupper()]


def build_config(config: type[Config] | str | Mapping[str, Any] | None = None,
                 environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Resolve the settings: the class, then ``EMOSTUDY_*`` variables, then a dict's overrides."""
    environ = os.environ if environ is None else environ
    overrides: Mapping[str, Any] = {}
    if config is None or isinstance(config, Mapping):
        overrides = config or {}
        name = str(overrides.get("ENV_NAME") or environ.get(f"{ENV_PREFIX}ENV", "development"))
        if overrides.get("TESTING") and "ENV_NAME" not in overrides:
            name = "testing"
        cls = _config_class(name)
    elif isinstance(config, str):
        cls = _config_class(config)
    else:
        cls = config
    values = {k: getattr(cls, k) for k in config_keys(cls)}
    for key in list(values):
        env_name = ENV_PREFIX + key
        if env_name in environ:
            values[key] = _parse(key, environ[env_name], values[key])
    for key, value in overrides.items():
        values[key] = value
    return values


def _config_class(name: str) -> type[Config]:
    try:
        return CONFIGS[name.strip().lower()]
    except KeyError:
        raise ConfigError(f"unknown configuration {name!r} (EMOSTUDY_ENV): use one of "
                          f"{', '.join(CONFIGS)}") from None


def finalize_config(values: dict[str, Any], instance_path: str | os.PathLike) -> dict[str, Any]:
    """Fill derived settings: the default SQLite URL, the secret key, the admin password hash."""
    instance = Path(instance_path)
    if not values.get("DATABASE_URL"):
        instance.mkdir(parents=True, exist_ok=True)
        values["DATABASE_URL"] = f"sqlite:///{instance / 'emostudy.sqlite3'}"
    values["DATABASE_URL"] = normalize_database_url(values["DATABASE_URL"])
    if not values.get("SECRET_KEY"):
        if values.get("ENV_NAME") == "production":
            raise ConfigError("production needs a secret key: set EMOSTUDY_SECRET_KEY to a long random string "
                              "(e.g. python -c 'import secrets; print(secrets.token_hex(32))'); it keys "
                              "sessions, signed media URLs and participant pseudonyms, so keep it stable")
        values["SECRET_KEY"] = _instance_secret(instance)
    if values.get("ADMIN_PASSWORD") and not values.get("ADMIN_PASSWORD_HASH"):
        values["ADMIN_PASSWORD_HASH"] = generate_password_hash(values["ADMIN_PASSWORD"])
    values["ADMIN_PASSWORD"] = None  # the plain text never stays in memory longer than start-up
    if values.get("MEDIA_BACKEND") not in {"local", "s3"}:
        raise ConfigError(f"EMOSTUDY_MEDIA_BACKEND={values.get('MEDIA_BACKEND')!r}: use 'local' or 's3'")
    if values["MEDIA_BACKEND"] == "s3" and not values.get("S3_BUCKET"):
        raise ConfigError("EMOSTUDY_MEDIA_BACKEND=s3 needs EMOSTUDY_S3_BUCKET (the bucket holding the media)")
    return values


def _instance_secret(instance: Path) -> str:
    """Development/CLI without a key: one random key kept in the instance folder, so pseudonyms and
    signed URLs survive a restart."""
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / "secret_key"
    if path.is_file():
        key = path.read_text(encoding="utf-8").strip()
        if key:
            return key
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key + "\n")
    return key


def normalize_database_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` mean psycopg 3 here (the only PostgreSQL driver we install)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as a placeholder, never raw
        return "<unparsable database URL>"


def describe_config(values: Mapping[str, Any]) -> dict[str, Any]:
    """The settings safe to print: secrets masked, the database password hidden."""
    out: dict[str, Any] = {}
    for key, value in sorted(values.items()):
        if not key.isupper():
            continue
        if key in SECRET_KEYS:
            out[key] = "***" if value else None
        elif key == "DATABASE_URL" and value:
            out[key] = mask_url(str(value))
        else:
            out[key] = value
    return out
