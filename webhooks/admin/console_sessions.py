"""Console sessions and portal links.

Signing in with a token opens a session whose rights are the token's (and end with it);
redeeming a portal link opens one bound to the link's tenant. The browser holds a random key,
the row its SHA-256 (:func:`webhooks.admin.tokens.hash_token`). A portal link is redeemed by
one ``UPDATE ... WHERE used_at IS NULL AND expires_at > now`` so that two requests racing with
the same link cannot both win.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from webhooks.admin.access import Principal
from webhooks.admin.tokens import SCOPES, authenticate, hash_token
from webhooks.core.clock import now
from webhooks.core.errors import InvalidInput, Unauthenticated
from webhooks.models import ApiToken, ConsoleSession, PortalLink, Tenant

#: How long a console session lasts from sign-in (it is not extended by use).
SESSION_LIFETIME = timedelta(hours=12)

#: A portal link's default and longest validity.
PORTAL_LINK_DEFAULT = timedelta(minutes=10)
PORTAL_LINK_MAX = timedelta(hours=24)

#: What a portal link grants: the endpoint and event scopes.
PORTAL_SCOPES = SCOPES


@dataclass(frozen=True)
class OpenedSession:
    """A new session and the key to hand the browser (shown nowhere else)."""

    row: ConsoleSession
    key: str


def _open(
    session: Session,
    *,
    tenant_id: str | None,
    scopes: list[str],
    api_token_id: str | None,
) -> OpenedSession:
    key = secrets.token_urlsafe(32)
    row = ConsoleSession(
        key_hash=hash_token(key),
        api_token_id=api_token_id,
        tenant_id=tenant_id,
        scopes=scopes,
        csrf_token=secrets.token_urlsafe(32),
        expires_at=now() + SESSION_LIFETIME,
    )
    session.add(row)
    session.flush()
    return OpenedSession(row, key)


def sign_in(session: Session, token_plaintext: str) -> OpenedSession:
    """Open a session for a live API token; :class:`Unauthenticated` otherwise."""
    token = authenticate(session, token_plaintext.strip())
    if token is None:
        raise Unauthenticated("the token is invalid or revoked")
    return _open(
        session, tenant_id=token.tenant_id, scopes=list(token.scopes), api_token_id=token.id
    )


def current(session: Session, key: str) -> ConsoleSession | None:
    """The live session whose key is ``key``: not ended, not expired, its token not revoked."""
    digest = hash_token(key)
    row = session.scalar(select(ConsoleSession).where(ConsoleSession.key_hash == digest))
    if row is None or row.ended_at is not None or row.expires_at <= now():
        return None
    if row.api_token_id is not None:
        token = session.get(ApiToken, row.api_token_id)
        if token is None or token.revoked_at is not None:
            return None
    return row if hmac.compare_digest(row.key_hash, digest) else None


def principal(row: ConsoleSession) -> Principal:
    return Principal.of(row.tenant_id, row.scopes)


def csrf_matches(row: ConsoleSession, given: str | None) -> bool:
    """Whether a submitted form carried this session's CSRF token."""
    return given is not None and hmac.compare_digest(row.csrf_token, given)


def sign_out(row: ConsoleSession) -> None:
    """End the session now (the row stays, ended)."""
    row.ended_at = now()


def create_portal_link(
    session: Session, tenant: Tenant, expires_in: int | None = None
) -> tuple[PortalLink, str]:
    """A single-use link key into ``tenant``'s console; returns the row and the key."""
    lifetime = PORTAL_LINK_DEFAULT if expires_in is None else timedelta(seconds=expires_in)
    if not timedelta(seconds=1) <= lifetime <= PORTAL_LINK_MAX:
        raise InvalidInput(
            f"expires_in must be from 1 to {int(PORTAL_LINK_MAX.total_seconds())} seconds",
            field="expires_in",
        )
    key = secrets.token_urlsafe(32)
    link = PortalLink(
        key_hash=hash_token(key),
        tenant_id=tenant.id,
        scopes=list(PORTAL_SCOPES),
        expires_at=now() + lifetime,
    )
    session.add(link)
    session.flush()
    return link, key


def redeem_portal_link(session: Session, key: str, *, at: datetime | None = None) -> OpenedSession:
    """Use a portal link (once) and open a session for its tenant.

    :raises Unauthenticated: the link is unknown, expired or already used.
    """
    moment = now() if at is None else at
    used = session.execute(
        update(PortalLink)
        .where(
            PortalLink.key_hash == hash_token(key),
            PortalLink.used_at.is_(None),
            PortalLink.expires_at > moment,
        )
        .values(used_at=moment)
        .returning(PortalLink.tenant_id, PortalLink.scopes)
    ).one_or_none()
    if used is None:
        raise Unauthenticated("this portal link is unknown, expired or already used")
    tenant_id, scopes = used
    return _open(session, tenant_id=tenant_id, scopes=list(scopes), api_token_id=None)
