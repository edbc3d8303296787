"""The delivery engine: claiming, attempting and recording, retries, the sweeper, redelivery
and dead letters."""
