"""Write-then-read on the real emulator: what the store returns is what Firestore holds, whole or not at all."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.batch import WriteBatch

from shared.adapters.firestore_store import StoryStore
from shared.core.entry import EntryDraft
from shared.core.errors import IdempotencyConflict, PersistenceFailed
from shared.core.ids import chunk_doc_id, new_entry_id
from tests.helpers import PROJECT, story_docs

MIXED = "Ça va? 漢字かな 😀🐉 ñandú — " * 50_000  # ~2.6 MB of 1-4 byte characters
NOW = datetime.now(UTC)


class FaultyClient(firestore.Client):
    """The real client, with a fault injected around the real calls (the emulator still does the work)."""

    def __init__(self, *, commit_then_raise: int = 0, commit_raise_before: int = 0, get_all_raises: int = 0,
                 **kwargs) -> None:
        super().__init__(project=PROJECT, **kwargs)
        self.commit_then_raise = commit_then_raise
        self.commit_raise_before = commit_raise_before
        self.get_all_raises = get_all_raises
        self.commits = 0
        self.get_all_calls = 0

    def batch(self) -> WriteBatch:
        client = self

        class Batch(WriteBatch):
            def commit(self, *args, **kwargs):
                client.commits += 1
                if client.commit_raise_before > 0:
                    client.commit_raise_before -= 1
                    raise gexc.ServiceUnavailable("injected: connection reset before commit")
                result = super().commit(*args, **kwargs)
                if client.commit_then_raise > 0:
                    client.commit_then_raise -= 1
                    raise gexc.DeadlineExceeded("injected: deadline exceeded after the commit applied")
                return result

        return Batch(self)

    def get_all(self, *args, **kwargs):
        self.get_all_calls += 1
        if self.get_all_raises > 0:
            self.get_all_raises -= 1
            raise gexc.ServiceUnavailable("injected: read failed")
        return super().get_all(*args, **kwargs)


def store(client=None, **kwargs) -> StoryStore:
    return StoryStore(client or firestore.Client(project=PROJECT), **kwargs)


def test_large_mixed_entry_is_three_chunks_in_one_commit(db) -> None:
    draft = EntryDraft(actor="gemini", text=MIXED, mode="character", structured_fields={"session_header": "S"})
    outcome = store().append("alice", "c1", draft, new_entry_id(), NOW)
    assert outcome.verified and not outcome.replayed
    assert outcome.entry.text.encode() == MIXED.encode()
    docs = story_docs(db, "alice", "c1")
    assert len(docs) == 3 and sorted(d.get("part") for d in docs) == [1, 2, 3]
    assert len({d.update_time for d in docs}) == 1, "all chunks must come from one commit"
    assert len({d.get("timestamp") for d in docs}) == 1
    assert all(len(d.get("text").encode()) <= 900_000 for d in docs)
    assert db.document("users/alice/campaigns/c1").get().get("last_played") is not None


def test_empty_text_entry_is_stored_as_one_chunk(db) -> None:
    draft = EntryDraft(actor="gemini", text="", structured_fields={"planning_block": {"thinking": "hmm"}})
    outcome = store().append("alice", "c1", draft, new_entry_id(), NOW)
    assert outcome.entry.text == "" and outcome.entry.structured_fields == {"planning_block": {"thinking": "hmm"}}
    [doc] = story_docs(db, "alice", "c1")
    assert doc.get("planning_block") == {"thinking": "hmm"} and doc.get("parts") == 1


def test_first_entry_creates_the_campaign_once(db) -> None:
    s = store()
    s.append("alice", "c1", EntryDraft(actor="user", text="one"), new_entry_id(), NOW)
    created = db.document("users/alice/campaigns/c1").get()
    s.append("alice", "c1", EntryDraft(actor="user", text="two"), new_entry_id(), NOW)
    again = db.document("users/alice/campaigns/c1").get()
    assert again.get("created_at") == created.get("created_at")
    assert again.get("last_played") > created.get("last_played")


def test_a_batch_that_fails_on_one_chunk_leaves_nothing(db) -> None:
    entry_id = new_entry_id()
    # Another document already holds chunk 2's id, so creating it fails inside the batch.
    db.document(f"users/alice/campaigns/c1/story/{chunk_doc_id(entry_id, 2)}").create({"squatter": True})
    db.document("users/alice/campaigns/c1").create({"last_played": NOW})
    with pytest.raises(PersistenceFailed):
        store().append("alice", "c1", EntryDraft(actor="user", text=MIXED), entry_id, NOW)
    left = story_docs(db, "alice", "c1")
    assert [d.id for d in left] == [chunk_doc_id(entry_id, 2)], "chunks 1 and 3 must not exist"
    assert db.document("users/alice/campaigns/c1").get().get("last_played") == NOW


def test_flag_off_skips_the_read_and_says_unverified(db) -> None:
    client = FaultyClient()
    outcome = store(client, write_then_read=False).append("alice", "c1", EntryDraft(actor="user", text="hi"),
                                                         new_entry_id(), NOW)
    assert not outcome.verified and client.get_all_calls == 0
    assert outcome.entry.text == "hi" and len(story_docs(db, "alice", "c1")) == 1


def test_read_back_failure_retries_then_falls_back(db) -> None:
    client = FaultyClient(get_all_raises=3)
    outcome = store(client).append("alice", "c1", EntryDraft(actor="user", text="hi"), new_entry_id(), NOW)
    assert client.get_all_calls == 3
    assert not outcome.verified and outcome.entry.text == "hi"
    assert len(story_docs(db, "alice", "c1")) == 1, "the entry is stored even though it was not read back"


def test_read_back_recovers_on_a_retry(db) -> None:
    client = FaultyClient(get_all_raises=2)
    outcome = store(client).append("alice", "c1", EntryDraft(actor="user", text="hi"), new_entry_id(), NOW)
    assert client.get_all_calls == 3 and outcome.verified


def test_ambiguous_commit_that_applied_is_one_entry(db) -> None:
    client = FaultyClient(commit_then_raise=1)
    outcome = store(client).append("alice", "c1", EntryDraft(actor="user", text=MIXED), new_entry_id(), NOW)
    assert outcome.verified and outcome.entry.text == MIXED
    assert client.commits == 2  # update (campaign missing) then create; the latter "timed out" after applying
    assert len(story_docs(db, "alice", "c1")) == 3


def test_ambiguous_commit_that_did_not_apply_is_retried_once(db) -> None:
    client = FaultyClient(commit_raise_before=1)
    outcome = store(client).append("alice", "c1", EntryDraft(actor="user", text="hi"), new_entry_id(), NOW)
    assert outcome.verified and len(story_docs(db, "alice", "c1")) == 1


def test_ambiguous_commit_that_never_applies_fails_cleanly(db) -> None:
    client = FaultyClient(commit_raise_before=5)
    with pytest.raises(PersistenceFailed):
        store(client).append("alice", "c1", EntryDraft(actor="user", text="hi"), new_entry_id(), NOW)
    assert story_docs(db, "alice", "c1") == []


def test_same_id_same_content_is_a_replay_and_different_content_conflicts(db) -> None:
    s, entry_id = store(), new_entry_id()
    first = s.append("alice", "c1", EntryDraft(actor="user", text="hi"), entry_id, NOW)
    again = s.append("alice", "c1", EntryDraft(actor="user", text="hi"), entry_id, NOW)
    assert again.replayed and again.entry == first.entry
    with pytest.raises(IdempotencyConflict):
        s.append("alice", "c1", EntryDraft(actor="user", text="other"), entry_id, NOW)
    assert len(story_docs(db, "alice", "c1")) == 1


def test_unreachable_firestore_is_a_persistence_failure(db, monkeypatch) -> None:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:9")  # nothing listens there
    dead = firestore.Client(project=PROJECT)
    with pytest.raises(PersistenceFailed):
        StoryStore(dead, timeout_s=1).append("alice", "c1", EntryDraft(actor="user", text="hi"), new_entry_id(), NOW)
