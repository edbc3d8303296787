"""API tokens: issue, hash, authenticate.

Tokens are 256-bit random strings; only their SHA-256 is stored. A token is looked up by its
hash through a unique index: what an attacker controls is the plaintext, whose hash reveals
nothing about how close a guess is, so the lookup needs no constant-time comparison.
"""

import hashlib
import secrets
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from webhooks.core.clock import now
from webhooks.core.errors import InvalidInput, NotFound
from webhooks.models import ApiToken, Tenant

SCOPES = ("endpoints:read", "endpoints:write", "events:read", "events:write")
_PREFIX = "wht_"


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def validate_scopes(scopes: Sequence[str]) -> list[str]:
    """Known scopes, deduplicated in a stable order; :class:`InvalidInput` otherwise."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise InvalidInput(
            f"unknown scopes {', '.join(unknown)}; known: {', '.join(SCOPES)}", field="scopes"
        )
    return [scope for scope in SCOPES if scope in scopes]


def create_token(
    session: Session, *, tenant: Tenant | None, scopes: Sequence[str] = ()
) -> tuple[ApiToken, str]:
    """Issue a token (admin when ``tenant`` is None); returns the row and the plaintext."""
    plaintext = _PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        tenant_id=None if tenant is None else tenant.id,
        token_hash=hash_token(plaintext),
        scopes=[] if tenant is None else validate_scopes(scopes),
    )
    session.add(token)
    session.flush()
    return token, plaintext


def authenticate(session: Session, plaintext: str) -> ApiToken | None:
    """The live token matching ``plaintext``, or None."""
    digest = hash_token(plaintext)
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if token is None or token.revoked_at is not None:
        return None
    return token


def revoke_by_id(session: Session, token_id: str) -> ApiToken:
    """Revoke the token ``token_id`` (admin tokens too: only the CLI can revoke those)."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"no token {token_id!r}")
    if token.revoked_at is None:
        revoke(token)
    return token


def revoke(token: ApiToken) -> None:
    """Make a token unusable from now on (the row stays for audit)."""
    token.revoked_at = now()
