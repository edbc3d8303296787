"""Names of the baseline tasks and queues, importable without importing any Celery app.

The harness and the producer processes publish baseline tasks by name through the library's
own producer app. They must never import :mod:`bench.baseline_tasks`, which imports the
engine's :mod:`workers.app`: that module configures the library's (cached) Celery app for
consumers, and a producer that imported it would publish with worker settings — not what a
producer in production does.
"""

NOOP_TASK = "bench.noop"
NAIVE_TASK = "bench.naive"
NOOP_QUEUE = "bench_noop"
NAIVE_QUEUE = "bench_naive"
