"""``celery`` with the fault tests' short claim lease: ``python -m tests.faults.launch``.

The arguments are the ``celery`` command line's (``-A workers worker -P gevent ...``). Before
handing over to Celery it shortens, from ``FAULTS_CLAIM_SECONDS``,
:data:`webhooks.delivery.CLAIM_DURATION` (45 s: above the longest endpoint timeout), how long
a worker's claim holds a delivery; a worker killed mid-attempt leaves its claims this long.
The sweeper's windows are ordinary settings (``WEBHOOKS_REPUBLISH_AFTER_SECONDS``,
``WEBHOOKS_SWEEP_INTERVAL_SECONDS``), which the harness sets. Everything else is the
production code path, unchanged.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta


def _seconds(name: str) -> float | None:
    value = os.environ.get(name)
    return float(value) if value else None


def main() -> None:
    from celery import maybe_patch_concurrency

    # As ``celery`` itself does: gevent must patch before anything opens a socket.
    maybe_patch_concurrency(sys.argv)

    from webhooks.delivery import engine as delivery

    claim = _seconds("FAULTS_CLAIM_SECONDS")
    if claim is not None:
        delivery.CLAIM_DURATION = timedelta(seconds=claim)

    from celery.bin.celery import main as celery_main

    sys.argv = ["celery", *sys.argv[1:]]
    sys.exit(celery_main())


if __name__ == "__main__":
    main()
