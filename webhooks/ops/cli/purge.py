"""``webhooks purge``: the history retention, now rather than at beat's next hour."""

from __future__ import annotations

import json

import click

from webhooks.history import retention


@click.command("purge")
def purge() -> None:
    """Delete the history older than WEBHOOKS_HISTORY_RETENTION_DAYS now; prints the counts."""
    purged = retention.purge()
    click.echo(
        json.dumps(
            {
                "attempts": purged.attempts,
                "deliveries": purged.deliveries,
                "events": purged.events,
                "partitions": purged.partitions,
                "attempt_hours": purged.attempt_hours,
            }
        )
    )
