"""``webhooks dev``: the demo from a clean directory, a clean stop on SIGINT or SIGTERM at any
moment (in the foreground or as a background job), and a clear error when its port is taken."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.services import free_port, wait_until
from webhooks.core.config import get_settings
from webhooks.ops import devstack
from webhooks.ops.cli import main

#: Settings the suite exports that would steer the dev stack off its embedded defaults.
_SUITE_SETTINGS = (
    "WEBHOOKS_DATABASE_URL",
    "WEBHOOKS_BROKER_URL",
    "WEBHOOKS_SECRET_KEY",
    "WEBHOOKS_VAR_DIR",
    "WEBHOOKS_ALLOW_HTTP",
    "WEBHOOKS_ALLOWED_PRIVATE_NETWORKS",
    "XDG_DATA_HOME",
)

WEBHOOKS = str(Path(sys.executable).with_name("webhooks"))


def _embedded_env(home: Path) -> dict[str, str]:
    """The environment of a newcomer: nothing set, a home directory of their own."""
    env = {name: value for name, value in os.environ.items() if name not in _SUITE_SETTINGS}
    env["HOME"] = str(home)
    return env


def _lines(stream: Iterator[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _read_until(lines: queue.Queue[str], marker: str, timeout: float) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while not any(marker in line for line in seen):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {marker!r} within {timeout}s:\n{''.join(seen[-40:])}"
        try:
            seen.append(lines.get(timeout=remaining))
        except queue.Empty:
            continue
    return seen


def _children_of(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid``, children before grandchildren."""
    found = _children_of(pid)
    return found + [grandchild for child in found for grandchild in _descendants(child)]


@contextmanager
def _running(
    command: list[str], cwd: Path, home: Path
) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str]]]:
    """``command`` started as a newcomer would, with its output as a queue of lines.

    However the test ends, nothing it started is left running: a failed assertion before the
    test's own clean stop would otherwise orphan the stack's children, which run in sessions of
    their own and go on consuming the suite's queues.
    """
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=_embedded_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process, _lines(process.stdout)
    finally:
        for pid in [*_descendants(process.pid), process.pid]:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(10)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_dev_demo_delivers_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    home = tmp_path / "home"
    command = [WEBHOOKS, "dev", "--demo", "--port", str(free_port())]
    with _running(command, tmp_path, home) as (process, lines):
        output = _read_until(lines, "demo: delivery dlv_", timeout=90)
        output += _read_until(lines, "Webhook('<secret>').verify(", timeout=5)
        banner = "".join(output)
        var = home / ".local" / "share" / "webhooks"
        token_file = var / "admin-token"
        token = token_file.read_text().strip()
        assert token.startswith("wht_") and f"admin token  {token}" in banner
        assert f"also in {token_file}, mode 0600" in banner
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert "/console" in banner  # the console's URL beside the API's
        assert "sqlite:///" in banner  # the embedded defaults: no Postgres, no Redis
        assert "endpoints    http:// allowed; private networks allowed: 127.0.0.0/8" in banner
        assert "Flower       not started: the embedded broker carries no task events" in banner
        assert any("demo: delivery dlv_" in line and " succeeded" in line for line in output)
        assert "response 204, error None" in banner
        assert "webhook-signature: [redacted]" in banner  # as the history keeps it
        assert "  webhook-signature: v1," in banner  # ... and as the receiver got it
        assert f'curl -s -H "Authorization: Bearer $(cat {token_file})" http://' in banner
        assert "/v1/tenants/demo/endpoints/ep_" in banner and "/secret" in banner
        # The hint works as printed: its curl fetches the secret, its line of Python verifies.
        [curl] = [line.strip() for line in output if line.strip().startswith("curl -s ")]
        fetched = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, check=True)
        secret = json.loads(fetched.stdout)["secret"]
        [verify] = [line.strip() for line in output if line.strip().startswith("Webhook(")]
        verified = subprocess.run(
            [sys.executable, "-c", "from standardwebhooks.webhooks import Webhook\n"
             + verify.replace("<secret>", secret)],
            capture_output=True, text=True,
        )  # fmt: skip
        assert verified.returncode == 0, verified.stderr
        # The embedded defaults live in one place, whatever the current directory.
        assert (var / "webhooks.sqlite3").exists() and not (tmp_path / "var").exists()
        # The Celery lines of every task and beat tick are DEBUG; the attempt has one line.
        assert not any("Sending due task" in line or " received" in line for line in output)
        [attempt] = [line for line in output if "[webhooks.delivery] attempt=" in line]
        assert "succeeded: status=204" in attempt and "event_id=evt_" in attempt

        children = _children_of(process.pid)
        assert len(children) == 3  # api, worker, beat
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        assert "stopped" in "".join(_read_until(lines, "stopped", timeout=5))
        assert not [pid for pid in children if _alive(pid)]


def test_a_second_run_reuses_the_demo_tenant_and_the_admin_token(tmp_path: Path) -> None:
    """Restarts leave nothing behind: the token file's token is shown again, not a new one."""
    home = tmp_path / "home"
    tokens = []
    for _ in range(2):
        command = [WEBHOOKS, "dev", "--demo", "--port", str(free_port())]
        with _running(command, tmp_path, home) as (process, lines):
            output = "".join(_read_until(lines, "demo: delivery dlv_", timeout=90))
            assert " succeeded" in output
            tokens.append(output.split("admin token  ", 1)[1].split()[0])
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
    assert tokens[0] == tokens[1]
    listed = subprocess.run(
        [WEBHOOKS, "tenants", "list"],
        cwd=home,
        env=_embedded_env(home),
        capture_output=True,
        text=True,
        check=True,
    )
    assert ['"uid": "demo"' in line for line in listed.stdout.splitlines()] == [True]


def test_a_background_job_stops_on_sigint_with_every_child(tmp_path: Path) -> None:
    """``webhooks dev &`` from a script: the shell starts it with SIGINT ignored."""
    home = tmp_path / "home"
    port = free_port()
    script = f'"{WEBHOOKS}" dev --port {port} & echo "pid $!"; wait $!; echo "rc $?"'
    with _running(["sh", "-c", script], tmp_path, home) as (_, lines):
        first = _read_until(lines, "pid ", timeout=10)
        pid = int(next(line for line in first if line.startswith("pid ")).split()[1])
        banner = "".join(_read_until(lines, "admin token", timeout=90))
        # Without --allow-local the banner says what is refused and how to allow it.
        assert "endpoints    https:// only; no private addresses (restart with --allow-local" in (
            banner
        )
        wait_until(lambda: len(_children_of(pid)) == 3, 10, "api, worker and beat")
        children = _children_of(pid)
        os.kill(pid, signal.SIGINT)
        rest = "".join(_read_until(lines, "rc ", timeout=30))
        assert "stopped" in rest and "rc 0" in rest
        assert not [child for child in children if _alive(child)]


class _Interrupt:
    """Sends this process ``signum`` at one chosen moment of the dev stack's run."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.sent = False

    def now(self) -> None:
        if not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.signum)


def _sleeper(name: str) -> devstack.Child:
    code = "import time; print('ready.', flush=True); time.sleep(600)"
    return devstack.Child(name, [sys.executable, "-c", code], ready_marker="ready.")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("moment", ["starting", "banner", "demo", "serving"])
def test_a_signal_at_any_moment_stops_every_child_and_returns(
    clean_db: None, monkeypatch: pytest.MonkeyPatch, signum: int, moment: str
) -> None:
    """The signal is sent from inside the run (an injected hook), at each stage in turn: while
    children start, while the banner prints, during the demo, while serving. Each time the run
    returns normally (exit 0), every child has exited, and the previous handlers are back."""
    interrupt = _Interrupt(signum)
    stack = [_sleeper("api"), _sleeper("worker"), _sleeper("beat")]
    monkeypatch.setattr(devstack, "children", lambda *_, **__: stack)
    monkeypatch.setattr(devstack, "_answers", lambda url: True)
    if moment == "starting":
        start = devstack.Child.start

        def start_then_signal(child: devstack.Child, *args: object) -> None:
            start(child, *args)  # type: ignore[arg-type]
            if child.name == "worker":
                interrupt.now()

        monkeypatch.setattr(devstack.Child, "start", start_then_signal)
    if moment == "demo":

        def interrupted_demo(*_: object, stopped: Callable[[], bool], **__: object) -> None:
            interrupt.now()
            assert stopped()  # what the demo's wait loop sees: then it gives up quietly

        monkeypatch.setattr(devstack.demo_flow, "run_demo", interrupted_demo)
    if moment == "serving":
        serve = devstack.serve

        def serve_after_signal(*args: object) -> None:
            interrupt.now()
            serve(*args)  # type: ignore[arg-type]

        monkeypatch.setattr(devstack, "serve", serve_after_signal)
    printed: list[str] = []

    def echo(text: str) -> None:
        printed.append(text)
        if moment == "banner" and "webhooks dev is running" in text:
            interrupt.now()

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    devstack.run(
        get_settings(),
        demo=moment == "demo",
        allow_local=False,
        api_port=free_port(),
        flower_port=0,
        echo=echo,
    )
    assert interrupt.sent and printed[-1] == "stopped"
    started = [child for child in stack if child.process is not None]
    assert started and all(child.exited() for child in started)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_taken_port_is_one_clear_line(clean_db: None) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["dev", "--port", str(port)])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: port {port} on 127.0.0.1 (the API) is already in use: stop what listens "
        "there, or choose another port (webhooks dev --port N, PORT=N make run)\n"
    )


def test_make_run_takes_a_port() -> None:
    """``PORT=8001 make run`` reaches ``webhooks dev --port`` (``make -n``: printed, not run)."""
    root = Path(__file__).resolve().parents[2]
    printed = subprocess.run(
        ["make", "-n", "run"],
        cwd=root,
        env={**os.environ, "PORT": "8001"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "webhooks dev --demo --port 8001" in printed
