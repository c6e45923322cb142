"""Cloud Logging: one JSON object per line on stdout, which Cloud Run's agent turns into log entries.

``StructuredLogHandler`` writes locally exactly what it writes on Cloud and needs no network: the
project id is passed in, so it never asks the metadata server. Trace correlation comes from the Flask
request's ``traceparent`` / ``X-Cloud-Trace-Context`` header, which the handler reads by itself.
"""

from __future__ import annotations

import logging
import os
import sys
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


def setup_logging(function: str) -> None:
    """Route the root logger through one ``StructuredLogHandler`` (idempotent: safe at every import)."""
    global _configured
    if _configured:
        return
    handler = StructuredLogHandler(project_id=settings().project, labels={"function": function},
                                   stream=_CurrentStdout())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())
    _configured = True


def log_event(logger: logging.Logger, level: int, message: str, *, insert_id: str | None = None,
              **fields: Any) -> None:
    """A log line whose ``fields`` become top-level ``jsonPayload`` keys (what logs-based metrics read)."""
    extra: dict[str, Any] = {"json_fields": fields}
    if insert_id is not None:
        extra["insert_id"] = insert_id
    logger.log(level, message, extra=extra, stacklevel=2)
