"""The mapping between an entry and its chunk documents, both ways, without touching Firestore.

Part 1 carries the structured fields next to the chunk fields, so its text budget shrinks by their
serialized size: no chunk document can outgrow Firestore's 1 MiB limit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from shared.core.chunking import MAX_CHUNK_BYTES, join_chunks, split_text
from shared.core.entry import CHUNK_FIELDS, Entry, EntryDraft
from shared.core.ids import chunk_doc_id
from shared.core.validation import structured_size


class IncompleteEntry(ValueError):
    """The chunk documents read do not make one whole entry."""


def chunk_records(draft: EntryDraft, entry_id: str, requested_at: datetime) -> list[tuple[str, dict[str, Any]]]:
    """``(document id, fields)`` for every chunk, part order. The caller adds ``timestamp`` (the commit's)."""
    first_budget = MAX_CHUNK_BYTES - structured_size(draft.structured_fields) if draft.structured_fields else None
    texts = split_text(draft.text, first_max_bytes=first_budget)
    records = []
    for part, text in enumerate(texts, start=1):
        fields: dict[str, Any] = {
            "entry_id": entry_id,
            "part": part,
            "parts": len(texts),
            "actor": draft.actor,
            "text": text,
            "requested_at": requested_at,
        }
        if draft.mode is not None:
            fields["mode"] = draft.mode
        if part == 1:
            fields.update(draft.structured_fields)
        records.append((chunk_doc_id(entry_id, part), fields))
    return records


def assemble_entry(campaign_id: str, records: Sequence[Mapping[str, Any]]) -> Entry:
    """Rebuild an entry from its chunk documents (any order). Raises ``IncompleteEntry`` if any is missing."""
    if not records:
        raise IncompleteEntry("no chunk documents")
    ordered = sorted(records, key=lambda r: r.get("part", 0))
    first = ordered[0]
    parts = first.get("parts")
    entry_id = first.get("entry_id")
    if [r.get("part") for r in ordered] != list(range(1, (parts or 0) + 1)) or any(
        r.get("entry_id") != entry_id or r.get("parts") != parts for r in ordered
    ):
        raise IncompleteEntry(f"entry {entry_id!r}: expected parts 1..{parts}, read {[r.get('part') for r in ordered]}")
    return Entry(
        id=entry_id,
        campaign_id=campaign_id,
        actor=first["actor"],
        mode=first.get("mode"),
        text=join_chunks(r["text"] for r in ordered),
        structured_fields={k: v for k, v in first.items() if k not in CHUNK_FIELDS},
        timestamp=first["timestamp"],
        parts=parts,
    )


def confirmed_entry(draft: EntryDraft, entry_id: str, campaign_id: str, parts: int, commit_time: datetime) -> Entry:
    """The entry as written, when it could not (or was not to) be read back: ``verified: false``."""
    return Entry(id=entry_id, campaign_id=campaign_id, actor=draft.actor, mode=draft.mode, text=draft.text,
                 structured_fields=draft.structured_fields, timestamp=commit_time, parts=parts)
