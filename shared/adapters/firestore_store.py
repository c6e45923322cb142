"""Firestore persistence with write-then-read: the only module that talks to Firestore.

A response may show an entry only once Firestore has it, whole. So an entry is written in one atomic
batch of ``create()``s (all chunks or none), then read back in one ``get_all()``; what was read is what
the caller returns. Document ids are deterministic, which turns an ambiguous commit (deadline, network)
into a question a read can answer, and turns a client's retry into a replay instead of a second entry.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from shared.adapters.config import settings
from shared.core.entry import Entry, EntryDraft
from shared.core.errors import IdempotencyConflict, InvalidArgument, NotFound, PersistenceFailed
from shared.core.ids import chunk_doc_id
from shared.core.records import IncompleteEntry, assemble_entry, chunk_records, confirmed_entry

log = logging.getLogger(__name__)

# A commit that raised one of these may or may not have been applied.
AMBIGUOUS = (gexc.DeadlineExceeded, gexc.ServiceUnavailable, gexc.Aborted, gexc.InternalServerError)
READ_BACKOFF_S = (0.005, 0.02)  # waits before the 2nd and 3rd read-back attempts
P = ParamSpec("P")
R = TypeVar("R")


@functools.cache
def firestore_client() -> firestore.Client:
    """One client per process (it holds the gRPC channel); honours ``FIRESTORE_EMULATOR_HOST``."""
    config = settings()
    return firestore.Client(project=config.project, database=config.database)


@dataclass(frozen=True)
class WriteOutcome:
    entry: Entry
    verified: bool
    replayed: bool
    write_ms: float
    read_ms: float

    @property
    def outcome(self) -> str:
        return "replayed" if self.replayed else "verified" if self.verified else "unverified"


class _ReadBackMismatch(Exception):
    pass


@dataclass(frozen=True)
class _Committed:
    """How a commit ended: with a commit time, or settled by reading the entry already stored."""

    commit_time: datetime | None = None
    stored: Entry | None = None
    replayed: bool = False


def _reads(method: Callable[P, R]) -> Callable[P, R]:
    """A read that Firestore could not answer is a clean ``persistence_failed``, not a crash."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except (gexc.GoogleAPICallError, gexc.RetryError) as exc:
            log.error("story read failed", extra={"json_fields": {"operation": method.__name__, "error": repr(exc)}})
            raise PersistenceFailed("The story could not be read right now; please retry.") from exc

    return wrapper


def _same_or_conflict(draft: EntryDraft, stored: Entry) -> Entry:
    """An entry already under this id is this request's (a replay) only if it holds the same content."""
    if not draft.same_content(stored):
        raise IdempotencyConflict("This Idempotency-Key was already used with a different body.")
    return stored


def _elapsed_ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)


class StoryStore:
    """Entries of ``users/{uid}/campaigns/{campaignId}/story``."""

    def __init__(self, client: firestore.Client, *, write_then_read: bool = True, timeout_s: float = 10.0) -> None:
        self.client = client
        self.write_then_read = write_then_read
        self.timeout_s = timeout_s

    # -- paths ---------------------------------------------------------------------------------------
    def campaign_ref(self, uid: str, campaign_id: str) -> firestore.DocumentReference:
        return self.client.collection("users").document(uid).collection("campaigns").document(campaign_id)

    def _story(self, uid: str, campaign_id: str) -> firestore.CollectionReference:
        return self.campaign_ref(uid, campaign_id).collection("story")

    # -- write-then-read -----------------------------------------------------------------------------
    def append(self, uid: str, campaign_id: str, draft: EntryDraft, entry_id: str,
               requested_at: datetime) -> WriteOutcome:
        """Store ``draft`` as entry ``entry_id`` and return it as Firestore has it.

        Raises ``PersistenceFailed`` when it cannot be sure the entry is stored, and
        ``IdempotencyConflict`` when the id already holds a different entry.
        """
        story = self._story(uid, campaign_id)
        records = chunk_records(draft, entry_id, requested_at)
        refs = [story.document(doc_id) for doc_id, _ in records]
        started = time.perf_counter()
        committed = self._commit(uid, campaign_id, draft, entry_id, records, refs)
        write_ms = _elapsed_ms(started)
        if committed.stored is not None:  # settled by reading what was already stored
            return WriteOutcome(committed.stored, True, committed.replayed, write_ms, 0.0)
        commit_time = committed.commit_time
        if not self.write_then_read:
            entry = confirmed_entry(draft, entry_id, campaign_id, len(records), commit_time)
            return WriteOutcome(entry, False, False, write_ms, 0.0)
        started = time.perf_counter()
        entry = self._read_back(campaign_id, refs, commit_time)
        read_ms = _elapsed_ms(started)
        if entry is None:
            log.warning("read-back failed; answering with the write confirmation",
                        extra={"json_fields": {"entry_id": entry_id, "campaign_id": campaign_id}})
            entry = confirmed_entry(draft, entry_id, campaign_id, len(records), commit_time)
            return WriteOutcome(entry, False, False, write_ms, read_ms)
        return WriteOutcome(entry, True, False, write_ms, read_ms)

    def _commit(self, uid: str, campaign_id: str, draft: EntryDraft, entry_id: str,
                records: Sequence[tuple[str, dict[str, Any]]],
                refs: Sequence[firestore.DocumentReference]) -> _Committed:
        """Commit the batch, settling "already exists" and unknown outcomes by reading the ids."""
        campaign = self.campaign_ref(uid, campaign_id)
        campaign_exists = True  # most writes go to a campaign that exists: try the cheap update first
        campaign_switches = 0
        ambiguous_retries = 0
        while True:
            batch = self.client.batch()
            for ref, (_, fields) in zip(refs, records, strict=True):
                batch.create(ref, {**fields, "timestamp": firestore.SERVER_TIMESTAMP})
            if campaign_exists:
                batch.update(campaign, {"last_played": firestore.SERVER_TIMESTAMP})
            else:
                batch.create(campaign, {"created_at": firestore.SERVER_TIMESTAMP,
                                        "last_played": firestore.SERVER_TIMESTAMP})
            try:
                results = batch.commit(retry=None, timeout=self.timeout_s)
                return _Committed(commit_time=results[0].update_time)
            except gexc.NotFound:
                # the campaign does not exist yet: this is its first entry
                if not campaign_exists or campaign_switches >= 2:
                    raise PersistenceFailed("The story could not be saved (campaign missing).") from None
                campaign_exists, campaign_switches = False, campaign_switches + 1
            except gexc.AlreadyExists:
                if not campaign_exists and campaign_switches < 2:
                    # another request created the campaign first; the entry itself may be new
                    campaign_exists, campaign_switches = True, campaign_switches + 1
                    continue
                stored = self._settle_existing(uid, campaign_id, draft, entry_id)
                # after an unknown outcome, "already exists" is most likely our own first commit
                return _Committed(stored=stored, replayed=ambiguous_retries == 0)
            except AMBIGUOUS as exc:
                log.warning("commit outcome unknown; reading the deterministic ids",
                            extra={"json_fields": {"entry_id": entry_id, "error": repr(exc)}})
                stored = self._find_for_resolution(uid, campaign_id, entry_id)
                if stored is not None:
                    # an aborted commit was not applied: what is stored was written by another request
                    return _Committed(stored=_same_or_conflict(draft, stored), replayed=isinstance(exc, gexc.Aborted))
                if ambiguous_retries >= 1:
                    raise PersistenceFailed("The story could not be saved; please retry.") from exc
                ambiguous_retries += 1
            except gexc.GoogleAPICallError as exc:
                log.error("commit failed", extra={"json_fields": {"entry_id": entry_id, "error": repr(exc)}})
                raise PersistenceFailed("The story could not be saved; please retry.") from exc

    def _find_for_resolution(self, uid: str, campaign_id: str, entry_id: str) -> Entry | None:
        try:
            return self.find_entry(uid, campaign_id, entry_id)
        except (PersistenceFailed, IncompleteEntry) as exc:
            raise PersistenceFailed("The story may not have been saved; please retry.") from exc

    def _settle_existing(self, uid: str, campaign_id: str, draft: EntryDraft, entry_id: str) -> Entry:
        stored = self._find_for_resolution(uid, campaign_id, entry_id)
        if stored is None:
            raise PersistenceFailed("The story could not be saved; please retry.")
        return _same_or_conflict(draft, stored)

    def _read_back(self, campaign_id: str, refs: Sequence[firestore.DocumentReference],
                   commit_time: datetime) -> Entry | None:
        """One ``get_all()`` of every chunk, retried briefly; ``None`` when it never succeeded."""
        for attempt in range(1 + len(READ_BACKOFF_S)):
            try:
                snapshots = list(self.client.get_all(refs, retry=None, timeout=self.timeout_s))
                if len(snapshots) != len(refs) or not all(
                    s.exists and s.update_time >= commit_time for s in snapshots
                ):
                    raise _ReadBackMismatch("a chunk is missing or older than the commit")
                return assemble_entry(campaign_id, [s.to_dict() for s in snapshots])
            except (gexc.GoogleAPICallError, gexc.RetryError, _ReadBackMismatch, IncompleteEntry) as exc:
                log.warning("read-back attempt failed",
                            extra={"json_fields": {"attempt": attempt + 1, "error": repr(exc)}})
                if attempt < len(READ_BACKOFF_S):
                    time.sleep(READ_BACKOFF_S[attempt])
        return None

    # -- reads ---------------------------------------------------------------------------------------
    @_reads
    def find_entry(self, uid: str, campaign_id: str, entry_id: str) -> Entry | None:
        """The stored entry ``entry_id``, whole, or ``None`` if it was never written."""
        story = self._story(uid, campaign_id)
        first = story.document(chunk_doc_id(entry_id, 1)).get(retry=None, timeout=self.timeout_s)
        if not first.exists:
            return None
        records = [first.to_dict()]
        parts = records[0].get("parts", 1)
        if parts > 1:
            rest = [story.document(chunk_doc_id(entry_id, p)) for p in range(2, parts + 1)]
            records += [s.to_dict() for s in self.client.get_all(rest, retry=None, timeout=self.timeout_s) if s.exists]
        return assemble_entry(campaign_id, records)

    @_reads
    def campaign_exists(self, uid: str, campaign_id: str) -> bool:
        return self.campaign_ref(uid, campaign_id).get(retry=None, timeout=self.timeout_s).exists

    @_reads
    def recent_entries(self, uid: str, campaign_id: str, limit: int, before: str | None = None
                       ) -> tuple[list[Entry], str | None]:
        """The newest ``limit`` whole entries older than entry ``before``, oldest first, and the cursor
        for the page before them (``None`` when there is none). Queries part 1 of each entry, then
        fetches the other parts of multi-part entries in one ``get_all()``: an entry is never split."""
        story = self._story(uid, campaign_id)
        query = story.where(filter=FieldFilter("part", "==", 1)).order_by(
            "timestamp", direction=firestore.Query.DESCENDING)
        if before is not None:
            anchor = story.document(chunk_doc_id(before, 1)).get(retry=None, timeout=self.timeout_s)
            if not anchor.exists:
                raise InvalidArgument("'before' does not name an entry of this campaign.")
            query = query.start_after(anchor)
        firsts = [s.to_dict() for s in query.limit(limit + 1).stream(retry=None, timeout=self.timeout_s)]
        has_more = len(firsts) > limit
        firsts = firsts[:limit]
        rest_refs = [story.document(chunk_doc_id(f["entry_id"], p))
                     for f in firsts for p in range(2, f.get("parts", 1) + 1)]
        by_entry: dict[str, list[dict[str, Any]]] = {f["entry_id"]: [f] for f in firsts}
        if rest_refs:
            for snap in self.client.get_all(rest_refs, retry=None, timeout=self.timeout_s):
                if snap.exists:
                    data = snap.to_dict()
                    by_entry[data["entry_id"]].append(data)
        entries = [assemble_entry(campaign_id, by_entry[f["entry_id"]]) for f in reversed(firsts)]
        return entries, (firsts[-1]["entry_id"] if has_more else None)

    def list_story(self, uid: str, campaign_id: str, limit: int, before: str | None
                   ) -> tuple[list[Entry], str | None]:
        """``recent_entries`` for a campaign that must exist (404 otherwise)."""
        if not self.campaign_exists(uid, campaign_id):
            raise NotFound("No such campaign.")
        return self.recent_entries(uid, campaign_id, limit, before)


@functools.cache
def story_store() -> StoryStore:
    config = settings()
    return StoryStore(firestore_client(), write_then_read=config.write_then_read,
                      timeout_s=config.firestore_timeout_s)
