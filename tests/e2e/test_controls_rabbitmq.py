"""The rate limit end to end on RabbitMQ: the same test as on Redis, with a worker on
``amqp://`` (its virtual host set up by :mod:`tests.e2e.test_rabbitmq`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e import test_controls_e2e as on_redis
from tests.e2e import test_rabbitmq
from tests.e2e.broker import environment

pytestmark = pytest.mark.e2e

amqp_url = test_rabbitmq.amqp_url
worker = test_rabbitmq.worker
tenant = test_rabbitmq.tenant
dead_letter_file = test_rabbitmq.dead_letter_file


@pytest.fixture(autouse=True)
def publishing_to_rabbitmq(amqp_url: str) -> Iterator[None]:
    """The test process publishes (enqueue_event) to the worker's broker."""
    with environment(WEBHOOKS_BROKER_URL=amqp_url):
        yield


test_rate_limit_over_amqp = on_redis.test_a_rate_limit_spaces_the_sends_and_delivers_all
