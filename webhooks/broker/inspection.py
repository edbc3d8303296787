"""What the broker holds: the messages ready in each queue, for the sweeper and the metrics.

A passive ``queue.declare`` answers this on every kombu transport: Redis sums the queue's
priority lists (``LLEN``), RabbitMQ reports its own count, the embedded SQLite broker counts
its rows. Messages a worker has taken (Redis: kombu's ``unacked`` hash; RabbitMQ: the
consumer's channel) are not in the count: they are being run, or waiting for their countdown,
or held by a worker that died (on Redis until ``visibility_timeout``).
"""

from __future__ import annotations

from collections.abc import Iterable

from kombu.connection import Connection

from webhooks.broker.publishing import celery_app

TIMEOUT = 1.0
"""Seconds the broker has to answer an inspection (a hung broker must not hang the caller)."""


def broker_connection(budget: float = TIMEOUT) -> Connection:
    """A new (not pooled) connection to the configured broker with short socket timeouts."""
    app = celery_app()
    options: dict[str, float] = {}
    if str(app.conf.broker_url).startswith(("redis:", "rediss:")):
        # Redis reads these from the transport options, not from connect_timeout (and the
        # SQLAlchemy transport would hand unknown options to its engine, which refuses them).
        options = {"socket_connect_timeout": budget, "socket_timeout": budget}
    connection: Connection = app.connection_for_write(
        connect_timeout=budget, transport_options=options
    )
    return connection


def queue_depths(queues: Iterable[str], budget: float = TIMEOUT) -> dict[str, int]:
    """Each queue's ready messages; raises what the broker raised if it cannot answer.

    A queue that does not exist (Redis deletes an empty list and forgets everything when
    flushed; RabbitMQ before the first worker declared it) has 0 messages.
    """
    depths: dict[str, int] = {}
    with broker_connection(budget) as connection:
        connection.ensure_connection(max_retries=0, timeout=budget)
        for queue in queues:
            channel = connection.channel()
            try:
                depths[queue] = int(channel.queue_declare(queue=queue, passive=True).message_count)
            except connection.channel_errors:
                depths[queue] = 0
            finally:
                try:
                    channel.close()
                except connection.channel_errors + connection.connection_errors:
                    pass  # the channel an AMQP 404 closed
    return depths
