"""API fixtures: the app on the test database, tokens, and a client that sends them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from api import create_app
from webhooks.models import Tenant
from webhooks.tenants import create_tenant
from webhooks.tokens import create_token


class Caller:
    """The Flask test client with one token's ``Authorization`` header on every request."""

    def __init__(self, client: FlaskClient, token: str | None) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def request(self, method: str, path: str, **kwargs: Any) -> TestResponse:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.client.open(path, method=method, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("DELETE", path, **kwargs)


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


def problem(response: TestResponse, status: int) -> dict[str, Any]:
    """Assert ``response`` is an RFC 9457 problem with ``status``; return its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json(force=True)
    assert set(body) == {"type", "title", "status", "detail", "errors"}
    assert body["status"] == status
    return body


def fields_of(response: TestResponse, status: int = 422) -> set[str | None]:
    """The fields a problem response names."""
    return {error["field"] for error in problem(response, status)["errors"]}
