"""Entries map to chunk documents and back without loss, whatever their text and fields."""

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.core.chunking import MAX_CHUNK_BYTES
from shared.core.entry import EntryDraft
from shared.core.ids import chunk_doc_id, derived_entry_id, new_entry_id
from shared.core.records import IncompleteEntry, assemble_entry, chunk_records

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

fields = st.dictionaries(st.sampled_from(["session_header", "planning_block", "dice_rolls"]),
                         st.one_of(st.text(), st.integers(), st.lists(st.text(), max_size=3)), max_size=3)


@given(text=st.text(), actor=st.sampled_from(["user", "gemini"]), mode=st.sampled_from([None, "character", "god"]),
       structured=fields)
def test_records_reassemble_to_the_draft(text, actor, mode, structured) -> None:
    draft = EntryDraft(actor=actor, text=text, mode=mode, structured_fields=structured)
    records = chunk_records(draft, "e" * 32, NOW)
    stored = [{**fields_, "timestamp": NOW} for _, fields_ in reversed(records)]  # any order
    entry = assemble_entry("camp", stored)
    assert draft.same_content(entry)
    assert entry.parts == len(records)
    assert [doc_id for doc_id, _ in records] == [chunk_doc_id("e" * 32, p) for p in range(1, len(records) + 1)]
    assert ("mode" in records[0][1]) == (mode is not None)


def test_part_one_text_budget_shrinks_by_structured_fields() -> None:
    draft = EntryDraft(actor="gemini", text="x" * MAX_CHUNK_BYTES, structured_fields={"planning_block": "y" * 200_000})
    records = chunk_records(draft, "e" * 32, NOW)
    assert len(records) == 2
    assert len(records[0][1]["text"]) <= MAX_CHUNK_BYTES - 200_000


def test_a_missing_chunk_is_detected() -> None:
    draft = EntryDraft(actor="user", text="ab" * 10)
    chunks = chunk_records(draft, "e" * 32, NOW) * 2
    records = [{**f, "timestamp": NOW, "parts": 3, "part": i} for i, (_, f) in enumerate(chunks, 1)]
    with pytest.raises(IncompleteEntry):
        assemble_entry("camp", records[:2])


def test_ids() -> None:
    assert new_entry_id() != new_entry_id()
    a = derived_entry_id("u", "c", "key", "story")
    assert a == derived_entry_id("u", "c", "key", "story")
    assert len({a, derived_entry_id("u2", "c", "key", "story"), derived_entry_id("u", "c2", "key", "story"),
                derived_entry_id("u", "c", "key2", "story"), derived_entry_id("u", "c", "key", "user")}) == 5
