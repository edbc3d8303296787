"""Hostile input against the real processes: a receiver's bytes reaching a worker, requests
gunicorn itself refuses, and a scan of every log line for what must never be logged.

The API runs under gunicorn with the project's worker class and the worker under Celery, on
the test database and an exclusive Redis database, at the default settings.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.faults.harness import (
    Receiver,
    add_endpoint,
    answer,
    attempts_of,
    hostile_bytes,
    start_api,
    start_worker,
    statuses,
)
from tests.services import wait_until
from webhooks import enqueue_event
from webhooks.admin.tokens import create_token
from webhooks.core.db import get_engine
from webhooks.models import Tenant

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(120)
def test_a_receiver_sending_nul_and_invalid_utf8_gets_one_recorded_attempt(
    session: Session,
    tenant: Tenant,
    receiver: Receiver,
    worker_env: dict[str, str],
    tmp_path: Path,
) -> None:
    add_endpoint(session, tenant, receiver.on("/hostile", hostile_bytes))
    worker = start_worker(worker_env, tmp_path / "worker.log")
    try:
        event_id = enqueue_event("order.created", {"n": 1}, tenant="acme")
        wait_until(lambda: statuses([event_id])["succeeded"] == 1, 30, "the delivery")
    finally:
        worker.stop()
    [attempt] = attempts_of(event_id)
    assert attempt.response_status == 200 and attempt.error is None
    assert attempt.response_headers is not None
    assert attempt.response_headers["X-Bad"] == "a\ufffdb"
    assert attempt.response_body is not None and "\x00" not in attempt.response_body
    assert receiver.count("/hostile") == 1
    assert "Traceback" not in (tmp_path / "worker.log").read_text(errors="replace")


def _raw(url: str, request: bytes) -> tuple[int, str, dict[str, object]]:
    """Send ``request`` as it is; the status, the content type and the parsed body."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request)
        answer_bytes = b""
        while chunk := conn.recv(65536):
            answer_bytes += chunk
    head, _, body = answer_bytes.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split(" ")[1]), headers.get("content-type", ""), json.loads(body)


@pytest.fixture
def api_and_token(
    session: Session, worker_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[str, str]]:
    _, token = create_token(session, tenant=None)
    session.commit()
    api = start_api(worker_env, tmp_path / "api.log", workers=1, threads=4)
    try:
        yield str(api.url), token
    finally:
        api.stop()


@pytest.mark.timeout(120)
def test_requests_gunicorn_refuses_are_problem_json(
    tenant: Tenant, api_and_token: tuple[str, str]
) -> None:
    url, token = api_and_token
    chunked = (
        f"POST /v1/tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    huge = b'{"uid": "big", "name": "' + b"x" * 400_000 + b'"}'
    cases = {
        "malformed chunk size": (chunked + b"zz\r\n{}\r\n0\r\n\r\n", 400),
        "bad chunk terminator": (chunked + b"2\r\n{}XX0\r\n\r\n", 400),
        "chunked over the limit": (
            chunked + f"{len(huge):x}\r\n".encode() + huge + b"\r\n0\r\n\r\n", 413
        ),
        "request line too long": (
            b"GET /v1/tenants?" + b"a" * 9000
            + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            414,
        ),
        "header too large": (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000
            + b"\r\nConnection: close\r\n\r\n",
            431,
        ),
    }  # fmt: skip
    for name, (request, expected) in cases.items():
        status, content_type, body = _raw(url, request)
        assert (status, content_type) == (expected, "application/problem+json"), name
        assert body["status"] == expected and body["detail"], name
    small = b'{"uid": "chunky"}'
    ok = f"{len(small):x}\r\n".encode() + small + b"\r\n0\r\n\r\n"
    assert _raw(url, chunked + ok)[0] == 201


# --- the log scan ----------------------------------------------------------------------------

SECRET = "whsec_bG9nc2Nhbi1zZWNyZXQtMTIzNDU2Nzg5MA=="
API_KEY = "apikey-logscan-7f3a9c"
BEARER = "bearer-logscan-0b1d2e"
AUTH_TOKEN = "xauth-logscan-5c6d7e"
URL_TOKEN = "urltoken-logscan-8a9b"
CARD = "4111-1111-1111-1111-logscan"
NEVER_LOGGED = (SECRET.removeprefix("whsec_"), API_KEY, BEARER, AUTH_TOKEN, URL_TOKEN, CARD)

#: Fails the insert of the rows named, as a database error would.
_FAULT = """
CREATE OR REPLACE FUNCTION logscan_fault_{table}() RETURNS trigger AS $$
BEGIN
  IF {condition} THEN RAISE EXCEPTION 'injected database fault'; END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER logscan_{table} BEFORE INSERT ON {table}
FOR EACH ROW EXECUTE FUNCTION logscan_fault_{table}()
"""


@pytest.mark.timeout(240)
def test_logs_never_carry_secrets_credentials_url_tokens_or_payloads(
    session: Session,
    tenant: Tenant,
    receiver: Receiver,
    worker_env: dict[str, str],
    api_and_token: tuple[str, str],
    tmp_path: Path,
) -> None:
    url, token = api_and_token
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    credentials = {
        "secret": SECRET,
        "api_key_header": "X-Api-Key",
        "api_key": API_KEY,
        "headers": {"Authorization": f"Bearer {BEARER}", "X-Auth-Token": AUTH_TOKEN},
        "retry_schedule": [],
    }
    ids = {}
    for path, behaviour in (("ok", answer()), ("fail", answer(500)), ("dberror", answer())):
        target = receiver.on(f"/{path}?sig={URL_TOKEN}", behaviour)
        created = api.post(
            f"{url}/v1/tenants/acme/endpoints",
            json={
                "url": target,
                "event_types": [f"logscan.{path}"],
                "verify": path != "fail",  # a PING the failing receiver would refuse
                **credentials,
            },
            timeout=10,
        )
        assert created.status_code == 201, created.text
        ids[path] = created.json()["id"]
    with get_engine().begin() as connection:
        # An attempt of the "dberror" endpoint fails in the worker; an event of the type
        # "logscan.apifault" fails in the API.
        condition = f"NEW.endpoint_id = '{ids['dberror']}'"
        connection.execute(text(_FAULT.format(table="attempts", condition=condition)))
        condition = "NEW.type = 'logscan.apifault'"
        connection.execute(text(_FAULT.format(table="events", condition=condition)))
    worker_log = tmp_path / "worker.log"
    worker = start_worker({**worker_env, "WEBHOOKS_LOG_FORMAT": "json"}, worker_log)
    try:
        sent = {}
        for path in ("ok", "fail", "dberror"):
            response = api.post(
                f"{url}/v1/tenants/acme/events",
                json={"type": f"logscan.{path}", "data": {"card": CARD}},
                timeout=10,
            )
            assert response.status_code == 202, response.text
            sent[path] = response.json()["id"]
        # The database refusing the API's own write: an error the API logs.
        refused = api.post(
            f"{url}/v1/tenants/acme/events",
            json={"type": "logscan.apifault", "data": {"card": CARD}},
            timeout=10,
        )
        assert refused.status_code >= 500
        wait_until(lambda: statuses([sent["ok"]])["succeeded"] == 1, 30, "the success")
        wait_until(lambda: statuses([sent["fail"]])["failed"] == 1, 30, "the failure")
        wait_until(
            lambda: "injected database fault" in worker_log.read_text(errors="replace"),
            30,
            "the worker's database error",
        )
    finally:
        worker.stop()
        with get_engine().begin() as connection:
            for table in ("attempts", "events"):
                connection.execute(text(f"DROP TRIGGER IF EXISTS logscan_{table} ON {table}"))
    api_log = (tmp_path / "api.log").read_text(errors="replace")
    worker_text = worker_log.read_text(errors="replace")
    assert "injected database fault" in api_log  # the paths ran and were logged...
    assert "Traceback" in worker_text
    for value in NEVER_LOGGED:  # ...and none of this was
        assert value not in api_log, value
        assert value not in worker_text, value
