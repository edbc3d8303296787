"""Configuration, read from the environment in this one place.

Every process (API, worker, beat, CLI) calls :func:`get_settings`; nothing else reads
``os.environ``. The embedded defaults put an SQLite database, an SQLite-backed broker and a
generated encryption key in one directory (:func:`default_var_dir`) so that a newcomer with
nothing but Python can run the whole service.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cryptography.fernet import Fernet

from webhooks.core.errors import ConfigurationError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Settings:
    """Everything configurable, already parsed and validated."""

    database_url: str
    broker_url: str
    secret_keys: tuple[str, ...]
    allow_http: bool = False
    allowed_private_networks: tuple[IPNetwork, ...] = ()
    max_payload_bytes: int = 262_144
    history_retention_days: int = 30
    dead_letter_handler: str | None = None
    log_format: str = "text"
    endpoint_concurrency: int = 10
    disable_after_days: int = 5
    #: How old a dead letter's stamp may get before the sweeper publishes it again; and the
    #: same window for deliveries when the broker cannot be asked what it holds (otherwise
    #: the sweeper republishes what the broker lost on its next sweep).
    republish_after_seconds: int = 180
    #: Seconds between beat's sweeps: how late, at most, a long retry or a lost message goes out.
    sweep_interval_seconds: float = 5.0
    #: Egress proxy for deliveries (a static source address); from ``HTTPS_PROXY``.
    https_proxy: str | None = None
    #: CA bundle (a PEM file) that receivers' and token servers' certificates are verified
    #: against, for receivers behind a private CA (``WEBHOOKS_CA_BUNDLE``); None: the
    #: ``certifi`` bundle that ``requests`` ships.
    ca_bundle: str | None = None
    #: Port where a worker serves its Prometheus metrics (``WEBHOOKS_METRICS_PORT``); None: off.
    metrics_port: int | None = None
    #: Address the worker's metrics exporter binds to (``WEBHOOKS_METRICS_HOST``): loopback
    #: unless the operator opens it, since the counters describe every tenant's traffic.
    metrics_host: str = "127.0.0.1"
    #: Where the embedded defaults live (``WEBHOOKS_VAR_DIR``, else :func:`default_var_dir`).
    var_dir: Path = Path("var")
    #: The console's CSP ``frame-ancestors`` sources: who may embed it (``'none'``: nobody).
    console_frame_ancestors: str = "'none'"


def _flag(value: str, name: str) -> bool:
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name} must be 0 or 1, got {value!r}")


def _positive_int(value: str, name: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, got {value!r}") from None
    if number < 1:
        raise ConfigurationError(f"{name} must be at least 1, got {number}")
    return number


def _positive_seconds(value: str, name: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}") from None
    if not seconds > 0:
        raise ConfigurationError(f"{name} must be more than 0, got {value}")
    return seconds


def _networks(value: str, name: str) -> tuple[IPNetwork, ...]:
    try:
        return tuple(
            ipaddress.ip_network(part.strip(), strict=False)
            for part in value.split(",")
            if part.strip()
        )
    except ValueError as exc:
        raise ConfigurationError(f"{name}: {exc}") from None


_SOURCE = re.compile(
    r"'none'|'self'|[A-Za-z][A-Za-z0-9+.-]*:|(?:[A-Za-z][A-Za-z0-9+.-]*://)?[^\s;,']+"
)


def _frame_ancestors(value: str) -> str:
    """A space-separated CSP source list; a ``;`` or ``,`` would end the directive early."""
    sources = value.split()
    if not sources or not all(_SOURCE.fullmatch(source) for source in sources):
        raise ConfigurationError(
            "WEBHOOKS_CONSOLE_FRAME_ANCESTORS must be CSP sources separated by spaces, e.g."
            f" 'self' https://app.example.com (got {value!r})"
        )
    return " ".join(sources)


def _existing_file(value: str, name: str) -> str | None:
    if not value:
        return None
    if not Path(value).is_file():
        raise ConfigurationError(f"{name} must be the path of a file, and {value!r} is none")
    return value


def _database_url(value: str) -> str:
    """``postgresql://`` (and Heroku-style ``postgres://``) mean the driver we ship: psycopg2.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, which is not installed, and the
    first query would fail with an import error. An explicit ``postgresql+driver://`` stays.
    """
    for scheme in ("postgresql://", "postgres://"):
        if value.startswith(scheme):
            return "postgresql+psycopg2://" + value[len(scheme) :]
    return value


def _secret_keys(value: str, var_dir: Path) -> tuple[str, ...]:
    """Parse the comma-separated Fernet keys, or read (creating it once) the dev key file."""
    if not value:
        key_file = var_dir / "secret.key"
        if not key_file.exists():
            var_dir.mkdir(parents=True, exist_ok=True)
            key_file.write_text(Fernet.generate_key().decode() + "\n")
            key_file.chmod(0o600)
        value = key_file.read_text().strip()
    keys = tuple(part.strip() for part in value.split(",") if part.strip())
    for key in keys:
        try:
            Fernet(key)
        except ValueError:
            raise ConfigurationError(
                "WEBHOOKS_SECRET_KEY must be Fernet keys (URL-safe base64 of 32 bytes), "
                "comma-separated"
            ) from None
    return keys


def default_var_dir(env: Mapping[str, str]) -> Path:
    """Where the embedded defaults live when ``WEBHOOKS_VAR_DIR`` is not set.

    The same place whatever the current directory, so that ``webhooks send`` run from another
    folder, the API, the workers and a producer all find one database and one key:
    ``$XDG_DATA_HOME/webhooks``, else ``~/.local/share/webhooks`` (the XDG default).
    """
    data_home = env.get("XDG_DATA_HOME") or str(
        Path(env.get("HOME") or Path.home()) / ".local/share"
    )
    return Path(data_home) / "webhooks"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``environ`` (the process environment by default)."""
    env = os.environ if environ is None else environ
    given_var_dir = env.get("WEBHOOKS_VAR_DIR")
    var_dir = (Path(given_var_dir) if given_var_dir else default_var_dir(env)).resolve()
    log_format = env.get("WEBHOOKS_LOG_FORMAT", "text")
    if log_format not in ("text", "json"):
        raise ConfigurationError(f"WEBHOOKS_LOG_FORMAT must be text or json, got {log_format!r}")
    if not env.get("WEBHOOKS_DATABASE_URL") or not env.get("WEBHOOKS_BROKER_URL"):
        var_dir.mkdir(parents=True, exist_ok=True)
    return Settings(
        database_url=_database_url(
            env.get("WEBHOOKS_DATABASE_URL") or f"sqlite:///{var_dir}/webhooks.sqlite3"
        ),
        broker_url=env.get("WEBHOOKS_BROKER_URL") or f"sqla+sqlite:///{var_dir}/broker.sqlite3",
        secret_keys=_secret_keys(env.get("WEBHOOKS_SECRET_KEY", ""), var_dir),
        allow_http=_flag(env.get("WEBHOOKS_ALLOW_HTTP", "0"), "WEBHOOKS_ALLOW_HTTP"),
        allowed_private_networks=_networks(
            env.get("WEBHOOKS_ALLOWED_PRIVATE_NETWORKS", ""), "WEBHOOKS_ALLOWED_PRIVATE_NETWORKS"
        ),
        max_payload_bytes=_positive_int(
            env.get("WEBHOOKS_MAX_PAYLOAD_BYTES", "262144"), "WEBHOOKS_MAX_PAYLOAD_BYTES"
        ),
        history_retention_days=_positive_int(
            env.get("WEBHOOKS_HISTORY_RETENTION_DAYS", "30"), "WEBHOOKS_HISTORY_RETENTION_DAYS"
        ),
        dead_letter_handler=env.get("WEBHOOKS_DEAD_LETTER_HANDLER") or None,
        log_format=log_format,
        endpoint_concurrency=_positive_int(
            env.get("WEBHOOKS_ENDPOINT_CONCURRENCY", "10"), "WEBHOOKS_ENDPOINT_CONCURRENCY"
        ),
        disable_after_days=_positive_int(
            env.get("WEBHOOKS_DISABLE_AFTER_DAYS", "5"), "WEBHOOKS_DISABLE_AFTER_DAYS"
        ),
        https_proxy=env.get("WEBHOOKS_HTTPS_PROXY")
        or env.get("HTTPS_PROXY")
        or env.get("https_proxy")
        or None,
        ca_bundle=_existing_file(env.get("WEBHOOKS_CA_BUNDLE", ""), "WEBHOOKS_CA_BUNDLE"),
        metrics_port=_positive_int(env["WEBHOOKS_METRICS_PORT"], "WEBHOOKS_METRICS_PORT")
        if env.get("WEBHOOKS_METRICS_PORT")
        else None,
        metrics_host=env.get("WEBHOOKS_METRICS_HOST") or "127.0.0.1",
        republish_after_seconds=_positive_int(
            env.get("WEBHOOKS_REPUBLISH_AFTER_SECONDS", "180"), "WEBHOOKS_REPUBLISH_AFTER_SECONDS"
        ),
        sweep_interval_seconds=_positive_seconds(
            env.get("WEBHOOKS_SWEEP_INTERVAL_SECONDS", "5"), "WEBHOOKS_SWEEP_INTERVAL_SECONDS"
        ),
        var_dir=var_dir,
        console_frame_ancestors=_frame_ancestors(
            env.get("WEBHOOKS_CONSOLE_FRAME_ANCESTORS", "'none'")
        ),
    )


@cache
def get_settings() -> Settings:
    """The process-wide settings, read once. Tests call ``get_settings.cache_clear()``."""
    return load_settings()
