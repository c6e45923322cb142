"""Firestore document events (Eventarc's protobuf ``DocumentEventData``) decoded into plain Python values.

The only module that knows the event's wire format: everything past it sees a path, a dict of fields and
datetimes, which is what the pure metric code takes. Decoding is deterministic, so a payload that fails to
decode fails on every redelivery too: ``UndecodablePayload`` means "acknowledge and warn", never "retry".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.events.cloud.firestore import DocumentEventData
from google.protobuf import timestamp_pb2

# Proto-plus wraps the message; its raw protobuf (``DocumentEventData.pb(...)``) tells which member of a
# ``oneof`` is set, which is what a Firestore ``Value`` is.
_RAW = DocumentEventData.pb()


class UndecodablePayload(ValueError):
    """The event's data is not a ``DocumentEventData`` holding a document."""


@dataclass(frozen=True)
class DecodedDocument:
    """The post-operation document of a Firestore event, as plain values."""

    name: str  # projects/{p}/databases/{db}/documents/{path}
    fields: dict[str, Any]
    create_time: datetime | None
    update_time: datetime | None


def _timestamp(ts: timestamp_pb2.Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def value_to_python(value: Any) -> Any:
    """One Firestore ``Value`` (raw protobuf) as a Python value.

    null → ``None``; booleans, integers, doubles, strings and bytes as themselves; timestamps as aware UTC
    datetimes (microseconds: Firestore's precision); references as their resource-name string; geo points
    as ``{"latitude", "longitude"}``; arrays as lists; maps as dicts. A value with nothing set is ``None``.
    """
    kind = value.WhichOneof("value_type")
    if kind is None or kind == "null_value":
        return None
    if kind == "timestamp_value":
        return _timestamp(value.timestamp_value)
    if kind == "geo_point_value":
        return {"latitude": value.geo_point_value.latitude, "longitude": value.geo_point_value.longitude}
    if kind == "array_value":
        return [value_to_python(v) for v in value.array_value.values]
    if kind == "map_value":
        return {k: value_to_python(v) for k, v in value.map_value.fields.items()}
    return getattr(value, kind)  # boolean, integer, double, string, bytes, reference


def decode_document_event(data: bytes) -> DecodedDocument:
    """The created (or updated) document carried by a ``DocumentEventData`` payload.

    Raises ``UndecodablePayload`` for empty data, bytes that are not that message, an event without a
    post-operation document (a delete) and values no datetime can hold.
    """
    if not data:
        raise UndecodablePayload("empty payload")
    try:
        raw = DocumentEventData.pb(DocumentEventData.deserialize(data))
    except Exception as exc:  # DecodeError, and whatever else the parser raises on garbage
        raise UndecodablePayload(f"not a DocumentEventData: {exc}") from None
    if not raw.HasField("value"):
        raise UndecodablePayload("the event carries no document")
    document = raw.value
    try:
        fields = {name: value_to_python(v) for name, v in document.fields.items()}
        create_time = _timestamp(document.create_time) if document.HasField("create_time") else None
        update_time = _timestamp(document.update_time) if document.HasField("update_time") else None
    except (ValueError, OverflowError) as exc:  # a timestamp outside datetime's range
        raise UndecodablePayload(f"unreadable value: {exc}") from None
    return DecodedDocument(name=document.name, fields=fields, create_time=create_time, update_time=update_time)
