"""Turning a Firestore "document created" event into the ``story_entry_persisted`` metric line.

Every event that can never produce a metric (wrong path, JSON or garbage payload, missing fields) is
acknowledged with a warning: it is the same on every redelivery, and failing would only loop. What still
raises is what this code does not expect (an environment fault, a bug): a retry may cure it, and the
maximum event age ends the loop if not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.adapters.config import settings
from shared.adapters.document_events import DecodedDocument, UndecodablePayload, decode_document_event
from shared.adapters.logs import log_event
from shared.core.metrics import (
    MalformedRecord,
    StoryPath,
    event_age_s,
    is_too_old,
    parse_rfc3339,
    persisted_metric,
    read_chunk,
    redacted_path,
    story_path,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DocumentEvent:
    """What the service needs of a CloudEvent: its attributes and its raw data."""

    id: str
    type: str | None
    time: str | None
    document: str | None  # the ``document`` attribute, else ``subject``
    content_type: str | None
    data: Any


CREATED = "google.cloud.firestore.document.v1.created"
ACCEPTED_TYPES = (CREATED, CREATED + ".withAuthContext")
PROTOBUF = "application/protobuf"


def _ignore(event: DocumentEvent, reason: str, **fields: Any) -> None:
    """Acknowledge an event that can never produce a metric, saying why."""
    log_event(log, logging.WARNING, f"event ignored: {reason}", insert_id=event.id,
              event="persistence_event_ignored", reason=reason, event_id=event.id,
              event_type=event.type, **fields)


def _dropped_as_old(event: DocumentEvent, moment: datetime | None, now: datetime) -> bool:
    """Drop (with an error line) an event older than the maximum age: retries of it have gone on too long."""
    max_age_s = settings().metrics_max_event_age_s
    if moment is None or not is_too_old(moment, now, max_age_s):
        return False
    log_event(log, logging.ERROR, "event dropped: older than the maximum event age", insert_id=event.id,
              event="persistence_event_dropped", reason="too_old", event_id=event.id,
              event_type=event.type, age_s=round(event_age_s(moment, now), 3), max_age_s=max_age_s)
    return True


def _decode(event: DocumentEvent) -> DecodedDocument | None:
    """The event's document, or ``None`` after a warning when the payload is not a protobuf document."""
    content_type = (event.content_type or PROTOBUF).split(";")[0].strip().lower()
    data = event.data
    if content_type != PROTOBUF:
        _ignore(event, "unsupported content type", content_type=content_type)
        return None
    if data is None or data == b"":
        _ignore(event, "empty payload")
        return None
    if not isinstance(data, bytes):  # the CloudEvents SDK parsed the body as JSON
        _ignore(event, "payload is not protobuf bytes", payload_type=type(data).__name__)
        return None
    try:
        return decode_document_event(data)
    except UndecodablePayload as exc:
        _ignore(event, "undecodable payload", error=str(exc), payload_bytes=len(data))
        return None


def report_document_created(event: DocumentEvent) -> None:
    """Log the metric of a new story entry; acknowledge everything else with a reason.

    The age check comes first: an event past the maximum age is dropped whatever it holds. Then the
    attributes (type, path), then the payload, then the document's fields.
    """
    now = datetime.now(UTC)
    event_time = parse_rfc3339(event.time or "")
    if _dropped_as_old(event, event_time, now):
        return
    if event.type not in ACCEPTED_TYPES:
        _ignore(event, "not a document-created event")
        return
    named = event.document
    if named is not None and story_path(named) is None:
        _ignore(event, "not a story document", document=redacted_path(named))
        return
    document = _decode(event)
    if document is None:
        return
    path: StoryPath | None = story_path(document.name) if document.name else (story_path(named) if named else None)
    if path is None:
        _ignore(event, "payload document is not a story document", document=redacted_path(document.name))
        return
    if document.create_time is None:
        _ignore(event, "document has no create time")
        return
    if event_time is None and _dropped_as_old(event, document.create_time, now):
        return
    try:
        chunk = read_chunk(document.fields)
    except MalformedRecord as exc:
        _ignore(event, "malformed story document", error=str(exc), campaign_id=path.campaign_id)
        return
    if chunk.part != 1:  # the entry was counted with its part 1
        log.debug("later chunk acknowledged", extra={"json_fields": {
            "entry_id": chunk.entry_id, "part": chunk.part, "parts": chunk.parts, "event_id": event.id}})
        return
    fields = persisted_metric(chunk, campaign_id=path.campaign_id, create_time=document.create_time, now=now)
    # Cloud Logging keeps one entry per (insertId, timestamp): both are the same on every delivery.
    log_event(log, logging.INFO, "story entry persisted", insert_id=event.id,
              timestamp=event_time or document.create_time, **fields)
