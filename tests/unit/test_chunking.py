"""Chunking must give back any text exactly, with every chunk a storable size and valid UTF-8."""

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.chunking import MAX_CHUNK_BYTES, join_chunks, split_text

# Small limits make hypothesis reach the boundaries (a 4-byte emoji split across a limit) cheaply.
limits = st.integers(min_value=4, max_value=64)


@given(text=st.text(), limit=limits)
def test_any_text_round_trips_and_fits(text: str, limit: int) -> None:
    chunks = split_text(text, max_bytes=limit)
    assert join_chunks(chunks) == text
    assert all(len(c.encode("utf-8")) <= limit for c in chunks)
    assert all(c for c in chunks) or chunks == [""]


@given(text=st.text(), limit=limits, first=limits)
def test_first_chunk_has_its_own_budget(text: str, limit: int, first: int) -> None:
    chunks = split_text(text, max_bytes=limit, first_max_bytes=first)
    assert join_chunks(chunks) == text
    assert len(chunks[0].encode("utf-8")) <= first
    assert all(len(c.encode("utf-8")) <= limit for c in chunks[1:])


@given(text=st.text(alphabet=st.characters(min_codepoint=0x80, exclude_categories=["Cs"]), min_size=1), limit=limits)
def test_chunks_are_as_full_as_a_character_boundary_allows(text: str, limit: int) -> None:
    chunks = split_text(text, max_bytes=limit)
    # every chunk but the last was cut at most 3 bytes short (one multi-byte character)
    assert all(len(c.encode("utf-8")) > limit - 4 for c in chunks[:-1])


def test_empty_text_is_one_empty_chunk() -> None:
    assert split_text("") == [""]


@settings(max_examples=5, deadline=None)
@given(st.sampled_from(["é", "漢", "😀", "a"]))
def test_real_limit_on_large_text(char: str) -> None:
    text = char * (2_500_000 // len(char.encode("utf-8")))
    chunks = split_text(text)
    assert join_chunks(chunks) == text
    assert [len(c.encode("utf-8")) <= MAX_CHUNK_BYTES for c in chunks] == [True] * 3
