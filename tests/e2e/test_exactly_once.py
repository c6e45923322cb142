"""Exactly once, under load: many concurrent requests with one ``Idempotency-Key`` store one entry.

Real functions-framework processes over real HTTP, on the Firestore emulator. Each scenario starts with a
burst in which the first request races its replays (all released together by a barrier), then keeps
replaying from a pool of workers. Afterwards Firestore itself is read: exactly one entry (its chunk
documents) per key, and every successful response names that entry, as stored.

What is accepted for a replay of the same body: 2xx only, each showing the stored entry. Firestore's
``create()`` lets exactly one commit store the documents; every other request gets "already exists" and
answers with the stored entry. For ``story`` that is exactly one ``201`` / ``"replayed": false``: the
request whose commit stored the entry. (Only a commit with an unknown outcome — deadline, unavailable —
could add another ``201``: it is settled by reading and counted as the request's own write. Nothing
here injects such faults, so none is expected.) ``interaction`` always answers 200; a request counts as
replayed only if both of its entries were, so more than one may say ``"replayed": false``, and all name
the same two entries. A different body under the same key is a 409, never a second entry.

Figures (requests, statuses, time) are printed and written to ``/tmp/exactly-once-figures.txt``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import pytest
import requests

from dev.processes import stop
from shared.core.entry import CHUNK_FIELDS
from tests.e2e.conftest import run_function
from tests.fake_gemini import FakeGemini, RecordedRequest, Reply, generate_response
from tests.helpers import all_docs, auth, story_docs

TIMEOUT_S = 30
BURST = 16  # requests released at once, the first of them racing its replays
WORKERS = 12  # concurrent senders for the steady replays after the burst
FIGURES = Path("/tmp/exactly-once-figures.txt")
UID = "alice"


@dataclass(frozen=True)
class Result:
    status: int
    body: dict[str, Any] | None  # None when the body is not JSON
    content_type: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def send(url: str, body: dict[str, Any], key: str) -> Result:
    response = requests.post(url, data=json.dumps(body), timeout=TIMEOUT_S,
                             headers={**auth(UID, **{"Idempotency-Key": key}), "Content-Type": "application/json"})
    try:
        parsed = response.json()
    except ValueError:
        parsed = None
    return Result(response.status_code, parsed, response.headers.get("Content-Type", ""))


def burst(url: str, key: str, bodies: list[dict[str, Any]]) -> list[Result]:
    """Every body sent at the same moment: each thread waits at a barrier, then posts."""
    gate = threading.Barrier(len(bodies), timeout=10)

    def go(body: dict[str, Any]) -> Result:
        gate.wait()
        return send(url, body, key)

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(go, bodies))


def steady(url: str, key: str, bodies: list[dict[str, Any]], workers: int = WORKERS) -> list[Result]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda body: send(url, body, key), bodies))


def assert_error_shape(result: Result, status: int, code: str) -> None:
    assert result.status == status, result
    assert result.content_type.startswith("application/json") and result.body is not None
    assert result.body["success"] is False and result.body["code"] == code and result.body["error"]


@pytest.fixture(scope="module")
def figures() -> Iterator[list[str]]:
    lines: list[str] = []
    yield lines
    FIGURES.write_text("".join(line + "\n" for line in lines))


def record(figures: list[str], name: str, results: list[Result], seconds: float, **extra: Any) -> None:
    statuses = Counter(r.status for r in results)
    replayed = Counter(str((r.body or {}).get("replayed")).lower() for r in results if r.ok)
    line = (f"{name}: {len(results)} requests in {seconds:.2f} s ({len(results) / seconds:.0f}/s), burst {BURST} "
            f"+ {WORKERS} workers; statuses {dict(sorted(statuses.items()))}; replayed {dict(sorted(replayed.items()))}"
            + "".join(f"; {k} {v}" for k, v in extra.items()))
    figures.append(line)
    print(line)


def key() -> str:
    return f"key-{uuid.uuid4()}"


# -- story -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, replays", [
    ("I light the lantern and step inside.", 100),
    ("Ça va? 漢字かな 😀🐉 ñandú — " * 30_000, 24),  # ~1.6 MB: two chunk documents, one atomic entry
], ids=["one-chunk", "two-chunks"])
def test_story_replays_store_one_entry(db, function_urls, figures, text, replays) -> None:
    url, idem = f"{function_urls['story']}/campaigns/race-story/story", key()
    body = {"actor": "user", "text": text, "mode": "character"}
    started = time.perf_counter()
    results = burst(url, idem, [body] * BURST) + steady(url, idem, [body] * replays)
    seconds = time.perf_counter() - started

    docs = story_docs(db, UID, "race-story")
    entry_ids = {d.get("entry_id") for d in docs}
    assert len(entry_ids) == 1, f"{len(entry_ids)} entries stored for one key"
    [entry_id] = entry_ids
    parts = docs[0].get("parts")
    assert sorted(d.get("part") for d in docs) == list(range(1, parts + 1))
    assert "".join(d.get("text") for d in sorted(docs, key=lambda d: d.get("part"))) == text
    assert len({d.update_time for d in docs}) == 1, "all chunks of the entry come from one commit"
    assert len(all_docs(db)) == parts + 1  # the chunks and the campaign, nothing else

    assert [r for r in results if not r.ok] == [], "a replay of the same body must never fail"
    [listed] = requests.get(url, headers=auth(UID), timeout=TIMEOUT_S).json()["entries"]
    assert listed["id"] == entry_id and listed["parts"] == parts
    for r in results:
        assert r.body is not None and r.body["success"] is True and r.body["verified"] is True
        assert r.body["entry"] == listed, "every success shows the stored entry (same id, text, timestamp)"
        assert r.body["replayed"] is (r.status == 200) and r.status in (200, 201)
    created = [r for r in results if r.status == 201]
    assert len(created) == 1, f"{len(created)} responses claim to have created the entry"
    record(figures, f"story {len(text.encode())} B x{parts} parts", results, seconds)


def test_story_same_key_different_body_is_409_and_one_entry(db, function_urls, figures) -> None:
    url, idem = f"{function_urls['story']}/campaigns/race-conflict/story", key()
    original = {"actor": "user", "text": "I open the north door."}
    others = [{"actor": "user", "text": "I open the south door."},
              {"actor": "gemini", "text": "I open the north door."},
              {"actor": "user", "text": "I open the north door.", "mode": "god"},
              {"actor": "user", "text": "I open the north door.", "structured_fields": {"x": 1}}]
    bodies = [original if i % 2 == 0 else others[(i // 2) % len(others)] for i in range(BURST)]
    started = time.perf_counter()
    raced = burst(url, idem, bodies)
    later = steady(url, idem, [original, *others] * 6)
    seconds = time.perf_counter() - started

    docs = story_docs(db, UID, "race-conflict")
    assert len(docs) == 1, f"{len(docs)} documents stored for one key"
    stored = docs[0].to_dict()
    as_stored = (stored["actor"], stored["text"], stored.get("mode"),
                 {k: v for k, v in stored.items() if k not in CHUNK_FIELDS})
    [winner] = [b for b in [original, *others]
                if (b["actor"], b["text"], b.get("mode"), b.get("structured_fields", {})) == as_stored]
    for body, result in zip(bodies + [original, *others] * 6, raced + later, strict=True):
        if body == winner:
            assert result.status in (200, 201), result
            assert result.body["entry"]["id"] == stored["entry_id"]
        else:
            assert_error_shape(result, 409, "idempotency_conflict")
    record(figures, "story same key, different bodies", raced + later, seconds,
           winner="the first request's body" if winner == original else "a different body")


# -- interaction -------------------------------------------------------------------------------------


def assert_one_pair(db, campaign: str, results: list[Result], player_input: str) -> tuple[dict, dict]:
    docs = story_docs(db, UID, campaign)
    by_actor = Counter(d.get("actor") for d in docs)
    assert by_actor == {"user": 1, "gemini": 1}, f"stored: {dict(by_actor)}"
    user_doc = next(d for d in docs if d.get("actor") == "user")
    ai_doc = next(d for d in docs if d.get("actor") == "gemini")
    assert user_doc.get("text") == player_input
    assert [r for r in results if not r.ok] == [], "a replay of the same body must never fail"
    first = results[0].body
    for r in results:
        assert r.status == 200 and r.body is not None and r.body["success"] is True
        assert r.body["user_entry"]["id"] == user_doc.get("entry_id")
        assert r.body["ai_entry"]["id"] == ai_doc.get("entry_id")
        assert r.body["ai_entry"]["text"] == ai_doc.get("text") == r.body["response"]
        assert (r.body["user_entry"], r.body["ai_entry"]) == (first["user_entry"], first["ai_entry"])
        assert r.body["verified"] is True
    return first["user_entry"], first["ai_entry"]


def test_interaction_replays_store_one_turn(db, function_urls, figures) -> None:
    url, idem = f"{function_urls['interaction']}/campaigns/race-turn/interaction", key()
    body = {"input": "I ask the innkeeper about the caravan."}
    started = time.perf_counter()
    results = burst(url, idem, [body] * BURST) + steady(url, idem, [body] * 100)
    seconds = time.perf_counter() - started
    assert_one_pair(db, "race-turn", results, body["input"])
    assert any(r.body["replayed"] is False for r in results), "some request stored the turn"
    assert results and all(r.body["replayed"] for r in results[BURST:]), "later replays store nothing"
    record(figures, "interaction (local storyteller)", results, seconds)


def test_interaction_same_key_different_body_is_409_and_one_turn(db, function_urls, figures) -> None:
    url, idem = f"{function_urls['interaction']}/campaigns/race-turn-conflict/interaction", key()
    original = {"input": "I draw my sword."}
    others = [{"input": "I sheathe my sword."}, {"input": "I draw my sword.", "mode": "god"}]
    bodies = [original if i % 2 == 0 else others[(i // 2) % len(others)] for i in range(BURST)]
    started = time.perf_counter()
    raced = burst(url, idem, bodies)
    later = steady(url, idem, [original, *others] * 8)
    seconds = time.perf_counter() - started

    docs = story_docs(db, UID, "race-turn-conflict")
    assert Counter(d.get("actor") for d in docs) == {"user": 1, "gemini": 1}
    user_doc = next(d for d in docs if d.get("actor") == "user")
    [winner] = [b for b in [original, *others]
                if (b["input"], b.get("mode", "character")) == (user_doc.get("text"), user_doc.get("mode"))]
    for body, result in zip(bodies + [original, *others] * 8, raced + later, strict=True):
        if body == winner:
            assert result.status == 200, result
            assert result.body["user_entry"]["id"] == user_doc.get("entry_id")
        else:
            assert_error_shape(result, 409, "idempotency_conflict")
    record(figures, "interaction same key, different bodies", raced + later, seconds,
           winner="the first request's body" if winner == original else "a different body")


class ChangingGemini(FakeGemini):
    """A storyteller that never says the same thing twice, and takes a moment to say it."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self._numbers = count(1)
        self.delay_s = delay_s

    def _next_reply(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            number = next(self._numbers)
        answer = {"narrative": f"Answer number {number}.", "session_header": f"Take {number}"}
        return Reply(body=generate_response(json.dumps(answer)), delay_s=self.delay_s)


def test_interaction_replays_with_a_changing_storyteller_keep_the_first_stored_answer(
        db, emulator_host, figures) -> None:
    """Racing replays may each ask the storyteller and get different answers; the one stored first is the
    turn's answer, and every response shows it."""
    with ChangingGemini(delay_s=0.2) as gemini:
        process, base = run_function("interaction", emulator_host, STORYTELLER="gemini",
                                     GEMINI_API_KEY="test-key-not-secret", GEMINI_BASE_URL=gemini.base_url,
                                     STORYTELLER_TIMEOUT_SECONDS="10")
        try:
            url, idem = f"{base}/campaigns/race-gemini/interaction", key()
            body = {"input": "I listen at the door."}
            started = time.perf_counter()
            results = burst(url, idem, [body] * BURST) + steady(url, idem, [body] * 48)
            seconds = time.perf_counter() - started
        finally:
            stop(process)
    _, ai = assert_one_pair(db, "race-gemini", results, body["input"])
    asked = len(gemini.requests)
    assert asked >= 2, "the burst should make several requests ask the storyteller (the race under test)"
    assert ai["text"].startswith("Answer number ")
    record(figures, "interaction (changing storyteller)", results, seconds, **{"storyteller calls": asked})
