"""The story function over HTTP (functions-framework's real app, test client) on the real emulator."""

from __future__ import annotations

import json

import pytest

from tests.helpers import all_docs, auth, local_token, story_docs

PATH = "/campaigns/c1/story"
MIXED = "Ça va? 漢字かな 😀🐉 ñandú — " * 50_000  # ~2.6 MB


def post(client, body, path=PATH, **headers):
    return client.post(path, data=json.dumps(body), content_type="application/json", headers=auth(**headers))


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert body["success"] is False and body["code"] == code and body["error"]
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "Vary" in response.headers and "Traceback" not in response.get_data(as_text=True)
    return body


def test_post_then_get_returns_the_stored_entry(story_client, db) -> None:
    created = post(story_client, {"actor": "user", "text": "I open the door.", "mode": "character"})
    assert created.status_code == 201
    body = created.get_json()
    assert body["success"] and body["verified"] is True and body["replayed"] is False
    entry = body["entry"]
    assert entry["text"] == "I open the door." and entry["actor"] == "user" and entry["campaign_id"] == "c1"
    assert entry["timestamp"].endswith("Z") and entry["parts"] == 1
    listed = story_client.get(PATH, headers=auth())
    assert listed.status_code == 200
    assert listed.get_json() == {"success": True, "entries": [entry], "next_before": None}
    [doc] = story_docs(db, "alice", "c1")
    assert doc.get("text") == "I open the door." and doc.get("entry_id") == entry["id"]


def test_large_multibyte_entry_round_trips_byte_identical(story_client, db) -> None:
    fields = {"session_header": "Chapter 2", "dice_rolls": ["d20 = 14"], "resources": {"gold": 12}}
    created = post(story_client, {"actor": "gemini", "text": MIXED, "structured_fields": fields})
    assert created.status_code == 201
    assert created.get_json()["entry"]["parts"] == 3
    [listed] = story_client.get(PATH, headers=auth()).get_json()["entries"]
    assert listed["text"].encode("utf-8") == MIXED.encode("utf-8")
    assert listed["structured_fields"] == fields
    docs = story_docs(db, "alice", "c1")
    assert len(docs) == 3 and len({d.update_time for d in docs}) == 1


def test_idempotent_replay_and_conflict(story_client, db) -> None:
    body = {"actor": "user", "text": "once"}
    first = post(story_client, body, **{"Idempotency-Key": "k-1"})
    again = post(story_client, body, **{"Idempotency-Key": "k-1"})
    assert first.status_code == 201 and again.status_code == 200
    assert again.get_json()["replayed"] is True and again.get_json()["entry"] == first.get_json()["entry"]
    assert_error(post(story_client, {"actor": "user", "text": "twice"}, **{"Idempotency-Key": "k-1"}),
                 409, "idempotency_conflict")
    assert len(story_docs(db, "alice", "c1")) == 1


def test_pages_never_split_entries(story_client) -> None:
    texts = [f"entry {i} " + ("é" * 500_000 if i % 2 else "") for i in range(5)]
    for text in texts:
        assert post(story_client, {"actor": "user", "text": text}).status_code == 201
    seen, before = [], None
    while True:
        query = f"?limit=2{'&before=' + before if before else ''}"
        page = story_client.get(PATH + query, headers=auth()).get_json()
        assert len(page["entries"]) <= 2
        seen = [e["text"] for e in page["entries"]] + seen
        before = page["next_before"]
        if before is None:
            break
    assert seen == texts


def test_campaigns_belong_to_their_user(story_client) -> None:
    assert post(story_client, {"actor": "user", "text": "mine"}).status_code == 201
    other = story_client.get(PATH, headers=auth("mallory"))
    assert_error(other, 404, "not_found")


@pytest.mark.parametrize("raw, content_type", [
    ("{not json", "application/json"),
    ('{"actor": "user", "text": 5}', "application/json"),
    ('{"actor": "wizard", "text": "x"}', "application/json"),
    ('{"actor": "user", "text": "x", "structured_fields": {"a": [[1]]}}', "application/json"),
    ('{"actor": "user", "text": "x", "structured_fields": {"__x__": 1}}', "application/json"),
    ('["actor"]', "application/json"),
])
def test_bad_bodies_are_400_and_write_nothing(story_client, db, raw, content_type) -> None:
    response = story_client.post(PATH, data=raw, content_type=content_type, headers=auth())
    assert_error(response, 400, "invalid_argument")
    assert all_docs(db) == []


@pytest.mark.parametrize("path", ["/campaigns/bad.id/story", "/campaigns/a%2Fb/story", "/campaigns/%2E%2E/story",
                                  "/campaigns/caf%C3%A9/story", "/campaigns/" + "x" * 129 + "/story"])
def test_bad_campaign_ids_are_400(story_client, db, path) -> None:
    assert_error(post(story_client, {"actor": "user", "text": "x"}, path=path), 400, "invalid_argument")
    assert all_docs(db) == []


def test_status_codes_of_the_contract(story_client, db) -> None:
    assert_error(story_client.post(PATH, data="{}", content_type="text/plain", headers=auth()),
                 415, "unsupported_media_type")
    huge = b'{"actor": "user", "text": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    assert_error(story_client.post(PATH, data=huge, content_type="application/json", headers=auth()),
                 413, "payload_too_large")
    delete = story_client.delete(PATH, headers=auth())
    assert_error(delete, 405, "method_not_allowed")
    assert "POST" in delete.headers["Allow"] and "GET" in delete.headers["Allow"]
    assert_error(story_client.get("/nowhere", headers=auth()), 404, "not_found")
    assert_error(story_client.get("/campaigns/none/story", headers=auth()), 404, "not_found")
    assert_error(story_client.get(PATH + "?limit=0", headers=auth()), 400, "invalid_argument")
    assert_error(story_client.get(PATH + "?before=nope", headers=auth()), 400, "invalid_argument")
    assert_error(post(story_client, {"actor": "user", "text": "x"}, **{"Idempotency-Key": "é"}),
                 400, "invalid_argument")
    assert all_docs(db) == []


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer garbage", "Basic abc",
                                           f"Bearer {local_token(project='other-project')}",
                                           f"Bearer {local_token(uid='a/b')}",
                                           f"Bearer {local_token(exp=1)}"])
def test_missing_or_bad_tokens_are_401(story_client, db, authorization) -> None:
    headers = {"Origin": "http://localhost:3000"}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = story_client.post(PATH, data='{"actor": "user", "text": "x"}', content_type="application/json",
                                 headers=headers)
    assert_error(response, 401, "unauthenticated")
    assert all_docs(db) == []


def test_preflight_and_cors(story_client) -> None:
    preflight = story_client.options(PATH, headers={"Origin": "http://127.0.0.1:5173",
                                                    "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:5173"
    assert "Idempotency-Key" in preflight.headers["Access-Control-Allow-Headers"]
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert int(preflight.headers["Access-Control-Max-Age"]) > 0
    evil = story_client.get(PATH, headers={**auth(), "Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in evil.headers and evil.headers["Vary"] == "Origin"


def test_persistence_failure_is_a_clean_500(story_client, db, monkeypatch) -> None:
    from tests.conftest import reset_caches

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:9")  # Firestore unreachable
    monkeypatch.setenv("FIRESTORE_TIMEOUT_SECONDS", "1")
    reset_caches()
    response = post(story_client, {"actor": "user", "text": "x"})
    assert_error(response, 500, "persistence_failed")


def test_each_write_logs_a_story_write_metric(story_client, capsys) -> None:
    capsys.readouterr()
    assert post(story_client, {"actor": "user", "text": "héllo"}).status_code == 201
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    [metric] = [line for line in lines if line.get("event") == "story_write"]
    assert metric["outcome"] == "verified" and metric["function"] == "story" and metric["parts"] == 1
    assert metric["text_bytes"] == 6 and metric["write_ms"] > 0 and metric["read_ms"] > 0
    assert metric["severity"] == "INFO"


def test_listing_while_firestore_is_unreachable_is_a_clean_500(story_client, db, monkeypatch) -> None:
    from tests.conftest import reset_caches

    assert post(story_client, {"actor": "user", "text": "x"}).status_code == 201
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:9")
    monkeypatch.setenv("FIRESTORE_TIMEOUT_SECONDS", "1")
    reset_caches()
    assert_error(story_client.get(PATH, headers=auth()), 500, "persistence_failed")
