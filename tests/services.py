"""Real Postgres and Redis for the test suite.

The suite uses the servers at ``WEBHOOKS_TEST_DATABASE_URL`` / ``WEBHOOKS_TEST_REDIS_URL``
(127.0.0.1 by default). Where none answers but the server binaries are installed, it starts
throwaway ones in a temporary directory; where neither is possible it stops the run with one
line saying what to install. It never skips.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg2
import redis
from sqlalchemy.engine import make_url

DEFAULT_DATABASE_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class ServiceUnavailable(RuntimeError):
    """A service is neither reachable nor startable; the message says what to install."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` until it is true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def postgres_answers(url: str) -> bool:
    parsed = make_url(url)
    try:
        psycopg2.connect(
            host=parsed.host,
            port=parsed.port or 5432,
            user=parsed.username,
            dbname=parsed.database,
            connect_timeout=2,
        ).close()
    except psycopg2.OperationalError:
        return False
    return True


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


def _postgres_bindir() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _as_postgres_user(args: list[str]) -> list[str]:
    """Postgres refuses to run as root; drop to the ``postgres`` user when we are root."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class ThrowawayPostgres:
    """A Postgres cluster in a temporary directory, on a free port, that can be restarted."""

    def __init__(self) -> None:
        bindir = _postgres_bindir()
        if bindir is None:
            raise ServiceUnavailable(
                "Postgres is not reachable and no initdb was found: install PostgreSQL "
                "(apt-get install postgresql) or set WEBHOOKS_TEST_DATABASE_URL"
            )
        self.bindir = bindir
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="webhooks-pg-"))
        self.data = self.dir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        subprocess.run(
            _as_postgres_user(
                [str(bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust"]
            ),
            check=True,
            capture_output=True,
        )
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"
        self.start()

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres_user([str(self.bindir / "pg_ctl"), "-D", str(self.data), *args]),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg_ctl("-w", "-l", str(self.dir / "log"), "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-w", "-m", mode, "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


class ThrowawayRedis:
    """A non-persistent redis-server on a free port, that can be restarted (empty) on it."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceUnavailable(
                "Redis is not reachable and redis-server was not found: install Redis "
                "(apt-get install redis-server) or set WEBHOOKS_TEST_REDIS_URL"
            )
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(lambda: redis_answers(self.url), 10, "throwaway redis-server")

    def stop(self) -> None:
        """Stop the server: everything it held is gone, as after a crash without persistence."""
        self.process.terminate()
        self.process.wait(10)

    def destroy(self) -> None:
        self.stop()


class ThrowawayRabbitMQ:
    """A RabbitMQ node of its own (name, ports, data and cookie in a temporary directory).

    Its first start takes 7 to 8 s on the 2-core development VM, a restart 3.4 to 4.3 s; it
    runs next to the node the suite shares (which it never touches) and keeps its durable
    queues across :meth:`stop` and :meth:`start`.
    """

    def __init__(self) -> None:
        server = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
        if not server.exists():
            raise ServiceUnavailable(
                "rabbitmq-server was not found: install RabbitMQ (apt-get install "
                "rabbitmq-server) to run the RabbitMQ restart test"
            )
        self.bindir = server.parent
        self.dir = Path(tempfile.mkdtemp(prefix="webhooks-rabbitmq-"))
        (self.dir / "enabled_plugins").write_text("[].\n")
        self.port = free_port()
        self.node = f"webhooks-{self.port}@localhost"
        self.env = {
            **os.environ,
            "HOME": str(self.dir),  # its own Erlang cookie
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq"),
        }
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        self.start()

    def start(self, timeout: float = 90) -> float:
        """Start the node and wait until it accepts AMQP connections; returns the seconds."""
        started = time.monotonic()
        self.process = subprocess.Popen(
            [str(self.bindir / "rabbitmq-server")],
            env=self.env,
            stdout=(self.dir / "server.log").open("a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(self._answers, timeout, "the throwaway RabbitMQ node to accept connections")
        self._ctl("await_startup", "--timeout", str(int(timeout)))
        return time.monotonic() - started

    def stop(self) -> None:
        """Stop the node (``rabbitmqctl stop``): connections drop, durable messages stay."""
        self._ctl("stop")
        self.process.wait(30)

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            if self.process.poll() is None:
                self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [str(self.bindir / "rabbitmqctl"), "-n", self.node, *args],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            log = (self.dir / "server.log").read_text(errors="replace")[-2000:]
            raise ServiceUnavailable(f"the throwaway RabbitMQ node exited:\n{log}")
        try:
            socket.create_connection(("127.0.0.1", self.port), 1).close()
        except OSError:
            return False
        return True


def postgres_server() -> tuple[str, Callable[[], None]]:
    """The admin URL of a reachable Postgres, and how to clean up what was started for it."""
    url = os.environ.get("WEBHOOKS_TEST_DATABASE_URL", DEFAULT_DATABASE_URL)
    if postgres_answers(url):
        return url, lambda: None
    server = ThrowawayPostgres()
    return server.url, server.destroy


def redis_server() -> tuple[str, Callable[[], None]]:
    """The URL of a reachable Redis, and how to clean up what was started for it."""
    url = os.environ.get("WEBHOOKS_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    if redis_answers(url):
        return url, lambda: None
    server = ThrowawayRedis()
    return server.url, server.destroy


def create_database(admin_url: str, name: str) -> str:
    """Create an empty database next to ``admin_url``'s and return its URL."""
    _admin_execute(admin_url, f'CREATE DATABASE "{name}"')
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    _admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin_execute(admin_url: str, statement: str) -> None:
    parsed = make_url(admin_url)
    connection = psycopg2.connect(
        host=parsed.host, port=parsed.port or 5432, user=parsed.username, dbname=parsed.database
    )
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()
