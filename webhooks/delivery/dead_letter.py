"""Deliveries that failed for good: log them, count them, hand them to the operator's hook.

``WEBHOOKS_DEAD_LETTER_HANDLER`` names a ``module:function``, imported once per process and
called as ``function(delivery_id, details)`` where ``details`` is a dict of plain values::

    {"delivery_id", "event_id", "event_type", "tenant_id", "endpoint_id", "url",
     "attempts", "last_status_code", "status"}

Dead letters travel as Celery messages, so like every message they arrive at least once: a
handler may see the same delivery twice, and should not mind (``status`` tells whether it was
redelivered meanwhile). One the broker lost is published again by the sweeper. An exception
from the handler fails the task, which Flower shows.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from functools import cache
from typing import Any

from sqlalchemy import select

from webhooks.core.config import get_settings
from webhooks.core.db import session_scope
from webhooks.core.errors import ConfigurationError
from webhooks.delivery import state
from webhooks.models import Delivery, Endpoint, Event
from webhooks.ops import metrics

log = logging.getLogger("webhooks.dead_letter")

Handler = Callable[[str, dict[str, Any]], object]


def handle(delivery_id: str) -> dict[str, Any] | None:
    """Log, count and pass on one dead delivery; returns its details (None if it is gone)."""
    details = load_details(delivery_id)
    if details is None:
        log.warning("dead letter for delivery %s, which no longer exists", delivery_id)
        return None
    received(delivery_id)
    metrics.DEAD_LETTERS.inc()
    log.warning(
        "delivery %s of event %s (%s) to endpoint %s failed for good after %d attempts, "
        "last status %s",
        delivery_id,
        details["event_id"],
        details["event_type"],
        details["endpoint_id"],
        details["attempts"],
        details["last_status_code"],
    )
    spec = get_settings().dead_letter_handler
    if spec:
        load_handler(spec)(delivery_id, details)
    return details


def received(delivery_id: str) -> None:
    """Clear the stamp of a dead letter that arrived, so the sweeper does not send it again.

    The worker that failed the delivery stamped ``locked_until`` as it published the dead
    letter (see :func:`webhooks.delivery.sweeper.lost_dead_letters`). Cleared before the handler
    runs: what is made durable is the hand-over through the broker; a handler that raises fails its
    task, shown in Flower, and is not called again and again.
    """
    with session_scope() as session:
        state.dead_letter_received(session, delivery_id)


def load_details(delivery_id: str) -> dict[str, Any] | None:
    with session_scope() as session:
        row = session.execute(
            select(
                Delivery.event_id,
                Event.type.label("event_type"),
                Delivery.tenant_id,
                Delivery.endpoint_id,
                Endpoint.url,
                Delivery.attempts,
                Delivery.last_status_code,
                Delivery.status,
            )
            .join(Event, Event.id == Delivery.event_id)
            .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
            .where(Delivery.id == delivery_id)
        ).one_or_none()
    return None if row is None else {"delivery_id": delivery_id, **row._asdict()}


@cache
def load_handler(spec: str) -> Handler:
    """Import ``module:function`` once; a clear :class:`ConfigurationError` if it is not one."""
    module_name, _, attribute = spec.partition(":")
    try:
        handler = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigurationError(
            f"WEBHOOKS_DEAD_LETTER_HANDLER={spec!r} is not an importable module:function ({exc})"
        ) from None
    if not callable(handler):
        raise ConfigurationError(f"WEBHOOKS_DEAD_LETTER_HANDLER={spec!r} is not callable")
    return handler  # type: ignore[no-any-return]
