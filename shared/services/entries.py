"""Storing one entry and reporting how it went: the single path every write of every function takes."""

from __future__ import annotations

import logging
import time
from datetime import datetime

from shared.adapters.firestore_store import StoryStore, WriteOutcome
from shared.adapters.logs import log_event
from shared.core.entry import EntryDraft
from shared.core.errors import IdempotencyConflict, PersistenceFailed
from shared.core.ids import derived_entry_id, new_entry_id

log = logging.getLogger(__name__)


def entry_id_for(uid: str, campaign_id: str, idempotency_key: str | None, role: str) -> str:
    """Deterministic for an idempotent request (so its retries land on the same documents), else random."""
    if idempotency_key is None:
        return new_entry_id()
    return derived_entry_id(uid, campaign_id, idempotency_key, role)


def persist_entry(store: StoryStore, *, function: str, uid: str, campaign_id: str, draft: EntryDraft,
                  entry_id: str, requested_at: datetime, stored_wins: bool = False) -> WriteOutcome:
    """Write-then-read one entry and emit its ``story_write`` metric line, whatever the outcome.

    ``stored_wins``: an entry already stored under ``entry_id`` with other content is this request's
    answer, not a conflict (a storyteller asked twice by racing retries of one turn answers differently;
    the first answer stored is the turn's).
    """
    text_bytes = len(draft.text.encode("utf-8"))
    started = time.perf_counter()
    common = {"event": "story_write", "function": function, "entry_id": entry_id,
              "campaign_id": campaign_id, "actor": draft.actor, "text_bytes": text_bytes}
    try:
        outcome = store.append(uid, campaign_id, draft, entry_id, requested_at)
    except PersistenceFailed:
        log_event(log, logging.ERROR, "story write failed", outcome="failed", parts=None, read_ms=None,
                  write_ms=round((time.perf_counter() - started) * 1000, 3), **common)
        raise
    except IdempotencyConflict:
        stored = store.find_entry(uid, campaign_id, entry_id) if stored_wins else None
        if stored is None:
            log_event(log, logging.WARNING, "idempotency key reused with a different body",
                      **{**common, "event": "idempotency_conflict"})
            raise
        outcome = WriteOutcome(stored, verified=True, replayed=True, write_ms=0.0, read_ms=0.0)
    log_event(log, logging.INFO if outcome.verified else logging.WARNING, f"story write {outcome.outcome}",
              outcome=outcome.outcome, write_ms=outcome.write_ms, read_ms=outcome.read_ms,
              parts=outcome.entry.parts, **common)
    return outcome
