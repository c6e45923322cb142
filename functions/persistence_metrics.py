"""``persistence_metrics``: one ``story_entry_persisted`` log line per story entry Firestore stores.

Triggered by Eventarc on ``google.cloud.firestore.document.v1.created`` for
``users/{uid}/campaigns/{campaignId}/story/{docId}``; the logs-based metrics that ``deploy.sh`` creates read
the line. The function is deployed with retries, so it answers every event it cannot use (wrong path,
JSON or garbage payload, missing fields) with a warning and success: those events are the same on every
redelivery, and raising would only loop. What still raises is what this code does not expect (an
environment fault, a bug): retrying may cure it, and the maximum event age ends the loop if not.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import functions_framework
from cloudevents.http import CloudEvent

from shared.adapters.config import settings
from shared.adapters.document_events import DecodedDocument, UndecodablePayload, decode_document_event
from shared.adapters.logs import log_event, setup_logging
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

setup_logging("persistence_metrics")
log = logging.getLogger(__name__)

CREATED = "google.cloud.firestore.document.v1.created"
ACCEPTED_TYPES = (CREATED, CREATED + ".withAuthContext")
PROTOBUF = "application/protobuf"


def _attribute_path(cloud_event: CloudEvent) -> str | None:
    """The document path Eventarc names in the attributes (``document``, else ``subject``)."""
    return cloud_event.get("document") or cloud_event.get("subject") or None


def _ignore(cloud_event: CloudEvent, reason: str, **fields: Any) -> None:
    """Acknowledge an event that can never produce a metric, saying why."""
    log_event(log, logging.WARNING, f"event ignored: {reason}", insert_id=cloud_event["id"],
              event="persistence_event_ignored", reason=reason, event_id=cloud_event["id"],
              event_type=cloud_event.get("type"), **fields)


def _dropped_as_old(cloud_event: CloudEvent, moment: datetime | None, now: datetime) -> bool:
    """Drop (with an error line) an event older than the maximum age: retries of it have gone on too long."""
    max_age_s = settings().metrics_max_event_age_s
    if moment is None or not is_too_old(moment, now, max_age_s):
        return False
    log_event(log, logging.ERROR, "event dropped: older than the maximum event age", insert_id=cloud_event["id"],
              event="persistence_event_dropped", reason="too_old", event_id=cloud_event["id"],
              event_type=cloud_event.get("type"), age_s=round(event_age_s(moment, now), 3), max_age_s=max_age_s)
    return True


def _decode(cloud_event: CloudEvent) -> DecodedDocument | None:
    """The event's document, or ``None`` after a warning when the payload is not a protobuf document."""
    content_type = (cloud_event.get("datacontenttype") or PROTOBUF).split(";")[0].strip().lower()
    data = cloud_event.data
    if content_type != PROTOBUF:
        _ignore(cloud_event, "unsupported content type", content_type=content_type)
        return None
    if data is None or data == b"":
        _ignore(cloud_event, "empty payload")
        return None
    if not isinstance(data, bytes):  # the CloudEvents SDK parsed the body as JSON
        _ignore(cloud_event, "payload is not protobuf bytes", payload_type=type(data).__name__)
        return None
    try:
        return decode_document_event(data)
    except UndecodablePayload as exc:
        _ignore(cloud_event, "undecodable payload", error=str(exc), payload_bytes=len(data))
        return None


@functions_framework.cloud_event
def persistence_metrics(cloud_event: CloudEvent) -> None:
    """Log the metric of a new story entry; acknowledge everything else with a reason.

    The age check comes first: an event past the maximum age is dropped whatever it holds. Then the
    attributes (type, path), then the payload, then the document's fields.
    """
    now = datetime.now(UTC)
    event_time = parse_rfc3339(cloud_event.get("time") or "")
    if _dropped_as_old(cloud_event, event_time, now):
        return
    if cloud_event.get("type") not in ACCEPTED_TYPES:
        _ignore(cloud_event, "not a document-created event")
        return
    named = _attribute_path(cloud_event)
    if named is not None and story_path(named) is None:
        _ignore(cloud_event, "not a story document", document=redacted_path(named))
        return
    document = _decode(cloud_event)
    if document is None:
        return
    path: StoryPath | None = story_path(document.name) if document.name else (story_path(named) if named else None)
    if path is None:
        _ignore(cloud_event, "payload document is not a story document", document=redacted_path(document.name))
        return
    if document.create_time is None:
        _ignore(cloud_event, "document has no create time")
        return
    if event_time is None and _dropped_as_old(cloud_event, document.create_time, now):
        return
    try:
        chunk = read_chunk(document.fields)
    except MalformedRecord as exc:
        _ignore(cloud_event, "malformed story document", error=str(exc), campaign_id=path.campaign_id)
        return
    if chunk.part != 1:  # the entry was counted with its part 1
        log.debug("later chunk acknowledged", extra={"json_fields": {
            "entry_id": chunk.entry_id, "part": chunk.part, "parts": chunk.parts, "event_id": cloud_event["id"]}})
        return
    fields = persisted_metric(chunk, campaign_id=path.campaign_id, create_time=document.create_time, now=now)
    # Cloud Logging keeps one entry per (insertId, timestamp): both are the same on every delivery.
    log_event(log, logging.INFO, "story entry persisted", insert_id=cloud_event["id"],
              timestamp=event_time or document.create_time, **fields)
