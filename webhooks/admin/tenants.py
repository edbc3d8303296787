"""Tenants: create and look up by id or uid."""

import re

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from webhooks.core.errors import Conflict, InvalidInput, NotFound
from webhooks.models import Tenant

#: A uid is what producers pass as ``tenant=``; it must never be mistaken for an id.
UID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def validate_uid(uid: str) -> str:
    """Check a tenant uid's syntax (1-64 of letters, digits, ``._-``; not an id)."""
    if not UID_PATTERN.fullmatch(uid) or uid.startswith("ten_"):
        raise InvalidInput(
            "uid must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or "
            "digit, and must not start with 'ten_'",
            field="uid",
        )
    return uid


def create_tenant(session: Session, uid: str, name: str = "") -> Tenant:
    """Add a tenant; :class:`Conflict` if the uid is taken, in any case (``ACME`` when
    ``acme`` exists: a unique index on ``lower(uid)`` says so)."""
    validate_uid(uid)
    existing = session.scalar(select(Tenant.uid).where(func.lower(Tenant.uid) == uid.lower()))
    if existing is not None and existing != uid:
        raise Conflict(
            f"a tenant with uid {existing!r} exists (uids are unique regardless of case)"
        )
    tenant = Tenant(uid=uid, name=name)
    session.add(tenant)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict(f"a tenant with uid {uid!r} exists") from None
    return tenant


def get_tenant(session: Session, ref: str) -> Tenant:
    """The tenant whose id or uid is ``ref``; :class:`NotFound` otherwise."""
    column = Tenant.id if ref.startswith("ten_") else Tenant.uid
    tenant = session.scalar(select(Tenant).where(column == ref))
    if tenant is None:
        raise NotFound(f"no tenant {ref!r}")
    return tenant
