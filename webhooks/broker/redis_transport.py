"""kombu's Redis transport, with one Redis client per channel instead of one per command.

kombu 5.7's Redis channel builds a new ``redis.Redis`` object for every message it puts, acks,
records as unacked or sends as an event (``Channel.conn_or_acquire`` calls
``_create_client()`` each time). The object is only a front for the channel's connection
pool, but building one fills a dict of ~200 response callbacks: 0.2-0.4 ms of CPU per call,
17% of publishing a three-delivery fan-out and 7.6% of a gevent worker's CPU (pyinstrument
and py-spy, see docs/performance.md). A ``redis.Redis`` over a connection pool is safe to
share between threads and greenlets (every command checks a connection out of the pool), so
the channel keeps one, and builds a new one only when its pool was replaced (a reconnect).
The asynchronous client of the worker's event loop is kombu's own, unchanged.

Selected by :func:`webhooks.broker.celery_config` for ``redis://`` and ``rediss://`` brokers.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis


class Channel(redis.Channel):
    _shared_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        client = self._shared_client
        if client is None or client.connection_pool is not self.pool:
            client = self._shared_client = super()._create_client()  # type: ignore[no-untyped-call]
        return client


class Transport(redis.Transport):
    Channel = Channel
