"""The recipes can be followed on a laptop: each has its endpoint for a receiver on 127.0.0.1
beside the production one, defines the shell variables it uses, and the "Trying a recipe on
this machine" steps of the recipes' README deliver an event, run as written (only its two
local ports swapped for this run's)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import requests

from api import create_app
from tests.processes import Worker
from tests.recipes.recipe import DOCS, Recipe, fenced_blocks, serving
from tests.services import free_port, wait_until
from webhooks.admin.tokens import create_token
from webhooks.core.db import session_scope

RECIPES = ["umbrella-faces", "tprofile", "avionte", "trivore-id"]

#: Variables a shell example may use without defining them: the environment's own.
_AMBIENT = {"HOME", "XDG_DATA_HOME", "WEBHOOKS_VAR_DIR"}


@pytest.mark.parametrize("name", RECIPES)
def test_each_recipe_has_its_endpoint_for_a_local_receiver(name: str) -> None:
    recipe = Recipe(name)
    production, local = recipe.json("endpoint"), recipe.json("endpoint-local")
    parts = urllib.parse.urlsplit(local["url"])
    assert (parts.scheme, parts.netloc) == ("http", "127.0.0.1:5000")
    assert parts.path == urllib.parse.urlsplit(production["url"]).path
    assert {**local, "url": production["url"]} == production


@pytest.mark.parametrize("name", [*RECIPES, "README"])
def test_shell_examples_define_their_variables(name: str) -> None:
    scripts = [text for info, text in fenced_blocks(DOCS / f"{name}.md") if info.startswith("sh")]
    text = "\n".join(scripts)
    used = set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", text))
    defined = set(re.findall(r"^(?:export )?([A-Z_][A-Z0-9_]*)=", text, re.MULTILINE))
    assert used - defined - _AMBIENT == set()


@pytest.mark.e2e
def test_trying_a_recipe_on_this_machine(worker: Worker, clean_db: None, tmp_path: Path) -> None:
    blocks = {info.partition(" ")[2]: text for info, text in fenced_blocks(DOCS / "README.md")}
    port = free_port()
    receiver_code = blocks["receiver"].replace('("127.0.0.1", 5000)', f'("127.0.0.1", {port})')
    namespace: dict[str, Any] = {"__name__": "receiver"}
    threading.Thread(target=exec, args=(receiver_code, namespace), daemon=True).start()
    wait_until(lambda: "server" in namespace, 10, "the receiver to start")
    try:
        _follow_the_readme(blocks["try"], port, tmp_path)
    finally:
        namespace["server"].shutdown()
        namespace["server"].server_close()


def _objects(text: str) -> list[Any]:
    """The JSON objects curl printed one after the other."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while at < len(text.rstrip()):
        value, at = decoder.raw_decode(text, at)
        found.append(value)
        while at < len(text) and text[at].isspace():
            at += 1
    return found


def _follow_the_readme(steps: str, port: int, tmp_path: Path) -> None:
    with session_scope() as session:
        _, admin = create_token(session, tenant=None)
    var = tmp_path / "var"
    var.mkdir()
    (var / "admin-token").write_text(admin + "\n")
    recipe = Recipe("umbrella-faces")
    endpoint = recipe.text("endpoint-local").replace("127.0.0.1:5000", f"127.0.0.1:{port}")
    (tmp_path / "endpoint.json").write_text(endpoint)
    (tmp_path / "event.json").write_text(recipe.text("event"))
    with serving(create_app()) as api:
        script = steps.replace("http://127.0.0.1:8000", api)
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env={**os.environ, "WEBHOOKS_VAR_DIR": str(var), "PATH": os.environ["PATH"]},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        tenant, endpoint_shown, event = _objects(done.stdout)
        assert tenant["uid"] == "acme" and endpoint_shown["url"].startswith("http://127.0.0.1:")
        event_id = event["id"]
        event_url = f"{api}/v1/tenants/acme/events/{event_id}"
        headers = {"Authorization": f"Bearer {admin}"}

        def delivered() -> bool:
            deliveries = requests.get(event_url, headers=headers, timeout=10).json()["deliveries"]
            return [d["status"] for d in deliveries] == ["succeeded"]

        wait_until(delivered, 30, "the recipe's event to be delivered")
