"""Handing deliveries to Celery: the producer side, which never imports :mod:`workers`.

The library publishes tasks by name through a Celery app of its own, built from the settings
with the same broker and routing as the workers' app (which is this very app, configured
further, in a worker process). One publish per delivery, all the deliveries of one event
through one producer connection taken from the pool.

Publishing is best effort by design: the database is the source of truth and the sweeper
(:mod:`webhooks.delivery.sweeper`) republishes whatever is due and was never picked up, so a broker
that is down costs a delay, never a delivery. Failures are logged, not raised.

Publishing after a commit (the transactional outbox): :func:`publish_after_commit` keeps the
deliveries on the session and publishes them when, and only if, its transaction commits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import cache
from typing import Any

from celery import Celery
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from webhooks.core.config import get_settings

log = logging.getLogger("webhooks.broker")

DELIVERIES_QUEUE = "deliveries"
"""First attempts (and deliveries released or found lost by the sweeper before any attempt)."""
RETRIES_QUEUE = "retries"
"""Retries: a separate queue, so retries never queue ahead of first attempts."""
DEAD_LETTER_QUEUE = "dead_letter"
"""Deliveries that failed for good, one message each."""
SWEEP_QUEUE = "sweep"
"""Beat's sweeps alone: a backlog of deliveries or retries never holds one up, so the sweeper
still runs (and republishes what the broker lost) exactly when they pile up."""

DELIVER_TASK = "webhooks.deliver"
DEAD_LETTER_TASK = "webhooks.dead_letter"
SWEEP_TASK = "webhooks.sweep"

MAX_COUNTDOWN = 60
"""Longest delay, in seconds, that rides a Celery countdown; longer waits are the sweeper's.

A countdown task sits unacknowledged in a worker's memory until it is due; on Redis it is
handed to another worker when ``visibility_timeout`` passes first, and is then sent twice.
Keeping countdowns short (and the visibility timeout long) avoids that trap entirely.
"""

VISIBILITY_TIMEOUT = 2 * 3600
"""Seconds before Redis gives an unacknowledged message to another worker (see above)."""

REDIS_MAX_CONNECTIONS = 2000
"""Redis connections a process may open per kombu channel: above any gevent ``-c`` the
operations guide recommends (the Procfile's 1,000, up to 2,000), as every finishing greenlet
may ack at once."""

REDIS_TRANSPORT = "webhooks.broker.redis_transport:Transport"
"""kombu's Redis transport with one client per channel (:mod:`webhooks.broker.redis_transport`)."""

_PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.2}
"""Enough to get past a stale pooled connection, short enough not to stall a producer."""

_OUTBOX_KEY = "webhooks.outbox"


@dataclass(frozen=True)
class DeliveryRef:
    """What a task message carries (the id) and shows in Flower (endpoint and type)."""

    id: str
    endpoint_id: str
    event_type: str
    attempts: int = 0
    #: Seconds until it is due, as a countdown (a rate-limit slot ahead); 0: now.
    delay: float = 0.0
    #: It holds a rate-limit slot (:mod:`webhooks.delivery.waiting`).
    admitted: bool = False

    @property
    def queue(self) -> str:
        """First attempts go on ``deliveries``; retries and slot holders on ``retries``. A
        slot holder's message must not queue behind the rest of its endpoint's backlog, which
        arrives on ``deliveries`` all at once and is seen (and parked) only after it."""
        return RETRIES_QUEUE if self.attempts or self.admitted else DELIVERIES_QUEUE


def celery_config(broker_url: str) -> dict[str, Any]:
    """What the producer and the workers must agree on: format, queues, routing, transport."""
    config: dict[str, Any] = {
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "task_default_queue": DELIVERIES_QUEUE,
        # Declared, so that a worker started without -Q consumes all of them.
        "task_queues": {
            queue: {} for queue in (DELIVERIES_QUEUE, RETRIES_QUEUE, DEAD_LETTER_QUEUE, SWEEP_QUEUE)
        },
        "task_routes": {
            DELIVER_TASK: {"queue": DELIVERIES_QUEUE},
            DEAD_LETTER_TASK: {"queue": DEAD_LETTER_QUEUE},
            SWEEP_TASK: {"queue": SWEEP_QUEUE},
        },
        "task_publish_retry_policy": _PUBLISH_RETRY,
        "broker_connection_retry_on_startup": True,
    }
    if broker_url.startswith(("redis:", "rediss:")):
        config["broker_transport"] = REDIS_TRANSPORT
        # Other transports refuse these options (the SQLAlchemy one hands them to its engine).
        config["broker_transport_options"] = {
            "visibility_timeout": VISIBILITY_TIMEOUT,
            "socket_connect_timeout": 5,
            # kombu's default of 10 Redis connections per channel is too few for a gevent
            # worker: with acks_late every finishing greenlet acks on a pooled connection of
            # its own, and a burst of more than 10 fails with "Too many connections" (the
            # message then stays unacked until the visibility timeout).
            "max_connections": REDIS_MAX_CONNECTIONS,
        }
    return config


@cache
def _app_for(broker_url: str) -> Celery:
    # Not the current app: a producer may have a Celery app of its own.
    app = Celery("webhooks", broker=broker_url, set_as_current=False)
    app.conf.update(celery_config(broker_url))
    return app


def celery_app() -> Celery:
    """The process's Celery app on the configured broker (the workers configure it further)."""
    return _app_for(get_settings().broker_url)


def publish(refs: Sequence[DeliveryRef], *, countdown: float | None = None) -> int:
    """Send one ``webhooks.deliver`` task per delivery; returns how many were sent.

    ``countdown`` applies to all; without it, each goes after its own ``delay``.

    Stops at the first failure: the broker is then most likely down for the rest too, and
    every one of them is in the database for the sweeper.
    """
    if not refs:
        return 0
    app = celery_app()
    sent = 0
    try:
        # Several messages (a fan-out, a sweep) go out in one Redis round trip: kombu's
        # producer batch pipelines the pushes and sends them as the block ends.
        with (
            app.producer_or_acquire() as producer,
            producer.batch() if len(refs) > 1 else nullcontext(),
        ):
            for ref in refs:
                app.send_task(
                    DELIVER_TASK,
                    args=[ref.id],
                    queue=ref.queue,
                    countdown=countdown if countdown is not None else (ref.delay or None),
                    producer=producer,
                    argsrepr=f"{ref.id} {ref.event_type} -> {ref.endpoint_id}",
                )
                sent += 1
    except Exception:
        if len(refs) > 1:
            sent = 0  # a failed batch: which of its messages arrived is unknown
        # A single message can fail after it was counted (as the producer is released):
        # whether it arrived is unknown, and it is the one named.
        unsent = refs[sent:] or refs[-1:]
        log.exception(
            "could not publish %d of %d deliveries (the sweeper will); first: %s",
            len(unsent),
            len(refs),
            unsent[0].id,
        )
    return sent


def publish_dead_letter(delivery_id: str) -> bool:
    """Send the ``webhooks.dead_letter`` task for a delivery that failed for good."""
    try:
        celery_app().send_task(DEAD_LETTER_TASK, args=[delivery_id], queue=DEAD_LETTER_QUEUE)
    except Exception:
        log.exception("could not publish the dead letter of delivery %s", delivery_id)
        return False
    return True


def publish_after_commit(session: Session, refs: Iterable[DeliveryRef]) -> None:
    """Publish ``refs`` when the session's transaction commits; forget them if it rolls back.

    Each batch is tied to the innermost transaction open now, so rolling back a SAVEPOINT
    drops only what was added inside it; closing the session without a commit drops all.
    """
    batch = list(refs)
    if not batch:
        return
    pending: list[tuple[SessionTransaction, list[DeliveryRef]]] | None = session.info.get(
        _OUTBOX_KEY
    )
    if pending is None:
        pending = session.info[_OUTBOX_KEY] = []
        event.listen(session, "after_commit", _publish_pending)
        event.listen(session, "after_soft_rollback", _drop_rolled_back)
        event.listen(session, "after_transaction_end", _drop_uncommitted)
    transaction = session.get_nested_transaction() or session.get_transaction()
    if transaction is None:  # pragma: no cover - callers have just written in a transaction
        raise RuntimeError("publish_after_commit needs a transaction in progress")
    pending.append((transaction, batch))


def _publish_pending(session: Session) -> None:
    pending = session.info.get(_OUTBOX_KEY)
    if pending:
        refs = [ref for _, batch in pending for ref in batch]
        pending.clear()
        publish(refs)


def _drop_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    pending = session.info.get(_OUTBOX_KEY)
    if pending:
        pending[:] = [
            (transaction, batch)
            for transaction, batch in pending
            if not _within(transaction, previous_transaction)
        ]


def _drop_uncommitted(session: Session, transaction: SessionTransaction) -> None:
    """A session closed without committing: its outermost transaction ends, unpublished."""
    pending = session.info.get(_OUTBOX_KEY)
    if pending and transaction.parent is None:
        pending.clear()


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False
