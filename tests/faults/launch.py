"""``celery`` with the fault tests' short recovery windows: ``python -m tests.faults.launch``.

The arguments are the ``celery`` command line's (``-A workers worker -P gevent ...``). Before
handing over to Celery it shortens, from the environment, the windows that production keeps
long and that no setting exposes yet (see docs/reliability.md):

- ``FAULTS_CLAIM_SECONDS``: :data:`webhooks.delivery.CLAIM_DURATION` (45 s), how long a
  worker's claim holds a delivery; a worker killed mid-attempt leaves its claims this long;
- ``FAULTS_REPUBLISH_AFTER_SECONDS``: :data:`webhooks.sweeper.REPUBLISH_AFTER` (180 s), how long
  a published delivery may go unclaimed before the sweeper publishes it again;
- ``FAULTS_SWEEP_INTERVAL_SECONDS``: :data:`workers.app.SWEEP_INTERVAL` (5 s), for beat.

Everything else is the production code path, unchanged.
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

    from webhooks import delivery, sweeper
    from workers.app import app

    claim = _seconds("FAULTS_CLAIM_SECONDS")
    if claim is not None:
        delivery.CLAIM_DURATION = timedelta(seconds=claim)
    republish = _seconds("FAULTS_REPUBLISH_AFTER_SECONDS")
    if republish is not None:
        window = timedelta(seconds=republish)
        sweeper.REPUBLISH_AFTER = window
        # The window is a keyword default, bound when the functions were defined.
        for function in (sweeper.sweep, sweeper.due_for_publishing):
            defaults = function.__kwdefaults__ or {}
            if "republish_after" in defaults:
                defaults["republish_after"] = window
    interval = _seconds("FAULTS_SWEEP_INTERVAL_SECONDS")
    if interval is not None:
        sweep = app.conf.beat_schedule["sweep"]
        sweep["schedule"] = interval
        sweep.setdefault("options", {})["expires"] = interval

    from celery.bin.celery import main as celery_main

    sys.argv = ["celery", *sys.argv[1:]]
    sys.exit(celery_main())


if __name__ == "__main__":
    main()
