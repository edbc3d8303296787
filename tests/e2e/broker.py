"""A Redis database of the test's own as the broker, and a look at what is queued in it.

The suite's Redis may be shared by other runs (other engineers, CI jobs) whose workers
consume the same queue names; a test that counts messages, flushes, or runs a worker takes a
database (1-15) nobody else holds, marked by a lock key, and empties it when done.
"""

from __future__ import annotations

import base64
import json
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from sqlalchemy.engine import make_url

_LOCK = "webhooks-tests:owner"
_LOCK_SECONDS = 900


@contextmanager
def exclusive_redis_db(base_url: str) -> Iterator[str]:
    """The URL of a Redis database this test alone uses; flushed before and after."""
    owner = f"{os.getpid()}-{random.random()}"
    for db in random.sample(range(1, 16), 15):
        url = make_url(base_url).set(database=str(db)).render_as_string(hide_password=False)
        client = redis.Redis.from_url(url)
        if not client.set(_LOCK, owner, nx=True, ex=_LOCK_SECONDS):
            continue
        try:
            flush(url)
            yield url
        finally:
            client.flushdb()
            client.close()
        return
    raise RuntimeError("every Redis database 1-15 is held by another test run")


def flush(url: str) -> None:
    """Empty the database, keeping its lock."""
    client = redis.Redis.from_url(url)
    owner = client.get(_LOCK)
    client.flushdb()
    if owner is not None:
        client.set(_LOCK, owner, ex=_LOCK_SECONDS)
    client.close()


def queued(url: str, queue: str) -> list[tuple[str, list[object]]]:
    """The ``(task name, args)`` of each message waiting in ``queue``, oldest first."""
    client = redis.Redis.from_url(url)
    try:
        raw = client.lrange(queue, 0, -1)
    finally:
        client.close()
    messages = []
    for item in reversed(raw):  # kombu pushes on the left, pops on the right
        message = json.loads(item)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        messages.append((message["headers"]["task"], args))
    return messages


@contextmanager
def environment(**variables: str) -> Iterator[None]:
    """Run with these environment variables, the settings read anew on entry and exit."""
    from webhooks.core.config import get_settings

    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()
