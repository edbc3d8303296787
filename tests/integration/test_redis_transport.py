"""The library's Redis transport shares one client per channel, on a real Redis."""

from __future__ import annotations

from webhooks.broker.publishing import celery_app
from webhooks.broker.redis_transport import Channel


def test_a_channel_shares_one_client_until_its_pool_is_replaced() -> None:
    with celery_app().connection_for_write() as connection:
        channel = connection.default_channel
        assert isinstance(channel, Channel)
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
            assert first.ping()
        channel._pool = None  # what kombu does when the channel reconnects
        with channel.conn_or_acquire() as third:
            assert third is not first
            assert third.connection_pool is channel.pool
            assert third.ping()
