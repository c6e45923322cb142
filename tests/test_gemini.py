"""The Gemini storyteller against a local fake of the Gemini REST API, through the real google-genai SDK.

No network: every request goes to ``tests.fake_gemini`` on 127.0.0.1, which also records what the SDK
actually sent, so the tests check the wire format (path, key header, schema, contents) as well as
the adapter's handling of answers, errors, retries and timeouts.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from google import genai

from shared.adapters import gemini
from shared.adapters.gemini import MAX_ATTEMPTS, GeminiStoryteller
from shared.core.entry import Entry
from shared.core.storyteller import StorytellerError
from tests.fake_gemini import FakeGemini, Reply, generate_response

API_KEY = "test-key-AIzaSyFAKE0123456789"
MODEL = "gemini-2.5-flash"
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

FULL_ANSWER = {
    "session_header": "Turn 2 · the lantern-lit tavern",
    "narrative": "The innkeeper slides a mug toward you.",
    "dice_rolls": ["d20 = 14 (Insight, DC 12): success"],
    "resources": [{"name": "HP", "value": "18/20"}, {"name": "Gold", "value": "12"}],
    "planning_block": {"thinking": "The stranger is watching.", "choices": ["Drink", "Ask about the road"]},
}


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with FakeGemini() as server:
        yield server


def storyteller(fake: FakeGemini, timeout_s: float = 5.0) -> GeminiStoryteller:
    return GeminiStoryteller(api_key=API_KEY, model=MODEL, timeout_s=timeout_s, base_url=fake.base_url)


def entry(n: int, actor: str, text: str, mode: str | None = "character", **fields: Any) -> Entry:
    return Entry(id=f"e{n}", campaign_id="camp", actor=actor, mode=mode, text=text,  # type: ignore[arg-type]
                 structured_fields=fields, timestamp=NOW, parts=1)


HISTORY = [
    entry(1, "user", "I walk into the tavern."),
    entry(2, "gemini", "Smoke and laughter greet you."),
    entry(3, "user", "I order an ale."),  # the player's entry, just stored by the caller
]


def test_success_returns_narrative_and_fields_and_sends_schema_key_and_history(fake: FakeGemini) -> None:
    fake.answer(FULL_ANSWER)

    turn = storyteller(fake).next_turn(history=HISTORY, player_input="I order an ale.", mode="character")

    assert turn.text == "The innkeeper slides a mug toward you."
    assert turn.structured_fields == {
        "session_header": "Turn 2 · the lantern-lit tavern",
        "dice_rolls": ["d20 = 14 (Insight, DC 12): success"],
        "resources": {"HP": "18/20", "Gold": "12"},
        "planning_block": {"thinking": "The stranger is watching.", "choices": ["Drink", "Ask about the road"]},
    }
    [request] = fake.requests
    assert request.path == f"/v1beta/models/{MODEL}:generateContent"
    assert request.headers["x-goog-api-key"] == API_KEY
    config = request.body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    schema = config["responseSchema"]
    assert set(schema["properties"]) == {"session_header", "narrative", "dice_rolls", "resources", "planning_block"}
    assert schema["properties"]["planning_block"]["properties"]["choices"]["type"] == "ARRAY"
    assert "game master" in request.body["systemInstruction"]["parts"][0]["text"]
    turns = [(c["role"], [p["text"] for p in c["parts"]]) for c in request.body["contents"]]
    assert turns == [("user", ["I walk into the tavern."]), ("model", ["Smoke and laughter greet you."]),
                     ("user", ["I order an ale."])]  # the stored player entry is not sent twice


def test_planning_only_turn_keeps_empty_narrative_and_planning_block(fake: FakeGemini) -> None:
    plan = {"thinking": "Weighing the options.", "choices": ["Go north", "Wait"]}
    fake.answer({"narrative": "", "planning_block": plan})

    turn = storyteller(fake).next_turn(history=HISTORY, player_input="think about the road", mode="character")

    assert turn.text == ""
    assert turn.structured_fields == {"planning_block": plan}


def test_planning_only_history_entry_is_sent_with_its_choices(fake: FakeGemini) -> None:
    history = [entry(1, "user", "plan"), entry(2, "gemini", "", planning_block={"choices": ["Go north", "Wait"]}),
               entry(3, "user", "Go north")]

    storyteller(fake).next_turn(history=history, player_input="Go north", mode="character")

    model_turn = fake.requests[0].body["contents"][1]
    assert model_turn["role"] == "model"
    assert "Go north; Wait" in model_turn["parts"][0]["text"]


def test_god_mode_asks_for_and_returns_god_mode_response(fake: FakeGemini) -> None:
    fake.answer({**FULL_ANSWER, "narrative": "", "god_mode_response": "The storm is gone."})
    history = [*HISTORY[:2], entry(3, "user", "Remove the storm.", mode="god")]

    turn = storyteller(fake).next_turn(history=history, player_input="Remove the storm.", mode="god")

    assert turn.text == ""
    assert turn.structured_fields["god_mode_response"] == "The storm is gone."
    body = fake.requests[0].body
    schema = body["generationConfig"]["responseSchema"]
    assert "god_mode_response" in schema["properties"]
    assert "god_mode_response" in schema["required"]
    assert "GOD MODE" in body["systemInstruction"]["parts"][0]["text"]
    assert body["contents"][-1]["parts"][-1]["text"] == "[god mode] Remove the storm."


def test_character_mode_does_not_offer_god_mode_response(fake: FakeGemini) -> None:
    storyteller(fake).next_turn(history=HISTORY, player_input="I order an ale.", mode="character")

    body = fake.requests[0].body
    assert "god_mode_response" not in body["generationConfig"]["responseSchema"]["properties"]
    assert "GOD MODE" not in body["systemInstruction"]["parts"][0]["text"]


@pytest.mark.parametrize("reply", [
    pytest.param(Reply(body=generate_response("The innkeeper nods.")), id="not-json"),
    pytest.param(Reply(body=generate_response('{"narrative": "cut off mid-sent', finish_reason="MAX_TOKENS")),
                 id="truncated"),
    pytest.param(Reply(body=generate_response(json.dumps(["a", "b"]))), id="json-array"),
    pytest.param(Reply(body=generate_response(json.dumps({"narrative": 42}))), id="narrative-not-string"),
    pytest.param(Reply(body=generate_response(json.dumps({}))), id="empty-object"),
    pytest.param(Reply(body=generate_response(None)), id="no-candidates"),
    pytest.param(Reply(body=generate_response(None, block_reason="SAFETY")), id="prompt-blocked"),
    pytest.param(Reply(body=generate_response("", finish_reason="SAFETY")), id="answer-blocked"),
    pytest.param(Reply(body=b"<html>proxy error</html>"), id="body-not-json"),
    pytest.param(Reply(body=generate_response(json.dumps(
        {"narrative": "x", "resources": [{"name": "__reserved__", "value": "1"}]}))), id="unstorable-field"),
])
def test_unusable_answer_is_a_storyteller_error_and_not_retried(fake: FakeGemini, reply: Reply) -> None:
    fake.script(reply)

    with pytest.raises(StorytellerError) as raised:
        storyteller(fake).next_turn(history=HISTORY, player_input="I order an ale.", mode="character")

    assert API_KEY not in str(raised.value)
    assert len(fake.requests) == 1


@pytest.mark.parametrize("reply", [
    pytest.param(Reply(body=generate_response(None, block_reason="PROHIBITED_CONTENT")), id="prompt-blocked"),
    pytest.param(Reply(body=generate_response("", finish_reason="SAFETY")), id="answer-blocked"),
])
def test_blocked_turn_tells_the_player_to_rephrase(fake: FakeGemini, reply: Reply) -> None:
    fake.script(reply)

    with pytest.raises(StorytellerError, match="declined.*rephras"):
        storyteller(fake).next_turn(history=HISTORY, player_input="I order an ale.", mode="character")


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_http_errors_are_retried_a_bounded_number_of_times(fake: FakeGemini, status: int) -> None:
    fake.fail(status)

    with pytest.raises(StorytellerError) as raised:
        storyteller(fake).next_turn(history=HISTORY, player_input="I order an ale.", mode="character")

    assert len(fake.requests) == MAX_ATTEMPTS == 2
    assert "try again" in str(raised.value).lower()


@pytest.mark.parametrize("status", [400, 403, 404])
def test_permanent_http_errors_are_not_retried(fake: FakeGemini, status: int) -> None:
    fake.fail(status)

    with pytest.raises(StorytellerError):
        storyteller(fake).next_turn(history=HISTORY, player_input="I order an ale.", mode="character")

    assert len(fake.requests) == 1


def test_a_retry_that_succeeds_returns_the_turn(fake: FakeGemini) -> None:
    fake.script(Reply(status=429, body={"error": {"code": 429, "message": "Quota", "status": "RESOURCE_EXHAUSTED"}}),
                Reply(body=generate_response(json.dumps(FULL_ANSWER))))

    turn = storyteller(fake).next_turn(history=HISTORY, player_input="I order an ale.", mode="character")

    assert turn.text == FULL_ANSWER["narrative"]
    assert len(fake.requests) == 2


def test_timeout_is_a_storyteller_error_within_bounded_time(fake: FakeGemini) -> None:
    timeout_s = 1.0  # long enough that a second, shorter attempt still fits in the budget
    fake.stall(10)

    started = time.monotonic()
    with pytest.raises(StorytellerError, match="too long"):
        storyteller(fake, timeout_s=timeout_s).next_turn(history=HISTORY, player_input="Hi", mode="character")
    elapsed = time.monotonic() - started

    assert elapsed < timeout_s * MAX_ATTEMPTS + 0.5  # the whole call, retries included
    assert len(fake.requests) == MAX_ATTEMPTS


def test_unreachable_service_is_a_storyteller_error() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    teller = GeminiStoryteller(api_key=API_KEY, model=MODEL, timeout_s=1, base_url=f"http://127.0.0.1:{port}")

    with pytest.raises(StorytellerError, match="reached"):
        teller.next_turn(history=HISTORY, player_input="Hi", mode="character")


def test_unexpected_sdk_exception_is_a_storyteller_error_and_the_key_is_not_logged(
        fake: FakeGemini, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    teller = storyteller(fake)

    def explode(**_: Any) -> None:
        raise RuntimeError(f"internal SDK failure near key {API_KEY}")

    monkeypatch.setattr(teller.client.models, "generate_content", explode)
    with caplog.at_level(logging.DEBUG), pytest.raises(StorytellerError) as raised:
        teller.next_turn(history=HISTORY, player_input="Hi", mode="character")

    assert API_KEY not in str(raised.value)
    assert raised.value.__cause__ is None  # no SDK traceback rides along
    assert raised.value.__suppress_context__
    assert caplog.records, "the failure should be logged"
    logged = " ".join(record.getMessage() + json.dumps(getattr(record, "json_fields", {}))
                      for record in caplog.records)
    assert "RuntimeError" in logged
    assert API_KEY not in logged


def test_api_key_in_an_error_message_is_neither_shown_nor_logged(
        fake: FakeGemini, caplog: pytest.LogCaptureFixture) -> None:
    fake.fail(403, f"API key {API_KEY} is not valid.")

    with caplog.at_level(logging.DEBUG), pytest.raises(StorytellerError) as raised:
        storyteller(fake).next_turn(history=HISTORY, player_input="Hi", mode="character")

    assert API_KEY not in str(raised.value)
    assert API_KEY not in caplog.text
    assert API_KEY not in repr(storyteller(fake))


def test_client_is_created_lazily_once_and_reused(fake: FakeGemini, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[genai.Client] = []
    real_client = genai.Client

    def counting_client(**kwargs: Any) -> genai.Client:
        made.append(real_client(**kwargs))
        return made[-1]

    monkeypatch.setattr(gemini.genai, "Client", counting_client)
    teller = storyteller(fake)
    assert made == []  # nothing built (and no network) at construction

    teller.next_turn(history=HISTORY, player_input="I order an ale.", mode="character")
    first = teller.client
    teller.next_turn(history=HISTORY, player_input="I order another.", mode="character")

    assert len(made) == 1
    assert teller.client is first is made[0]
    assert len(fake.requests) == 2


def test_blank_api_key_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="API key"):
        GeminiStoryteller(api_key=" ", model=MODEL, timeout_s=1)
