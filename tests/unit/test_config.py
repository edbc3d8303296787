"""Configuration: embedded defaults, parsing, and one clear error per bad value."""

from ipaddress import ip_network
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from webhooks.core.config import load_settings
from webhooks.core.errors import ConfigurationError


def test_embedded_defaults_need_no_server(tmp_path: Path) -> None:
    settings = load_settings({"WEBHOOKS_VAR_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path}/webhooks.sqlite3"
    assert settings.broker_url.startswith("sqla+sqlite:///")
    assert not settings.allow_http and settings.allowed_private_networks == ()
    assert (settings.max_payload_bytes, settings.history_retention_days) == (262_144, 30)
    assert settings.metrics_host == "127.0.0.1"  # the worker's exporter: loopback only
    # The development key is generated once and then reused.
    again = load_settings({"WEBHOOKS_VAR_DIR": str(tmp_path)})
    assert settings.secret_keys == again.secret_keys
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0


def test_values_are_parsed(tmp_path: Path) -> None:
    keys = [Fernet.generate_key().decode() for _ in range(2)]
    settings = load_settings(
        {
            "WEBHOOKS_VAR_DIR": str(tmp_path),
            "WEBHOOKS_DATABASE_URL": "postgresql://db/x",
            "WEBHOOKS_BROKER_URL": "redis://r:6379/1",
            "WEBHOOKS_SECRET_KEY": ",".join(keys),
            "WEBHOOKS_ALLOW_HTTP": "1",
            "WEBHOOKS_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8, ::1/128",
            "WEBHOOKS_MAX_PAYLOAD_BYTES": "1000",
            "WEBHOOKS_DEAD_LETTER_HANDLER": "pkg.mod:handle",
            "WEBHOOKS_METRICS_HOST": "192.0.2.10",
        }
    )
    assert settings.metrics_host == "192.0.2.10"
    assert settings.secret_keys == tuple(keys)
    assert settings.database_url == "postgresql+psycopg2://db/x"
    assert settings.allow_http
    assert settings.allowed_private_networks == (ip_network("127.0.0.0/8"), ip_network("::1/128"))
    assert settings.max_payload_bytes == 1000
    assert settings.dead_letter_handler == "pkg.mod:handle"
    assert not (tmp_path / "secret.key").exists()


def test_ca_bundle_names_a_file(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert load_settings({"WEBHOOKS_VAR_DIR": str(tmp_path)}).ca_bundle is None
    settings = load_settings({"WEBHOOKS_VAR_DIR": str(tmp_path), "WEBHOOKS_CA_BUNDLE": str(bundle)})
    assert settings.ca_bundle == str(bundle)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("WEBHOOKS_ALLOW_HTTP", "maybe", "WEBHOOKS_ALLOW_HTTP must be 0 or 1"),
        ("WEBHOOKS_MAX_PAYLOAD_BYTES", "big", "must be a whole number"),
        ("WEBHOOKS_HISTORY_RETENTION_DAYS", "0", "must be at least 1"),
        ("WEBHOOKS_ALLOWED_PRIVATE_NETWORKS", "10.0.0.0/33", "WEBHOOKS_ALLOWED_PRIVATE_NETWORKS"),
        ("WEBHOOKS_SECRET_KEY", "not-a-key", "Fernet keys"),
        ("WEBHOOKS_LOG_FORMAT", "xml", "text or json"),
        ("WEBHOOKS_CA_BUNDLE", "/nonexistent/ca.pem", "WEBHOOKS_CA_BUNDLE must be the path"),
    ],
)
def test_bad_values_raise_a_clear_error(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings({"WEBHOOKS_VAR_DIR": str(tmp_path), name: value})


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgres://u@db:5432/x", "postgresql+psycopg2://u@db:5432/x"),
        ("postgresql+psycopg2://db/x", "postgresql+psycopg2://db/x"),
        ("sqlite:///var/w.sqlite3", "sqlite:///var/w.sqlite3"),
    ],
)
def test_database_urls_name_the_shipped_driver(tmp_path: Path, given: str, used: str) -> None:
    settings = load_settings({"WEBHOOKS_VAR_DIR": str(tmp_path), "WEBHOOKS_DATABASE_URL": given})
    assert settings.database_url == used
