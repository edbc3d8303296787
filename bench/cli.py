"""The command line: choose scenarios and sizes, run them, report.

A run always cleans up after itself (workers' process groups, the receiver, the database),
also on Ctrl-C or SIGTERM. It exits 0 when every scenario ran, whether or not the figures
met their targets — this is a measurement, not a test — and 1 when a scenario crashed.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import FrameType

from bench import meta, plot, report
from bench.context import POOLS, Bench, Options
from bench.provision import DEFAULT_REDIS_DB, provision
from bench.receiver import Receiver
from bench.scenarios import SCENARIOS, runner, slow
from bench.stats import Figure
from tests.services import free_port

REPO = Path(__file__).resolve().parent.parent
CAVEAT = (
    "This machine is shared (2 cores, other engineers' test suites run on it) and its speed "
    "drifts by up to 50% within an hour: the absolute figures are indicative; the ratios, "
    "measured in the same run, are what counts. The whole-machine CPU column shows how busy "
    "the machine was beyond the benchmark's own processes."
)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of the webhook dispatcher against baselines in the same run.",
        epilog="scenarios: "
        + "; ".join(f"{name}: {what}" for name, (_, what) in SCENARIOS.items()),
    )
    parser.add_argument("scenarios", nargs="*", default=["all"], help="'all' or scenario names")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a few minutes)")
    parser.add_argument("--size", type=int, help="deliveries per throughput phase (20000)")
    parser.add_argument("--rounds", type=int, help="interleaved repetitions (1)")
    parser.add_argument("--pools", help="comma-separated pools (gevent,prefork)")
    parser.add_argument("--gevent-concurrency", type=int, help="-c of gevent workers (1000)")
    parser.add_argument(
        "--compare-gevent-concurrency",
        help="throughput: comma-separated extra gevent -c to measure in the same run (none)",
    )
    parser.add_argument("--prefork-concurrency", type=int, help="-c of prefork workers (2)")
    parser.add_argument("--rate", type=float, help="latency offered rate (half the max)")
    parser.add_argument("--latency-seconds", type=float, help="length of a latency phase")
    parser.add_argument("--hol-events", type=int, help="events to healthy endpoints (2000)")
    parser.add_argument("--hol-timeout", type=int, help="timeout of the hanging endpoints (5)")
    parser.add_argument("--rss-deliveries", type=int, help="deliveries of the RSS run")
    parser.add_argument("--enqueue-ops", type=int, help="enqueue calls per producer per phase")
    parser.add_argument(
        "--history-attempts",
        type=int,
        help="attempts in the partitions scenario's kept history (20000000)",
    )
    parser.add_argument("--loglevel", help="workers' log level (WARNING)")
    parser.add_argument("--redis-db", type=int, default=DEFAULT_REDIS_DB)
    parser.add_argument("--no-write", action="store_true", help="print only: no JSON, no docs")
    parser.add_argument(
        "--output-dir",
        type=Path,
        help="write results/, performance.md and performance.png here instead of the tree",
    )
    return parser.parse_args(argv)


def _selected(names: list[str]) -> list[str]:
    if names == ["all"] or not names:
        return list(SCENARIOS)
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(unknown)}; try --list")
    return names


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.list:
        for name, (_, what) in SCENARIOS.items():
            print(f"{name:12} {what}")
        return 0
    names = _selected(args.scenarios)
    pools = tuple(args.pools.split(",")) if args.pools else POOLS
    if not set(pools) <= set(POOLS):
        raise SystemExit(f"--pools: choose among {', '.join(POOLS)}")
    options = Options.build(
        quick=args.quick,
        size=args.size,
        pools=pools,
        rounds=args.rounds,
        gevent_concurrency=args.gevent_concurrency,
        prefork_concurrency=args.prefork_concurrency,
        compare_gevent_concurrency=(
            tuple(int(c) for c in args.compare_gevent_concurrency.split(","))
            if args.compare_gevent_concurrency
            else None
        ),
        rate=args.rate,
        latency_seconds=args.latency_seconds,
        hol_events=args.hol_events,
        hol_timeout=args.hol_timeout,
        rss_deliveries=args.rss_deliveries,
        enqueue_ops=args.enqueue_ops,
        history_attempts=args.history_attempts,
        loglevel=args.loglevel,
    )
    command = "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])
    signal.signal(signal.SIGTERM, _terminate)

    env = provision(args.redis_db)
    receiver: Receiver | None = None
    bench: Bench | None = None
    crashed = False
    try:
        # A host address per endpoint: the slow scenario's 200 endpoints are the most.
        receiver = Receiver(free_port(), hosts=max(options.endpoints, slow.ENDPOINTS))
        log_dir = tempfile.mkdtemp(prefix="bench-logs-")
        bench = Bench(options, env, receiver, log_dir)
        run_meta = meta.collect(env.redis_url)
        print(
            f"bench: {command}  (database {env.database_name}, broker {env.redis_url}, "
            f"worker logs in {log_dir})",
            flush=True,
        )
        for name in names:
            print(f"== {name}: {SCENARIOS[name][1]}", flush=True)
            started = time.monotonic()
            try:
                runner(name)(bench)
            except Exception as exc:
                crashed = True
                traceback.print_exc()
                bench.add(Figure(name, "scenario crashed", None, "", note=f"crashed: {exc}"))
            finally:
                bench.kill_all_workers()
                env.flush_redis()
            print(f"   {name} took {time.monotonic() - started:.0f}s", flush=True)
        run_meta["load_average_end"] = meta.load_average()
        run_meta["caveat"] = CAVEAT
    finally:
        if bench is not None:
            bench.kill_all_workers()
        if receiver is not None:
            receiver.stop()
        env.teardown()

    report.print_tables(bench.figures, bench.phases)
    if not args.no_write:
        _write(args, command, options, run_meta, bench)
    return 1 if crashed else 0


def _write(
    args: argparse.Namespace,
    command: str,
    options: Options,
    run_meta: dict[str, object],
    bench: Bench,
) -> None:
    docs_dir = args.output_dir or REPO / "docs"
    results_dir = (args.output_dir / "results") if args.output_dir else REPO / "bench" / "results"
    document = report.results_document(
        command, vars(options), run_meta, bench.figures, bench.phases, bench.series
    )
    json_path = report.write_json(document, results_dir)
    plot_path = docs_dir / "performance.png"
    drawn = plot.draw(bench.series, plot_path)
    shown = json_path.relative_to(REPO) if json_path.is_relative_to(REPO) else json_path
    docs = report.write_docs(
        docs_dir,
        command,
        run_meta,
        bench.figures,
        bench.phases,
        shown,
        plot_path.name if drawn else None,
    )
    print(f"bench: wrote {json_path}, {docs}" + (f", {plot_path}" if drawn else ""))
