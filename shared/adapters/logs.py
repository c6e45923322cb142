"""Cloud Logging: one JSON object per line on stdout, which Cloud Run's agent turns into log entries.

``StructuredLogHandler`` writes locally exactly what it writes on Cloud and needs no network: the
project id is passed in, so it never asks the metadata server. Trace correlation comes from the Flask
request's ``traceparent`` / ``X-Cloud-Trace-Context`` header, which the handler reads by itself.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

from google.cloud.logging_v2.handlers import StructuredLogHandler

from shared.adapters.config import settings

_configured = False


class _CurrentStdout:
    """Writes to whatever ``sys.stdout`` is at the time (test runners swap it), never a stale copy."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


class _Handler(StructuredLogHandler):
    """``StructuredLogHandler`` that also writes the entry's ``insertId`` and ``timestamp``.

    google-cloud-logging's handler drops both (its line format has no place for them, and it deletes
    those keys from ``json_fields``), yet the logging agent reads them from the line; Cloud Logging treats
    entries with the same insertId *and* timestamp as one, which is what makes a redelivered event one
    log entry.
    """

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        special: dict[str, Any] = {}
        insert_id = getattr(record, "insert_id", None)
        if insert_id:
            special["logging.googleapis.com/insertId"] = str(insert_id)
        moment = getattr(record, "log_timestamp", None)
        if isinstance(moment, datetime):
            special["timestamp"] = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if not special:
            return line
        return "{" + json.dumps(special, ensure_ascii=False)[1:-1] + ", " + line[1:]


def setup_logging(function: str) -> None:
    """Route the root logger through one ``StructuredLogHandler`` (idempotent: safe at every import).

    ``main.py`` imports every function, so the first import must not name the process: the label comes
    from the target the runtime serves (``FUNCTION_TARGET``, or ``K_SERVICE`` on Cloud Run), and
    ``function`` only when neither is set.
    """
    global _configured
    if _configured:
        return
    label = os.environ.get("FUNCTION_TARGET") or os.environ.get("K_SERVICE") or function
    handler = _Handler(project_id=settings().project, labels={"function": label}, stream=_CurrentStdout())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())
    _configured = True


def log_event(logger: logging.Logger, level: int, message: str, *, insert_id: str | None = None,
              timestamp: datetime | None = None, **fields: Any) -> None:
    """A log line whose ``fields`` become top-level ``jsonPayload`` keys (what logs-based metrics read).

    ``insert_id`` and ``timestamp`` become the log entry's own: give both to make a repeated line one entry.
    """
    extra: dict[str, Any] = {"json_fields": fields}
    if insert_id is not None:
        extra["insert_id"] = insert_id
    if timestamp is not None:
        extra["log_timestamp"] = timestamp
    logger.log(level, message, extra=extra, stacklevel=2)
