"""``webhooks dev --demo`` from a clean directory: a succeeded delivery, then a clean stop."""

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.services import free_port

#: Settings the suite exports that would steer the dev stack off its embedded defaults.
_SUITE_SETTINGS = (
    "WEBHOOKS_DATABASE_URL",
    "WEBHOOKS_BROKER_URL",
    "WEBHOOKS_SECRET_KEY",
    "WEBHOOKS_VAR_DIR",
    "WEBHOOKS_ALLOW_HTTP",
    "WEBHOOKS_ALLOWED_PRIVATE_NETWORKS",
)


def _lines(process: subprocess.Popen[str]) -> "queue.Queue[str]":
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _read_until(lines: "queue.Queue[str]", marker: str, timeout: float) -> list[str]:
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


def test_dev_demo_delivers_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if name not in _SUITE_SETTINGS}
    webhooks = Path(sys.executable).with_name("webhooks")
    process = subprocess.Popen(
        [
            str(webhooks),
            "dev",
            "--demo",
            "--port",
            str(free_port()),
            "--flower-port",
            str(free_port()),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = _lines(process)
        output = _read_until(lines, "demo: delivery dlv_", timeout=90)
        output += _read_until(lines, "body: ", timeout=5)
        banner = "".join(output)
        assert "admin token" in banner and "wht_" in banner
        assert "/console" in banner  # the console's URL beside the API's
        assert "sqlite:///" in banner  # the embedded defaults: no Postgres, no Redis
        assert any("demo: delivery dlv_" in line and " succeeded" in line for line in output)
        assert "response 204, error None" in banner
        assert "webhook-signature: [redacted]" in banner  # as the history keeps it
        assert (tmp_path / "var" / "webhooks.sqlite3").exists()

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        assert "stopped" in "".join(_read_until(lines, "stopped", timeout=5))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
