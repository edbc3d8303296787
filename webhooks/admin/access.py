"""Who may act on which tenant: one rule for the API's bearer tokens and the console's sessions.

A caller is a :class:`Principal`: an admin (every tenant, every scope) or one tenant with some
scopes. Asking for another tenant is :class:`AccessDenied` (the API's 403); objects of another
tenant are simply never found, because every lookup is filtered by the tenant returned here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from webhooks.admin.tenants import get_tenant
from webhooks.core.errors import AccessDenied
from webhooks.models import ApiToken, Tenant

#: The "scope" of what only admins may do.
ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: ``tenant_id`` None is an admin."""

    tenant_id: str | None
    scopes: frozenset[str]

    @classmethod
    def of(cls, tenant_id: str | None, scopes: Iterable[str]) -> Principal:
        return cls(tenant_id, frozenset(scopes))

    @classmethod
    def of_token(cls, token: ApiToken) -> Principal:
        return cls.of(token.tenant_id, token.scopes)

    @property
    def is_admin(self) -> bool:
        return self.tenant_id is None

    def may(self, scope: str) -> bool:
        """Whether this caller holds ``scope`` (admins hold every scope)."""
        return self.is_admin or (scope != ADMIN and scope in self.scopes)


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise AccessDenied("this needs an admin token")


def tenant_in_reach(session: Session, principal: Principal, ref: str, scope: str | None) -> Tenant:
    """The tenant ``ref`` (id or uid) names, if ``principal`` may act on it in ``scope``.

    ``scope`` is the scope a tenant's caller needs, :data:`ADMIN` for admins only, or None for
    any caller of that tenant.
    """
    if scope == ADMIN:
        require_admin(principal)
    if principal.is_admin:
        return get_tenant(session, ref)
    own = session.get(Tenant, principal.tenant_id)
    if own is None or ref not in (own.id, own.uid):
        raise AccessDenied("this token is bound to another tenant")
    if scope is not None and scope not in principal.scopes:
        raise AccessDenied(f"this token lacks the {scope} scope")
    return own
