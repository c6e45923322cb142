"""Validation turns every malformed request into a 4xx naming the problem; good input passes unchanged."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.core import validation
from shared.core.errors import InvalidArgument, PayloadTooLarge, UnsupportedMediaType

JSON = "application/json"


def body(value) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize("raw, content_type, error", [
    (b"{}", "text/plain", UnsupportedMediaType),
    (b"{}", None, UnsupportedMediaType),
    (b"{", JSON, InvalidArgument),
    (b"[]", JSON, InvalidArgument),
    (b'{"a": NaN}', JSON, InvalidArgument),
    (b"\xff\xfe{}", JSON, InvalidArgument),
    (b"[" * 100_000 + b"]" * 100_000, JSON, InvalidArgument),
    (b" " * (validation.MAX_BODY_BYTES + 1), JSON, PayloadTooLarge),
])
def test_bad_bodies(raw, content_type, error) -> None:
    with pytest.raises(error):
        validation.json_object(raw, content_type)


def test_json_with_charset_is_accepted() -> None:
    assert validation.json_object(b'{"a": 1}', "application/json; charset=utf-8") == {"a": 1}


@pytest.mark.parametrize("value", ["", "a" * 129, "..", "a/b", "a b", "é", "%2F", "a\x00", "__x__", "____"])
def test_bad_campaign_ids(value) -> None:
    with pytest.raises(InvalidArgument):
        validation.campaign_id(value)


@given(st.from_regex(r"\A[A-Za-z0-9_-]{1,128}\Z").filter(lambda v: not (v.startswith("__") and v.endswith("__"))))
def test_good_campaign_ids(value) -> None:
    assert validation.campaign_id(value) == value


@pytest.mark.parametrize("value", ["", "a" * 256, "ключ", "a\nb", "\x7f"])
def test_bad_idempotency_keys(value) -> None:
    with pytest.raises(InvalidArgument):
        validation.idempotency_key(value)


@pytest.mark.parametrize("fields", [
    [1], "x", {"a": [[1]]}, {"__x__": 1}, {"a": {"__y__": 1}}, {"": 1}, {"text": "clash"}, {"part": 2},
    {"a": 2**63}, {"a": float("inf")}, {"a": [0] * 10_001}, {"a": "\ud800"}, {"\udfff": 1}, {"a": "x" * (256 * 1024)},
])
def test_unstorable_structured_fields(fields) -> None:
    with pytest.raises(InvalidArgument):
        validation.structured_fields(fields)


def test_nesting_limit() -> None:
    deep: dict = {}
    node = deep
    for _ in range(19):
        node["a"] = {}
        node = node["a"]
    assert validation.structured_fields(deep) == deep  # 20 levels counting the object itself
    node["a"] = {}
    with pytest.raises(InvalidArgument):
        validation.structured_fields(deep)


@pytest.mark.parametrize("payload", [
    {"text": "x"}, {"actor": "bot", "text": "x"}, {"actor": "user"}, {"actor": "user", "text": 5},
    {"actor": "user", "text": "x", "mode": "dm"}, {"actor": "user", "text": "x", "extra": 1},
    {"actor": "user", "text": "x" * (validation.MAX_TEXT_BYTES + 1)},
])
def test_bad_story_bodies(payload) -> None:
    with pytest.raises(InvalidArgument):
        validation.story_draft(payload)


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                      st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
storable = st.recursive(json_leaf, lambda children: st.dictionaries(
    st.text(min_size=1, max_size=10).filter(lambda k: not (k.startswith("__") and k.endswith("__"))), children,
    max_size=3), max_leaves=10)


@given(st.dictionaries(st.sampled_from(["session_header", "planning_block", "resources"]), storable, max_size=3))
def test_storable_fields_pass_unchanged(fields) -> None:
    assert validation.structured_fields(fields) == fields


@pytest.mark.parametrize("value", ["0", "501", "-1", "²", "1" * 5000, "1.5", " 1", ""])
def test_bad_page_limits(value) -> None:
    with pytest.raises(InvalidArgument):
        validation.page_limit(value)
