"""Object ids: a type prefix plus a ULID.

ULIDs sort by creation time, so every list can page by id alone (keyset pagination on
the primary key) and an index on ``(endpoint_id, id)`` is also an index on creation time.
The prefix (``evt_``, ``ep_``...) tells a support engineer what an id names at a glance.
"""

import os
import re
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

#: What an id looks like: a lowercase prefix, ``_`` and a ULID.
ID_PATTERN = re.compile(r"[a-z]{1,16}_[0-9A-HJKMNP-TV-Z]{26}")


def ulid(timestamp_ms: int | None = None) -> str:
    """A 26-character ULID: 48 bits of milliseconds, then 80 random bits."""
    ms = time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, index = divmod(value, 32)
        chars.append(_CROCKFORD[index])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """A fresh id such as ``evt_01JD3Z...``."""
    return f"{prefix}_{ulid()}"
