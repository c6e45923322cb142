"""The persistence metric's maths, path matching and field mapping, for any values an event can carry."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.core.chunking import MAX_CHUNK_BYTES
from shared.core.entry import EntryDraft
from shared.core.metrics import (
    REQUIRED_FIELDS,
    MalformedRecord,
    StoryPath,
    elapsed_ms,
    event_age_s,
    is_too_old,
    parse_rfc3339,
    persisted_metric,
    read_chunk,
    redacted_path,
    story_path,
)
from shared.core.records import chunk_records

NOW = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

# Firestore document ids: any characters but "/" (and not "." or "..", which hypothesis may still draw).
segments = st.text(st.characters(blacklist_characters="/", blacklist_categories=("Cs",)), min_size=1, max_size=20)
offsets = st.integers(min_value=-23 * 60, max_value=23 * 60).map(lambda m: timezone(timedelta(minutes=m)))
moments = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=offsets)
spans = st.timedeltas(min_value=timedelta(days=-400), max_value=timedelta(days=400))


# -- paths -----------------------------------------------------------------------------------------

@given(uid=segments, campaign=segments, doc=segments, project=segments, database=segments)
def test_story_paths_match_in_every_form_eventarc_writes(uid, campaign, doc, project, database) -> None:
    path = f"users/{uid}/campaigns/{campaign}/story/{doc}"
    expected = StoryPath(uid, campaign, doc)
    assert story_path(path) == expected
    assert story_path(f"documents/{path}") == expected
    assert story_path(f"projects/{project}/databases/{database}/documents/{path}") == expected


@given(uid=segments, campaign=segments, doc=segments, extra=segments)
def test_other_documents_do_not_match(uid, campaign, doc, extra) -> None:
    assert story_path(f"users/{uid}/campaigns/{campaign}") is None
    assert story_path(f"users/{uid}/campaigns/{campaign}/story/{doc}/{extra}/x") is None
    assert story_path(f"users/{uid}/campaigns/{campaign}/story") is None
    if extra != "story":
        assert story_path(f"users/{uid}/campaigns/{campaign}/{extra}/{doc}") is None
    assert story_path(f"{extra}x/users/{uid}/campaigns/{campaign}/story/{doc}") is None


@given(uid=segments, rest=st.lists(segments, min_size=1, max_size=5))
def test_redacted_paths_never_contain_the_uid_segment(uid, rest) -> None:
    redacted = redacted_path(f"documents/users/{uid}/" + "/".join(rest))
    assert redacted.split("/")[:2] == ["users", "*"]
    assert redacted.split("/")[2:] == rest


# -- times -----------------------------------------------------------------------------------------

@given(start=moments, span=spans)
def test_elapsed_is_exact_to_the_microsecond(start, span) -> None:
    assert elapsed_ms(start, start + span) == span // timedelta(microseconds=1) / 1000
    assert elapsed_ms(start + span, start) == -elapsed_ms(start, start + span)


@given(moment=moments, other=offsets)
def test_elapsed_does_not_depend_on_the_time_zone(moment, other) -> None:
    assert elapsed_ms(moment, moment.astimezone(other)) == 0


def test_naive_times_are_taken_as_utc() -> None:
    assert elapsed_ms(NOW.replace(tzinfo=None), NOW + timedelta(milliseconds=1.5)) == 1.5


@given(moment=moments)
def test_rfc3339_round_trips(moment) -> None:
    assert parse_rfc3339(moment.isoformat()) == moment
    assert parse_rfc3339(moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")) == moment


@given(moment=moments, nanos=st.integers(min_value=0, max_value=999))
def test_rfc3339_nanoseconds_are_truncated(moment, nanos) -> None:
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + f"{nanos:03d}Z"
    assert parse_rfc3339(text) == moment


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01T00:00:00Z", "2026-01-01T00:00:00", "2026-01-01"])
def test_rfc3339_rejects_what_is_not_a_time(text) -> None:
    assert parse_rfc3339(text) is None


@given(event_time=moments, age=spans, max_age=st.floats(min_value=0, max_value=10**7))
def test_too_old_means_older_than_the_maximum_age(event_time, age, max_age) -> None:
    now = event_time + age
    assert event_age_s(event_time, now) == age // timedelta(microseconds=1) / 1_000_000
    assert is_too_old(event_time, now, max_age) == (event_age_s(event_time, now) > max_age)


# -- records → metric fields -----------------------------------------------------------------------

def stored(draft: EntryDraft, requested_at: datetime = NOW) -> list[dict]:
    """The chunk documents the store writes for ``draft`` (timestamp added as the commit would)."""
    return [{**fields, "timestamp": requested_at} for _, fields in chunk_records(draft, "e" * 32, requested_at)]


@given(text=st.text(max_size=200), actor=st.sampled_from(["user", "gemini"]),
       mode=st.sampled_from([None, "character", "god"]), lag=spans, delay=spans,
       structured=st.dictionaries(st.sampled_from(["planning_block", "dice_rolls"]), st.text(max_size=5)))
def test_part_one_maps_to_the_metric_fields(text, actor, mode, lag, delay, structured) -> None:
    draft = EntryDraft(actor=actor, text=text, mode=mode, structured_fields=structured)
    (record,) = stored(draft)
    create_time = NOW + lag
    fields = persisted_metric(read_chunk(record), campaign_id="camp", create_time=create_time,
                              now=create_time + delay)
    assert fields == {
        "event": "story_entry_persisted", "entry_id": "e" * 32, "campaign_id": "camp", "actor": actor,
        "mode": mode, "parts": 1, "text_bytes": len(text.encode("utf-8")), "text_bytes_complete": True,
        "commit_lag_ms": lag // timedelta(microseconds=1) / 1000,
        "trigger_delay_ms": delay // timedelta(microseconds=1) / 1000,
    }
    assert "uid" not in fields


def test_a_multi_part_entry_reports_part_one_text_and_every_chunk_reads() -> None:
    text = "é" * (MAX_CHUNK_BYTES + 1)  # 2 bytes a character: three chunks
    records = stored(EntryDraft(actor="gemini", text=text))
    chunks = [read_chunk(r) for r in records]
    assert [c.part for c in chunks] == [1, 2, 3] and {c.parts for c in chunks} == {3}
    assert sum(c.text_bytes for c in chunks) == len(text.encode("utf-8"))
    fields = persisted_metric(chunks[0], campaign_id="c", create_time=NOW, now=NOW)
    assert fields["parts"] == 3
    assert fields["text_bytes"] == chunks[0].text_bytes <= MAX_CHUNK_BYTES
    assert fields["text_bytes_complete"] is False


@given(missing=st.sets(st.sampled_from(REQUIRED_FIELDS), min_size=1))
def test_a_missing_field_is_malformed(missing) -> None:
    (record,) = stored(EntryDraft(actor="user", text="hi"))
    with pytest.raises(MalformedRecord, match="missing"):
        read_chunk({k: v for k, v in record.items() if k not in missing})


@pytest.mark.parametrize("change", [
    {"part": True}, {"part": "1"}, {"part": 0}, {"part": 3, "parts": 2}, {"parts": 1.0}, {"entry_id": ""},
    {"entry_id": 7}, {"actor": None}, {"text": b"bytes"}, {"mode": 3}, {"requested_at": "2026-01-01T00:00:00Z"},
])
def test_a_field_of_the_wrong_kind_is_malformed(change) -> None:
    (record,) = stored(EntryDraft(actor="user", text="hi"))
    with pytest.raises(MalformedRecord):
        read_chunk({**record, **change})


def test_a_missing_mode_is_none_and_extra_fields_are_ignored() -> None:
    (record,) = stored(EntryDraft(actor="user", text="hi", structured_fields={"planning_block": {"a": 1}}))
    assert "mode" not in record
    assert read_chunk(record).mode is None
