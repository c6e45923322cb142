"""A catalogue of hostile requests against the running functions (functions-framework processes on the
real emulator), sent byte for byte over raw sockets so that no client library tidies them up first.

Each one must get its 4xx as the contract's JSON error (``success: false``, a ``code``, a message), with
the CORS headers for the allowed origin it came from, and must write nothing. A few are answered by the
HTTP server in front of the functions before our code runs (over-long headers, unroutable paths); those
tests say so and check what that server does: a 4xx, and nothing written.
"""

from __future__ import annotations

import gzip
import http.client
import json
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.helpers import all_docs, local_token

ORIGIN = "http://localhost:3000"
UID = "mallet"
STORY = "/campaigns/c1/story"
INTERACTION = "/campaigns/c1/interaction"
MIB = 1024 * 1024
MAX_BODY = 5 * MIB
Headers = dict[str, "str | bytes | None"]


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name) or ""

    def describe(self) -> str:
        return f"{self.status} {dict(self.headers)} {self.body[:300]!r}"


def send(base_url: str, method: str, target: str | bytes, body: bytes = b"", headers: Headers | None = None, *,
         chunked: bool = False, timeout: float = 60) -> Answer:
    """One HTTP/1.1 request written by hand: ``target`` and header values go out exactly as given.

    Defaults: a valid token for ``UID``, ``Origin: http://localhost:3000``, ``Content-Type:
    application/json`` and a ``Content-Length`` (or chunked framing); a header given as ``None`` is left out.
    """
    url = urlsplit(base_url)
    fields: Headers = {"Host": url.netloc, "Authorization": f"Bearer {local_token(UID)}", "Origin": ORIGIN,
                       "Content-Type": "application/json", "Connection": "close"}
    fields.update(headers or {})
    if chunked:
        fields["Transfer-Encoding"] = "chunked"
    elif body or method in ("POST", "PUT", "PATCH"):
        fields.setdefault("Content-Length", str(len(body)))
    target = target.encode("latin-1") if isinstance(target, str) else target
    head = method.encode() + b" " + target + b" HTTP/1.1\r\n"
    for name, value in fields.items():
        if value is not None:
            head += name.encode() + b": " + (value.encode("latin-1") if isinstance(value, str) else value) + b"\r\n"
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as sock:
        sock.sendall(head + b"\r\n")
        try:
            if chunked:
                for start in range(0, len(body), MIB):
                    piece = body[start:start + MIB]
                    sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
                sock.sendall(b"0\r\n\r\n")
            else:
                sock.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading everything; its answer is still there
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        return Answer(response.status, response.msg, response.read())


def assert_rejected(answer: Answer, status: int, code: str) -> dict[str, Any]:
    """The contract's error: status, JSON body with ``success: false`` and ``code``, CORS for the origin."""
    assert answer.status == status, answer.describe()
    assert answer.header("Content-Type").startswith("application/json"), answer.describe()
    body = json.loads(answer.body)  # strict JSON: no NaN / Infinity tokens either
    assert body["success"] is False and body["code"] == code, body
    assert isinstance(body["error"], str) and body["error"].strip(), body
    assert b"Traceback" not in answer.body
    assert answer.header("Access-Control-Allow-Origin") == ORIGIN, answer.describe()
    assert "Origin" in answer.header("Vary"), answer.describe()
    return body


def strict_json(raw: bytes) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(raw, parse_constant=refuse)


@pytest.fixture
def urls(db, function_urls) -> dict[str, str]:
    """The running functions, with the emulator emptied for this test."""
    return function_urls


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def _nest(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value


# -- bodies ---------------------------------------------------------------------------------------------

STORY_OK = {"actor": "user", "text": "x"}
INTERACTION_OK = {"input": "x"}
BODIES_BOTH: list[tuple[str, bytes, bytes]] = [  # (case, story body, interaction body)
    ("malformed", b"{not json", b"{not json"),
    ("truncated", b'{"actor": "user", "text": "x"', b'{"input": "x"'),
    ("trailing garbage", _dump(STORY_OK) + b" x", _dump(INTERACTION_OK) + b" x"),
    ("two objects", _dump(STORY_OK) * 2, _dump(INTERACTION_OK) * 2),
    ("empty body", b"", b""),
    ("only whitespace", b" \r\n\t ", b" \r\n\t "),
    ("100k open brackets", b"[" * 100_000, b"[" * 100_000),
    ("100k nested arrays", b"[" * 100_000 + b"]" * 100_000, b"[" * 100_000 + b"]" * 100_000),
    ("100k nested objects", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
    ("JSON array", b"[]", b"[]"),
    ("JSON string", b'"x"', b'"x"'),
    ("JSON null", b"null", b"null"),
    ("JSON number", b"1", b"1"),
    ("NaN literal", b'{"actor": "user", "text": NaN}', b'{"input": NaN}'),
    ("Infinity literal", b'{"actor": "user", "text": -Infinity}', b'{"input": Infinity}'),
    ("invalid UTF-8", b'{"actor": "user", "text": "\xff\xfe"}', b'{"input": "\xff\xfe"}'),
    ("overlong UTF-8", b'{"actor": "user", "text": "\xc0\xaf"}', b'{"input": "\xc0\xaf"}'),
    ("UTF-8-encoded surrogate", b'{"actor": "user", "text": "\xed\xa0\x80"}', b'{"input": "\xed\xa0\x80"}'),
    ("truncated UTF-8 sequence", b'{"actor": "user", "text": "\xe6\xbc"}', b'{"input": "\xe6\xbc"}'),
    ("UTF-16 body", json.dumps(STORY_OK).encode("utf-16"), json.dumps(INTERACTION_OK).encode("utf-16")),
    ("UTF-8 BOM", b"\xef\xbb\xbf" + _dump(STORY_OK), b"\xef\xbb\xbf" + _dump(INTERACTION_OK)),
    ("lone high surrogate", b'{"actor": "user", "text": "a\\ud800b"}', b'{"input": "a\\ud800b"}'),
    ("lone low surrogate", b'{"actor": "user", "text": "\\udc00"}', b'{"input": "\\udc00"}'),
    ("reversed surrogate pair", b'{"actor": "user", "text": "\\udc00\\ud800"}', b'{"input": "\\udc00\\ud800"}'),
    ("unknown field", _dump({**STORY_OK, "extra": 1}), _dump({**INTERACTION_OK, "extra": 1})),
    ("NUL in a field name", b'{"act\\u0000or": "user", "text": "x"}', b'{"inp\\u0000ut": "x"}'),
    ("duplicate key, last one bad", b'{"actor": "user", "actor": "wizard", "text": "x"}',
     b'{"input": "x", "input": 5}'),
    ("required field missing", _dump({"actor": "user"}), _dump({"mode": "god"})),
    ("required field null", _dump({"actor": "user", "text": None}), _dump({"input": None})),
    ("wrong type", _dump({"actor": "user", "text": 5}), _dump({"input": ["x"]})),
    ("unknown mode", _dump({**STORY_OK, "mode": "hero"}), _dump({**INTERACTION_OK, "mode": "hero"})),
    ("mode of another type", _dump({**STORY_OK, "mode": 1}), _dump({**INTERACTION_OK, "mode": ["god"]})),
    ("text over 4,000,000 UTF-8 bytes", _dump({"actor": "user", "text": "€" * 1_400_000}),
     _dump({"input": "€" * 1_400_000})),
]

STRUCTURED_400: list[tuple[str, Any]] = [
    ("not an object", ["a"]),
    ("a string", "x"),
    ("arrays in arrays", {"dice_rolls": [[1, 2]]}),
    ("arrays in arrays, deeper", {"a": {"b": [{"c": [[]]}]}}),
    ("__reserved__ name", {"__x__": 1}),
    ("__reserved__ name, nested", {"a": {"__name__": 1}}),
    ("empty field name", {"": 1}),
    ("field name over 1500 bytes", {"é" * 751: 1}),
    ("nesting 21", _nest(20)),
    ("int above 2^63-1", {"n": 2**63}),
    ("int below -2^63", {"n": -(2**63) - 1}),
    ("entry field name: text", {"text": "shadow"}),
    ("entry field name: timestamp", {"timestamp": 0}),
    ("entry field name: entry_id", {"entry_id": "x"}),
    ("entry field name: requested_at", {"requested_at": None}),
    ("entry field name: parts", {"parts": 9}),
    ("over 256 KiB serialized", {"blob": "x" * (256 * 1024)}),
]
STRUCTURED_RAW_400: list[tuple[str, bytes]] = [
    ("nesting 500", b'{"a": ' * 499 + b"1" + b"}" * 499),
    ("int of 5000 digits", b"1" * 5000),
    ("number beyond a double", b"1e400"),
    ("negative number beyond a double", b"-1e400"),
    ("lone surrogate in a value", b'{"a": "\\ud800"}'),
    ("lone surrogate in a field name", b'{"\\udfff": 1}'),
]

BODY_CASES = (
    [pytest.param(STORY, story, id=f"story-{name}") for name, story, _ in BODIES_BOTH]
    + [pytest.param(INTERACTION, interaction, id=f"interaction-{name}") for name, _, interaction in BODIES_BOTH]
    + [pytest.param(STORY, _dump({"actor": actor, "text": "x"}), id=f"story-actor {actor!r}")
       for actor in ("wizard", None, "", "USER", 1)]
    + [pytest.param(STORY, _dump({"text": "x"}), id="story-actor missing")]
    + [pytest.param(STORY, _dump({**STORY_OK, "structured_fields": value}), id=f"story-structured {name}")
       for name, value in STRUCTURED_400]
    + [pytest.param(STORY, b'{"actor": "user", "text": "x", "structured_fields": {"v": ' + raw + b"}}",
                    id=f"story-structured {name}") for name, raw in STRUCTURED_RAW_400]
    + [pytest.param(INTERACTION, _dump({"input": text}), id=f"interaction-input {name}")
       for name, text in (("empty", ""), ("only whitespace", " \n\t "), ("ideographic space", "\u3000"))]
)


@pytest.mark.parametrize("path, body", BODY_CASES)
def test_bad_bodies_are_400_and_write_nothing(urls, db, path, body) -> None:
    answer = send(urls[path.rsplit("/", 1)[1]], "POST", path, body)
    assert_rejected(answer, 400, "invalid_argument")
    assert all_docs(db) == []


def test_a_gzip_body_is_not_unpacked(urls, db) -> None:
    answer = send(urls["story"], "POST", STORY, gzip.compress(_dump(STORY_OK)), {"Content-Encoding": "gzip"})
    assert_rejected(answer, 400, "invalid_argument")
    assert all_docs(db) == []


# -- media types and sizes ------------------------------------------------------------------------------

@pytest.mark.parametrize("path, body", [(STORY, _dump(STORY_OK)), (INTERACTION, _dump(INTERACTION_OK))],
                         ids=["story", "interaction"])
@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None, "",
    "text/json", "application/jsonp", "application/json-patch+json", "application/json5", "json", "*/*",
])
def test_bodies_that_are_not_sent_as_json_are_415(urls, db, path, body, content_type) -> None:
    answer = send(urls[path.rsplit("/", 1)[1]], "POST", path, body, {"Content-Type": content_type})
    assert_rejected(answer, 415, "unsupported_media_type")
    assert all_docs(db) == []


@pytest.mark.parametrize("path", [STORY, INTERACTION], ids=["story", "interaction"])
@pytest.mark.parametrize("framing, content_type, body", [
    ("content-length", "application/json", b'{"actor": "user", "text": "' + b"x" * MAX_BODY + b'"}'),
    ("chunked", "application/json", b'{"actor": "user", "text": "' + b"x" * MAX_BODY + b'"}'),
    ("content-length, one byte over", "application/json", _dump(STORY_OK).ljust(MAX_BODY + 1)),
    ("chunked, one byte over", "application/json", _dump(STORY_OK).ljust(MAX_BODY + 1)),
    ("content-length, not JSON either", "text/plain", b"x" * (6 * MIB)),
])
def test_bodies_over_5_mib_are_413(urls, db, path, framing, content_type, body) -> None:
    answer = send(urls[path.rsplit("/", 1)[1]], "POST", path, body, {"Content-Type": content_type},
                  chunked=framing.startswith("chunked"))
    assert_rejected(answer, 413, "payload_too_large")
    assert all_docs(db) == []


# -- headers --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path, body", [(STORY, _dump(STORY_OK)), (INTERACTION, _dump(INTERACTION_OK))],
                         ids=["story", "interaction"])
@pytest.mark.parametrize("key", [
    b"", b"   ", b"a" * 256, b"a" * 8000, "é".encode("latin-1"), "ключ".encode(), b"a\tb", b"\x00", b"\x01", b"a\x7fb",
], ids=["empty", "spaces", "256 chars", "8000 chars", "latin-1 byte", "UTF-8 bytes", "tab", "NUL", "control char",
        "DEL"])
def test_invalid_idempotency_keys_are_400(urls, db, path, body, key) -> None:
    answer = send(urls[path.rsplit("/", 1)[1]], "POST", path, body, {"Idempotency-Key": key})
    if any((c < 0x20 and c != 0x09) or c == 0x7F for c in key):
        # gunicorn refuses control characters in a header value itself: its own HTML 400, no CORS headers
        assert answer.status == 400, answer.describe()
        assert answer.header("Content-Type").startswith("text/html"), answer.describe()
    else:
        assert_rejected(answer, 400, "invalid_argument")
    assert all_docs(db) == []


@pytest.mark.parametrize("headers", [
    {"X-Padding": "a" * 65536},
    {"Idempotency-Key": "a" * 65536},
    {"Authorization": "Bearer " + "a" * 65536},
    {f"X-Header-{i}": "v" for i in range(150)},
], ids=["64 KiB unrelated header", "64 KiB Idempotency-Key", "64 KiB Authorization", "150 headers"])
def test_over_long_headers_are_refused_by_the_server_before_our_code(urls, db, headers) -> None:
    """gunicorn (8190 bytes per header line, 100 header fields) answers 431 itself, in HTML and without
    CORS headers: the request never reaches the function. Still a 4xx, and nothing is written."""
    answer = send(urls["story"], "POST", STORY, _dump(STORY_OK), headers)
    assert answer.status == 431, answer.describe()
    assert answer.header("Content-Type").startswith("text/html"), answer.describe()
    assert all_docs(db) == []


# -- paths ----------------------------------------------------------------------------------------------

CAMPAIGN_IDS = [
    "..", "%2E%2E", ".%2e", ".", "a%2Fb", "a/b", "..%2F..%2Fusers%2Fbob", "%2E%2E/%2E%2E", "..%5C..", "a%5Cb",
    "a\\b", "caf%C3%A9", "%EF%BD%83%EF%BC%91", "%F0%9F%98%80", "%00", "x%00y", "%FF", "%20", "a%20b", "%09", "%0D",
    "", "x" * 129, "x" * 10_000, "c1;x", "c1%3Bx", "c1%3Fx=1", "c1%23frag", "%25", "__x__", "____", "%5F%5Fx%5F%5F",
]


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/campaigns/{}/story", _dump(STORY_OK)),
    ("GET", "/campaigns/{}/story", b""),
    ("POST", "/campaigns/{}/interaction", _dump(INTERACTION_OK)),
    ("POST", "/api/campaigns/{}/story", _dump(STORY_OK)),
], ids=["story POST", "story GET", "interaction POST", "story POST /api"])
@pytest.mark.parametrize("campaign_id", CAMPAIGN_IDS, ids=[c if len(c) < 40 else f"{len(c)} x" for c in CAMPAIGN_IDS])
def test_hostile_campaign_ids_are_400(urls, db, method, path, body, campaign_id) -> None:
    answer = send(urls[path.rsplit("/", 1)[1]], method, path.format(campaign_id), body)
    assert_rejected(answer, 400, "invalid_argument")
    assert all_docs(db) == []


@pytest.mark.parametrize("campaign_id", ["%0A", "a%0Ab", "c1%0A"])
def test_paths_with_a_line_feed_are_refused_by_the_framework(urls, db, campaign_id) -> None:
    """functions-framework's catch-all route cannot match a path with a line feed in it, so Flask answers
    its own HTML 404 without CORS headers; the function never sees the request. A 4xx, nothing written."""
    answer = send(urls["story"], "POST", f"/campaigns/{campaign_id}/story", _dump(STORY_OK))
    assert answer.status == 404, answer.describe()
    assert answer.header("Content-Type").startswith("text/html"), answer.describe()
    assert all_docs(db) == []


@pytest.mark.parametrize("function, target", [
    ("story", "/"), ("story", "/campaigns"), ("story", "/campaigns/c1"), ("story", "/campaigns/c1/story/x"),
    ("story", "/campaigns/c1/storyx"), ("story", "/campaigns/c1/story//"), ("story", "/campaigns/c1/interaction"),
    ("story", "/API/campaigns/c1/story"), ("story", "/api/v2/campaigns/c1/story"), ("story", "/campaigns/c1/STORY"),
    ("interaction", "/campaigns/c1/story"), ("interaction", "/campaigns/c1/interaction/x"),
])
def test_other_paths_are_404(urls, db, function, target) -> None:
    body = _dump(STORY_OK if function == "story" else INTERACTION_OK)
    assert_rejected(send(urls[function], "POST", target, body), 404, "not_found")
    assert all_docs(db) == []


# -- methods --------------------------------------------------------------------------------------------

OTHER_METHODS = ("PUT", "DELETE", "PATCH", "TRACE", "PROPFIND", "FOO")
UNSUPPORTED = [("story", STORY, "POST, GET, OPTIONS", m) for m in OTHER_METHODS]
UNSUPPORTED += [("interaction", INTERACTION, "POST, OPTIONS", m) for m in ("GET", *OTHER_METHODS)]


@pytest.mark.parametrize("function, path, allow, method", UNSUPPORTED, ids=[f"{f}-{m}" for f, _, _, m in UNSUPPORTED])
def test_unsupported_methods_are_405_with_allow(urls, db, function, path, allow, method) -> None:
    body = _dump(STORY_OK if function == "story" else INTERACTION_OK)
    answer = send(urls[function], method, path, body)
    assert_rejected(answer, 405, "method_not_allowed")
    assert answer.header("Allow") == allow
    assert all_docs(db) == []


@pytest.mark.parametrize("function, path", [("story", STORY), ("interaction", INTERACTION)])
def test_head_is_405_without_a_body(urls, db, function, path) -> None:
    answer = send(urls[function], "HEAD", path)
    assert answer.status == 405 and answer.body == b"", answer.describe()
    assert "OPTIONS" in answer.header("Allow") and answer.header("Access-Control-Allow-Origin") == ORIGIN
    assert all_docs(db) == []


# -- query parameters -----------------------------------------------------------------------------------

def _seed(urls: dict[str, str], campaign_id: str, n: int = 3) -> list[str]:
    ids = []
    for i in range(n):
        answer = send(urls["story"], "POST", f"/campaigns/{campaign_id}/story",
                      _dump({"actor": "user", "text": f"entry {i}"}))
        assert answer.status == 201, answer.describe()
        ids.append(json.loads(answer.body)["entry"]["id"])
    return ids


@pytest.mark.parametrize("query", [
    "limit=0", "limit=501", "limit=-1", "limit=%2B5", "limit=abc", "limit=1.5", "limit=1e2", "limit=", "limit=%205",
    "limit=0x10", "limit=%C2%B2", "limit=%D9%A3", "limit=%EF%BC%95", "limit=" + "1" * 5000, "limit=" + "9" * 20,
    "before=", "before=nope", "before=" + "A" * 32, "before=" + "a" * 31, "before=" + "a" * 33,
    "before=" + "a" * 32, "before=" + "a" * 32 + "%0A", "before=..%2F..%2Fx", "before=%00", "before=OTHER",
], ids=lambda q: q if len(q) < 50 else q[:20] + f"…({len(q)} chars)")
def test_bad_query_parameters_are_400(urls, db, query) -> None:
    _seed(urls, "c1")
    [other] = _seed(urls, "c2", 1)  # an entry of another campaign is no cursor for this one
    stored = sorted(all_docs(db))
    assert len(stored) == 4 + 2  # the entries and their campaigns: all_docs sees what was written
    answer = send(urls["story"], "GET", f"{STORY}?{query.replace('OTHER', other)}")
    assert_rejected(answer, 400, "invalid_argument")
    assert sorted(all_docs(db)) == stored


# -- what is storable is stored exactly -----------------------------------------------------------------

def test_nul_characters_are_stored_and_read_back_unchanged(urls, db) -> None:
    """Firestore stores NUL in strings and in field names (checked on the emulator), so the functions
    accept it: every NUL comes back exactly as sent, and the listing is strict JSON."""
    text = "before\x00after \x00\x00 end"
    fields = {"k\x00ey": "v\x00alue", "nested": {"\x00": ["\x00", {"x\x00": None}]}}
    created = send(urls["story"], "POST", STORY, _dump({"actor": "gemini", "text": text, "structured_fields": fields}))
    assert created.status == 201, created.describe()
    turn = send(urls["interaction"], "POST", INTERACTION, _dump({"input": "I say \x00 aloud", "mode": "god"}))
    assert turn.status == 200, turn.describe()
    listed = send(urls["story"], "GET", STORY)
    assert listed.status == 200, listed.describe()
    entries = strict_json(listed.body)["entries"]
    assert [e["text"] for e in entries][:2] == [text, "I say \x00 aloud"]
    assert entries[0]["structured_fields"] == fields
    assert entries[0] == strict_json(created.body)["entry"]


# -- who may ask ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer ", "Bearer a.b.c", "Bearer " + "a" * 7000, "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
    f"Bearer {local_token(UID, project='another-project')}", f"Bearer {local_token('__x__')}",
    f"Bearer {local_token('..')}", f"Bearer {local_token('a/b')}", f"Bearer {local_token('x' * 129)}",
    f"Bearer {local_token('')}", f"Bearer {local_token(UID, exp=1)}",
], ids=["none", "empty", "scheme only", "scheme and space", "not a JWT", "7000 chars", "Basic", "other project",
        "uid __x__", "uid ..", "uid with slash", "uid of 129 chars", "empty uid", "expired"])
@pytest.mark.parametrize("path, body", [(STORY, _dump(STORY_OK)), (INTERACTION, _dump(INTERACTION_OK))],
                         ids=["story", "interaction"])
def test_hostile_credentials_are_401(urls, db, path, body, authorization) -> None:
    answer = send(urls[path.rsplit("/", 1)[1]], "POST", path, body, {"Authorization": authorization})
    assert_rejected(answer, 401, "unauthenticated")
    assert all_docs(db) == []


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://localhost.evil.example",
                                    "http://localhost:3000.evil.example", "https://localhost:3000",
                                    "http://127.0.0.1@evil.example", "HTTP://LOCALHOST:3000", None])
def test_disallowed_origins_get_no_cors_grant(urls, db, origin) -> None:
    rejected = send(urls["story"], "POST", STORY, b"{not json", {"Origin": origin})
    assert rejected.status == 400 and json.loads(rejected.body)["code"] == "invalid_argument"
    preflight = send(urls["story"], "OPTIONS", STORY, headers={"Origin": origin,
                                                               "Access-Control-Request-Method": "POST"})
    assert preflight.status == 204
    for answer in (rejected, preflight):
        assert "Access-Control-Allow-Origin" not in answer.headers, answer.describe()
        assert answer.header("Vary") == "Origin"
    assert all_docs(db) == []
