"""Logging for every process (API, worker, beat, CLI): text for people, JSON for machines.

``WEBHOOKS_LOG_FORMAT=json`` writes one JSON object per line to stderr, with the record's
``extra`` fields (``event_id``, ``delivery_id``, ``endpoint_id``, ``status``, ``duration_ms``,
``error``...) as top-level keys, which is what log shippers index. ``text`` (the default) is
one readable line with the same extras appended as ``key=value``.

A redaction filter runs on every record, and both formats mask exception text: the engine
never logs header values or payloads, but error text quotes what failed (a database error its
data, an HTTP error its URL), so credentials are masked before any handler writes them, by
the one rule of :mod:`webhooks.core.redaction` that the history and the API follow too.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from webhooks.core.config import Settings
from webhooks.core.redaction import REDACTED, is_credential_name, mask_value, redact_text

#: Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


class RedactionFilter(logging.Filter):
    """Masks credentials in the message, its arguments and its extra fields, in place.

    Extras are masked however they nest: Celery passes its task context as one ``data``
    dict (arguments, exception text), which a filter looking at strings alone would pass.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message or record.args:
            # Formatted once here, so that no argument reaches a handler unmasked.
            record.msg, record.args = cleaned, None
        if record.exc_text:  # a traceback another handler formatted (and cached) first
            record.exc_text = redact_text(record.exc_text)
        for key, value in list(vars(record).items()):
            if key in _STANDARD:
                continue
            if is_credential_name(key) and value is not None:
                setattr(record, key, REDACTED)
            else:
                setattr(record, key, mask_value(value))
        return True


def extras(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a caller passed as ``extra``."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class _RedactingFormatter(logging.Formatter):
    """Exception text masked too: it quotes what failed (SQL errors their data, HTTP errors
    their URL), and it is formatted after the filter has run."""

    def formatException(self, ei: Any) -> str:
        return redact_text(super().formatException(ei))


class JsonFormatter(_RedactingFormatter):
    """One JSON object per line: time, level, logger, message, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for key, value in extras(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(_RedactingFormatter):
    """``time level [logger] message key=value...``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s [%(name)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        message = record.getMessage()
        # Fields the message already spells out (``status=200``) are not repeated.
        fields = {k: v for k, v in extras(record).items() if f"{k}=" not in message}
        if not fields:
            return line
        head, sep, tail = line.partition("\n")  # keep a traceback below the fields
        suffix = " ".join(f"{k}={v}" for k, v in fields.items())
        return f"{head} {suffix}{sep}{tail}"


#: Lines Celery logs at INFO for every task and every beat tick, by logger and message
#: template: the sweep's five-second heartbeat would bury everything else, and "Task
#: succeeded" follows a failed attempt too (the task itself did not fail), which misleads.
#: The engine's own line per attempt says what happened.
_ROUTINE = (
    ("celery.worker.strategy", "Task %(name)s[%(id)s] received"),
    ("celery.app.trace", "Task %(name)s[%(id)s] succeeded"),
    ("celery.beat", "Scheduler: Sending due task"),
)


class RoutineFilter(logging.Filter):
    """Demotes Celery's routine per-task and per-tick INFO lines to DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        template = str(record.msg)
        if not any(
            record.name == name and template.startswith(prefix) for name, prefix in _ROUTINE
        ):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


_HANDLER_MARK = "_webhooks_handler"


def configure_logging(
    settings: Settings, level: int | str = logging.INFO, stream: TextIO | None = None
) -> None:
    """Send every logger's records through one stderr handler in the configured format.

    Safe to call more than once (an app factory called per test): the handler is replaced,
    not added again. Handlers other code installed on the root logger are left alone.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    handler.addFilter(RoutineFilter())
    handler.addFilter(RedactionFilter())
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
