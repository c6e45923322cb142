"""The interaction function on the real emulator: both turns stored, in order, before they are shown."""

from __future__ import annotations

import json

import pytest

from tests.helpers import all_docs, auth, story_docs

PATH = "/campaigns/quest/interaction"
STORY = "/campaigns/quest/story"
ANSWER = {"narrative": "The innkeeper leans closer.", "session_header": "Day 1",
          "planning_block": {"thinking": "", "choices": ["Ask more", "Leave"]}, "dice_rolls": ["d20 = 12"]}


def play(client, text: str, mode: str | None = None, **headers):
    body = {"input": text} if mode is None else {"input": text, "mode": mode}
    return client.post(PATH, data=json.dumps(body), content_type="application/json", headers=auth(**headers))


def test_a_full_turn_is_stored_and_listed_in_order(interaction_client, story_client, db) -> None:
    response = play(interaction_client, "I ask the innkeeper about the caravan.")
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["success"] and body["verified"] is True
    user, ai = body["user_entry"], body["ai_entry"]
    assert user["actor"] == "user" and user["mode"] == "character" and user["text"].startswith("I ask")
    assert ai["actor"] == "gemini" and ai["text"] == body["response"] and ai["text"]
    assert ai["structured_fields"]["session_header"]
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    listed = story_client.get(STORY, headers=auth()).get_json()["entries"]
    assert listed == [user, ai]


def test_five_turns_make_ten_entries_in_order(interaction_client, story_client) -> None:
    shown = []
    for i in range(5):
        body = play(interaction_client, f"I take step {i}.").get_json()
        shown += [body["user_entry"], body["ai_entry"]]
    assert [e["text"] for e in story_client.get(STORY, headers=auth()).get_json()["entries"]] == \
        [e["text"] for e in shown]
    assert "Still in" in shown[-1]["text"], "the local storyteller uses the history"


def test_planning_only_turn_is_stored_with_empty_text(interaction_client, db) -> None:
    body = play(interaction_client, "think about what the stranger wants").get_json()
    ai = body["ai_entry"]
    assert ai["text"] == "" and body["response"] == ""
    assert ai["structured_fields"]["planning_block"]["choices"]
    stored = [d.to_dict() for d in story_docs(db, "alice", "quest") if d.get("actor") == "gemini"]
    assert len(stored) == 1 and stored[0]["text"] == "" and stored[0]["planning_block"]


def test_god_mode(interaction_client) -> None:
    body = play(interaction_client, "Make it rain.", mode="god").get_json()
    assert body["user_entry"]["mode"] == "god" and body["ai_entry"]["mode"] == "god"
    assert body["ai_entry"]["structured_fields"]["god_mode_response"]


def test_storyteller_failure_keeps_the_turn_and_a_replay_resumes(interaction_client, story_client, fake_gemini,
                                                                 db) -> None:
    fake_gemini.fail(500)
    failed = play(interaction_client, "I draw my sword.", **{"Idempotency-Key": "turn-1"})
    assert failed.status_code == 502
    body = failed.get_json()
    assert body["code"] == "storyteller_failed" and body["user_entry"]["text"] == "I draw my sword."
    assert failed.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert len(story_docs(db, "alice", "quest")) == 1

    fake_gemini.answer(ANSWER)
    calls_before = len(fake_gemini.requests)
    resumed = play(interaction_client, "I draw my sword.", **{"Idempotency-Key": "turn-1"})
    assert resumed.status_code == 200
    assert resumed.get_json()["user_entry"] == body["user_entry"], "the player's entry is not written twice"
    assert resumed.get_json()["response"] == ANSWER["narrative"]
    assert len(fake_gemini.requests) == calls_before + 1

    again = play(interaction_client, "I draw my sword.", **{"Idempotency-Key": "turn-1"})
    assert again.status_code == 200 and again.get_json()["replayed"] is True
    assert again.get_json()["ai_entry"] == resumed.get_json()["ai_entry"]
    assert len(fake_gemini.requests) == calls_before + 1, "a replay after success asks the storyteller nothing"
    assert len(story_client.get(STORY, headers=auth()).get_json()["entries"]) == 2

    conflict = play(interaction_client, "I sheathe my sword.", **{"Idempotency-Key": "turn-1"})
    assert conflict.status_code == 409 and conflict.get_json()["code"] == "idempotency_conflict"


def test_storyteller_timeout_is_502(interaction_client, fake_gemini) -> None:
    fake_gemini.stall(10)
    response = play(interaction_client, "I wait.")
    assert response.status_code == 502 and response.get_json()["user_entry"]["text"] == "I wait."


@pytest.mark.parametrize("raw, content_type, status", [
    ('{"input": ""}', "application/json", 400),
    ('{"input": 3}', "application/json", 400),
    ('{"input": "x", "mode": "dm"}', "application/json", 400),
    ('{"text": "x"}', "application/json", 400),
    ('{"input": "x"', "application/json", 400),
    ('{"input": "x"}', "text/plain", 415),
])
def test_bad_input_writes_nothing(interaction_client, db, raw, content_type, status) -> None:
    response = interaction_client.post(PATH, data=raw, content_type=content_type, headers=auth())
    assert response.status_code == status and response.get_json()["success"] is False
    assert all_docs(db) == []


def test_get_is_not_allowed(interaction_client) -> None:
    response = interaction_client.get(PATH, headers=auth())
    assert response.status_code == 405 and "POST" in response.headers["Allow"]
