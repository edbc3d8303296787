"""The dead-letter handler the end-to-end worker is given: one JSON line per dead letter."""

from __future__ import annotations

import json
import os
from typing import Any

FILE_VARIABLE = "WEBHOOKS_E2E_DEAD_LETTERS"


def record(delivery_id: str, details: dict[str, Any]) -> None:
    with open(os.environ[FILE_VARIABLE], "a") as file:
        file.write(json.dumps({"delivery_id": delivery_id, **details}) + "\n")
