"""Helpers several scenarios share: loading a backlog, draining it, pacing sends."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from bench import fixtures
from bench.context import Bench
from bench.fixtures import EVENT_TYPE, Target
from bench.names import NAIVE_QUEUE, NAIVE_TASK, NOOP_QUEUE, NOOP_TASK
from bench.pools import Worker
from webhooks.broker.publishing import DELIVERIES_QUEUE

#: What each kind of work consumes.
QUEUES = {"noop": NOOP_QUEUE, "naive": NAIVE_QUEUE, "engine": DELIVERIES_QUEUE}


def publish_baseline(
    kind: str, jobs: Sequence[tuple[str, str, str, str, str]], timeout: float = 10.0
) -> None:
    """Publish baseline tasks through the library's own producer app and connection pool."""
    from webhooks.broker.publishing import celery_app

    app = celery_app()
    with app.producer_or_acquire() as producer:
        for job in jobs:
            if kind == "noop":
                app.send_task(NOOP_TASK, args=[job[0]], queue=NOOP_QUEUE, producer=producer)
            else:
                app.send_task(
                    NAIVE_TASK, args=[*job, timeout], queue=NAIVE_QUEUE, producer=producer
                )


def enqueue(targets: Sequence[Target], index: int) -> str:
    """One event through the public producer API, to target ``index`` (round robin)."""
    from webhooks import enqueue_event

    target = targets[index % len(targets)]
    return enqueue_event(EVENT_TYPE, fixtures.sample_data(index), tenant=target.uid)


def preload(
    bench: Bench, scenario: str, kind: str, pool: str, targets: Sequence[Target], count: int
) -> None:
    """Put ``count`` messages of ``kind`` in the broker, no worker consuming them yet."""
    with bench.phase(scenario, f"publish {kind} ({pool})") as phase:
        if kind == "engine":
            for index in range(count):
                enqueue(targets, index)
        else:
            jobs = [fixtures.baseline_job(targets[i % len(targets)], i) for i in range(count)]
            publish_baseline(kind, jobs)
        phase.ops = count


def done_check(bench: Bench, kind: str, count: int) -> Callable[[], bool]:
    """Whether all ``count`` messages of ``kind`` have been fully handled."""
    if kind == "noop":
        client = bench.env.redis()

        def broker_empty() -> bool:
            with client.pipeline() as pipe:
                pipe.llen(NOOP_QUEUE)
                pipe.hlen("unacked")
                queued, unacked = pipe.execute()
            return bool(queued == 0 and unacked == 0)

        return broker_empty

    rows = (
        "SELECT count(*) FROM attempts"
        if kind == "naive"
        else "SELECT count(*) FROM deliveries WHERE status = 'succeeded'"
    )

    def received_and_recorded() -> bool:
        # The receiver first (cheap); the table only once every request has arrived.
        return bench.receiver.count() >= count and bench.scalar(rows) >= count

    return received_and_recorded


def drain(
    bench: Bench,
    scenario: str,
    kind: str,
    pool: str,
    workers: Sequence[Worker],
    targets: Sequence[Target],
    count: int,
) -> float | None:
    """Preload ``count`` messages, let ``workers`` drain them; deliveries (tasks) per second.

    ``pool`` labels the phase (``gevent``, ``gevent x2``...). The clock runs from the moment
    the first worker is told to consume to the moment the last message is handled: for the
    engine and the naive task, the receiver has every request and the database has every row.
    """
    bench.truncate_history()
    bench.receiver.reset()
    preload(bench, scenario, kind, pool, targets, count)
    queue = QUEUES[kind]
    timeout = 120 + count / 10
    with bench.phase(scenario, f"{kind} ({pool})", workers, count_wal=True) as phase:
        check = done_check(bench, kind, count)
        started = time.monotonic()
        for worker in workers:
            worker.consume(queue)
        finished = fixtures.wait_for(check, timeout)
        phase.ops = count
        phase.seconds = (finished or time.monotonic()) - started
    for worker in workers:
        worker.stop_consuming(queue)
    if finished is None:
        print(f"bench: {kind} ({pool}) did not finish {count} in {timeout:.0f}s")
        return None
    return count / (finished - started)


def send_paced(
    count: int, rate: float, send: Callable[[int], str]
) -> tuple[dict[str, float], float]:
    """Call ``send(i)`` at ``rate`` per second (open loop); ids → monotonic send start.

    Returns also the achieved offered rate (lower than asked if ``send`` cannot keep up).
    """
    starts: dict[str, float] = {}
    begin = time.monotonic()
    last = begin
    for index in range(count):
        delay = begin + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        last = time.monotonic()
        starts[send(index)] = last
    achieved = (count - 1) / (last - begin) if count > 1 and last > begin else rate
    return starts, achieved


def latencies_ms(
    records: Sequence[tuple[str | None, str, float]],
    starts: dict[str, float],
    path_prefix: str = "/",
) -> tuple[list[float], int]:
    """Enqueue → receipt of the first receipt of each id; and how many ids came twice."""
    seen: dict[str, float] = {}
    duplicates = 0
    for webhook_id, path, received in records:
        if webhook_id is None or webhook_id not in starts or not path.startswith(path_prefix):
            continue
        if webhook_id in seen:
            duplicates += 1
            continue
        seen[webhook_id] = (received - starts[webhook_id]) * 1000
    return list(seen.values()), duplicates
