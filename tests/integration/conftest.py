"""API fixtures: the app on the test database, tokens, and a client that sends them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from api import create_app
from tests.api_client import Caller
from webhooks.admin.tenants import create_tenant
from webhooks.admin.tokens import create_token
from webhooks.models import Base, Tenant


@pytest.fixture
def sqlite_session(tmp_path: Path) -> Iterator[Session]:
    """A session on a fresh SQLite file with the schema: the portable path, beside the
    Postgres ``session``."""
    engine = create_engine(f"sqlite:///{tmp_path}/portable.sqlite3")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        yield session
    engine.dispose()


@pytest.fixture
def app(clean_db: None) -> Flask:
    return create_app({"TESTING": True})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def admin_token(session: Session) -> str:
    _, plaintext = create_token(session, tenant=None)
    session.commit()
    return plaintext


@pytest.fixture
def admin(client: FlaskClient, admin_token: str) -> Caller:
    return Caller(client, admin_token)


@pytest.fixture
def tenant(session: Session) -> Tenant:
    tenant = create_tenant(session, "acme", "Acme")
    session.commit()
    return tenant


@pytest.fixture
def other_tenant(session: Session) -> Tenant:
    tenant = create_tenant(session, "globex", "Globex")
    session.commit()
    return tenant


@pytest.fixture
def as_tenant(client: FlaskClient, session: Session, tenant: Tenant) -> Callable[..., Caller]:
    """``as_tenant("endpoints:read", ...)``: a caller with a token of ``tenant`` (or ``of=``)."""

    def make(*scopes: str, of: Tenant | None = None) -> Caller:
        _, plaintext = create_token(session, tenant=of or tenant, scopes=scopes)
        session.commit()
        return Caller(client, plaintext)

    return make
