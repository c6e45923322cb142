"""The story entry as the rest of the system sees it, and the names of its stored fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Actor = Literal["user", "gemini"]
Mode = Literal["character", "god"]
ACTORS: tuple[str, ...] = ("user", "gemini")
MODES: tuple[str, ...] = ("character", "god")

# Fields every chunk document carries. Structured fields share part 1's top level with them, so a
# structured field may not take one of these names.
CHUNK_FIELDS: frozenset[str] = frozenset(
    {"entry_id", "part", "parts", "actor", "mode", "text", "timestamp", "requested_at"}
)


@dataclass(frozen=True)
class EntryDraft:
    """What a caller wants stored: validated, not yet written."""

    actor: Actor
    text: str
    mode: Mode | None = None
    structured_fields: dict[str, Any] = field(default_factory=dict)

    def same_content(self, entry: Entry) -> bool:
        """Whether ``entry`` (read back from storage) stores exactly this draft: an idempotent replay."""
        return (self.actor, self.mode, self.text, self.structured_fields) == (
            entry.actor, entry.mode, entry.text, entry.structured_fields)


@dataclass(frozen=True)
class Entry:
    """A stored entry, reassembled from its chunk documents as Firestore returned them."""

    id: str
    campaign_id: str
    actor: Actor
    mode: Mode | None
    text: str
    structured_fields: dict[str, Any]
    timestamp: datetime
    parts: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "campaign_id": self.campaign_id,
            "actor": self.actor,
            "mode": self.mode,
            "text": self.text,
            "structured_fields": self.structured_fields,
            "timestamp": rfc3339(self.timestamp),
            "parts": self.parts,
        }


def rfc3339(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds and a ``Z``: sortable and unambiguous for any client."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
