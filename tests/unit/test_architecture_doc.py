"""docs/architecture.md matches the tree: every package it names exists and holds the modules
it says, and every module of those packages is named there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
ROW = re.compile(r"^\| `(?P<package>[a-z_]+)/` \| (?P<owns>.+) \|$", re.MULTILINE)


def _rows() -> dict[str, str]:
    return {match["package"]: match["owns"] for match in ROW.finditer(DOC.read_text())}


def test_every_package_of_the_library_has_a_row() -> None:
    packages = {path.parent.name for path in (ROOT / "webhooks").glob("*/__init__.py")}
    assert set(_rows()) == packages


def test_each_row_names_exactly_the_modules_its_package_holds() -> None:
    for package, owns in _rows().items():
        named = set(re.findall(r"`([a-z0-9_]+)\.py`", owns))
        held = {path.stem for path in (ROOT / "webhooks" / package).glob("*.py")} - {"__init__"}
        assert named == held, f"{package}/: named {sorted(named)}, holds {sorted(held)}"
