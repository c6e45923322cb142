"""The persistence metric of one stored entry, computed from plain values: no protobuf, no Firestore.

``persistence_metrics`` sees every chunk document Firestore creates under a story collection. Only part 1
becomes a metric line, so an entry is counted once however many chunks it has. Everything here is a pure
function of what the event carried (paths, field values, times), so it is unit-tested without a trigger.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# Eventarc's Firestore trigger filter, as a pattern: users/{uid}/campaigns/{campaignId}/story/{docId}.
_SEGMENT = r"[^/]+"
_STORY_PATH = re.compile(rf"^users/(?P<uid>{_SEGMENT})/campaigns/(?P<campaign_id>{_SEGMENT})"
                         rf"/story/(?P<doc_id>{_SEGMENT})$")
# How a document path appears in the CloudEvent: relative (``document`` attribute), under ``documents/``
# (``subject``) or as the full resource name (``Document.name`` in the payload).
_PREFIX = re.compile(r"^(?:projects/[^/]+/databases/[^/]+/documents/|documents/)")

_RFC3339 = re.compile(
    r"^(?P<base>\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d+))?(?P<offset>[Zz]|[+-]\d{2}:\d{2})$")

# The fields a chunk document must carry to be counted (see "Stored data" in the design).
REQUIRED_FIELDS: tuple[str, ...] = ("entry_id", "part", "parts", "actor", "text", "requested_at")

EVENT_NAME = "story_entry_persisted"


class MalformedRecord(ValueError):
    """A story document that lacks a field the metric needs, or holds one of the wrong type."""


@dataclass(frozen=True)
class StoryPath:
    uid: str
    campaign_id: str
    doc_id: str


@dataclass(frozen=True)
class StoredChunk:
    """What the metric needs from one chunk document."""

    entry_id: str
    part: int
    parts: int
    actor: str
    mode: str | None
    text_bytes: int
    requested_at: datetime


def story_path(name: str) -> StoryPath | None:
    """The parts of a story chunk's path, or ``None`` when ``name`` names any other document.

    Accepts the relative path, ``documents/<path>`` and ``projects/p/databases/d/documents/<path>``.
    """
    match = _STORY_PATH.match(_PREFIX.sub("", name, count=1))
    if match is None:
        return None
    return StoryPath(match["uid"], match["campaign_id"], match["doc_id"])


def redacted_path(name: str) -> str:
    """A document path fit for a log line: relative, with the user id under ``users/`` replaced by ``*``.

    Warnings about unexpected documents name the path so an operator can see the trigger's fault, but a
    uid is personal data that no log line needs.
    """
    segments = _PREFIX.sub("", name, count=1).split("/")
    if len(segments) > 1 and segments[0] == "users":
        segments[1] = "*"
    return "/".join(segments)


def as_utc(moment: datetime) -> datetime:
    """An aware datetime in UTC; a naive one is taken to be UTC already (Firestore stores UTC only)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _elapsed_us(start: datetime, end: datetime) -> int:
    return (as_utc(end) - as_utc(start)) // timedelta(microseconds=1)


def elapsed_ms(start: datetime, end: datetime) -> float:
    """``end - start`` in milliseconds, exact to the microsecond (negative when the clocks disagree)."""
    return _elapsed_us(start, end) / 1000


def parse_rfc3339(text: str) -> datetime | None:
    """An RFC 3339 time as an aware datetime (digits past microseconds dropped), ``None`` if not one.

    Eventarc writes nanoseconds, which ``datetime.fromisoformat`` refuses before Python 3.11.
    """
    match = _RFC3339.match(text.strip())
    if match is None:
        return None
    fraction = (match["fraction"] or "")[:6].ljust(6, "0")
    offset = "+00:00" if match["offset"] in ("Z", "z") else match["offset"]
    try:
        return datetime.fromisoformat(f"{match['base'].replace('t', 'T').replace(' ', 'T')}.{fraction}{offset}")
    except ValueError:  # well-formed but impossible, e.g. month 13
        return None


def event_age_s(event_time: datetime, now: datetime) -> float:
    """How long ago the event happened, in seconds."""
    return _elapsed_us(event_time, now) / 1_000_000


def is_too_old(event_time: datetime, now: datetime, max_age_s: float) -> bool:
    """Whether an event is past the age after which it is dropped instead of processed.

    A retried event that keeps failing would otherwise be retried for days (Eventarc's retry window);
    the age bound turns that into a single error line.
    """
    return event_age_s(event_time, now) > max_age_s


def _int(record: Mapping[str, Any], name: str) -> int:
    value = record.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedRecord(f"field {name!r} is not an integer")
    return value


def _str(record: Mapping[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str):
        raise MalformedRecord(f"field {name!r} is not a string")
    return value


def missing_fields(record: Mapping[str, Any]) -> list[str]:
    return [name for name in REQUIRED_FIELDS if name not in record]


def read_chunk(record: Mapping[str, Any]) -> StoredChunk:
    """The metric's view of a chunk document's fields; ``MalformedRecord`` names what is wrong."""
    missing = missing_fields(record)
    if missing:
        raise MalformedRecord(f"missing field(s): {', '.join(missing)}")
    entry_id = _str(record, "entry_id")
    if not entry_id:
        raise MalformedRecord("field 'entry_id' is empty")
    part, parts = _int(record, "part"), _int(record, "parts")
    if not 1 <= part <= parts:
        raise MalformedRecord(f"part {part} is not within 1..{parts}")
    mode = record.get("mode")
    if mode is not None and not isinstance(mode, str):
        raise MalformedRecord("field 'mode' is not a string")
    requested_at = record["requested_at"]
    if not isinstance(requested_at, datetime):
        raise MalformedRecord("field 'requested_at' is not a timestamp")
    return StoredChunk(entry_id=entry_id, part=part, parts=parts, actor=_str(record, "actor"), mode=mode,
                       text_bytes=len(_str(record, "text").encode("utf-8")), requested_at=as_utc(requested_at))


def persisted_metric(chunk: StoredChunk, *, campaign_id: str, create_time: datetime,
                     now: datetime) -> dict[str, Any]:
    """The ``jsonPayload`` fields of the ``story_entry_persisted`` line for part 1 of an entry.

    Only part 1 reaches the function's metric path, so ``text_bytes`` is part 1's text: the whole entry's
    for a one-chunk entry (``text_bytes_complete``), a lower bound for a longer one. The uid is not
    logged: a user id in every metric line is personal data the metric does not need.
    """
    return {
        "event": EVENT_NAME,
        "entry_id": chunk.entry_id,
        "campaign_id": campaign_id,
        "actor": chunk.actor,
        "mode": chunk.mode,
        "parts": chunk.parts,
        "text_bytes": chunk.text_bytes,
        "text_bytes_complete": chunk.parts == 1,
        "commit_lag_ms": elapsed_ms(chunk.requested_at, create_time),
        "trigger_delay_ms": elapsed_ms(create_time, now),
    }
