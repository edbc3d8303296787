"""One database session per request.

Views and the authentication share it, so a request reads one consistent state and commits
once. Nothing is committed implicitly: a view that changes something calls
``session().commit()``, and whatever a failed request did is rolled back when the session is
closed at the end of the request.
"""

from __future__ import annotations

from flask import Flask, g
from sqlalchemy.orm import Session

from webhooks.core.db import new_session


def session() -> Session:
    """This request's session, opened on first use."""
    if "db_session" not in g:
        g.db_session = new_session()
    current: Session = g.db_session
    return current


def _close(_exc: BaseException | None) -> None:
    current: Session | None = g.pop("db_session", None)
    if current is not None:
        current.close()


def init_app(app: Flask) -> None:
    app.teardown_appcontext(_close)
