"""The delivery engine: one attempt of a delivery (``engine``: orchestration; ``state``: the
lease and every state transition; ``job``: what an attempt reads; ``postgres`` and
``portable``: the two storage paths, the same SQL), retries, the sweeper, redelivery and dead
letters."""
