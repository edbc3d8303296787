"""One settings home: the CLI finds the embedded defaults wherever it runs, and an empty
database is reported as needing ``webhooks db upgrade``, not as unreachable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

WEBHOOKS = str(Path(sys.executable).with_name("webhooks"))

#: What the suite exports; a newcomer has none of it.
_SUITE = ("WEBHOOKS_DATABASE_URL", "WEBHOOKS_BROKER_URL", "WEBHOOKS_SECRET_KEY", "WEBHOOKS_VAR_DIR")


def _run(home: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name not in _SUITE}
    env.pop("XDG_DATA_HOME", None)
    env["HOME"] = str(home)
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [WEBHOOKS, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_send_from_another_directory_uses_the_same_database(tmp_path: Path) -> None:
    home = tmp_path / "home"
    empty = _run(home, tmp_path / "app", "send", "acme", "order.created", '{"n": 1}')
    assert empty.returncode == 1
    [line] = empty.stderr.splitlines()
    assert line.startswith("Error: the database has no schema or an older one (")
    assert line.endswith("run `webhooks db upgrade`") and "unreachable" not in line

    assert _run(home, tmp_path / "clone", "db", "upgrade").returncode == 0
    assert _run(home, tmp_path / "clone", "tenants", "create", "acme").returncode == 0
    sent = _run(home, tmp_path / "elsewhere", "send", "acme", "order.created", '{"n": 1}')
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith("evt_")
    shown = _run(home, tmp_path / "app", "events", "list", "acme", "--json")
    assert shown.returncode == 0, shown.stderr
    assert sent.stdout.strip() in shown.stdout
    # Nothing was created in any of the working directories.
    assert not list(tmp_path.glob("*/var"))
    assert (home / ".local" / "share" / "webhooks" / "secret.key").exists()
