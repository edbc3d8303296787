"""Schema migrations, run from the package so that an installed wheel can migrate itself."""

from pathlib import Path

from alembic import command
from alembic.config import Config

from webhooks.core.config import get_settings

_SCRIPTS = Path(__file__).with_name("migrations")


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at the shipped scripts and the configured database."""
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    config.set_main_option("sqlalchemy.url", url or get_settings().database_url)
    return config


def upgrade(url: str | None = None) -> None:
    """Create or upgrade the schema to the newest revision; a no-op when already there."""
    command.upgrade(alembic_config(url), "head")
