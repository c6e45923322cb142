"""``persistence_metrics`` on real chunk documents from the emulator, delivered the way Eventarc does (a
binary-mode CloudEvent carrying protobuf ``DocumentEventData``), and the dev bridge that produces them."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dev.event_bridge import cloud_event_for, run_bridge
from shared.adapters.document_events import decode_document_event
from shared.adapters.firestore_store import StoryStore
from shared.core.chunking import MAX_CHUNK_BYTES
from shared.core.entry import EntryDraft
from shared.core.ids import chunk_doc_id, new_entry_id
from shared.core.metrics import elapsed_ms, parse_rfc3339
from tests.helpers import PROJECT

UID = "alice-uid-7f3a"  # distinctive, so a test can prove it never reaches a log line
CAMPAIGN = "camp-1"
INSERT_ID = "logging.googleapis.com/insertId"


@pytest.fixture
def client(db, function_app):
    return function_app("persistence_metrics").test_client()


def write_entry(db, text: str = "The dragon wakes. 🐉", *, actor: str = "gemini", mode: str | None = "character",
                requested_at: datetime | None = None, **structured: Any) -> str:
    entry_id = new_entry_id()
    draft = EntryDraft(actor=actor, text=text, mode=mode, structured_fields=structured)
    StoryStore(db).append(UID, CAMPAIGN, draft, entry_id, requested_at or datetime.now(UTC))
    return entry_id


def chunk(db, entry_id: str, part: int = 1):
    return (db.collection("users").document(UID).collection("campaigns").document(CAMPAIGN)
            .collection("story").document(chunk_doc_id(entry_id, part)).get())


def deliver(client, headers: dict[str, str], body: bytes):
    response = client.post("/", headers=headers, data=body)
    assert 200 <= response.status_code < 300, response.get_data(as_text=True)
    return response


def log_lines(capsys) -> list[dict[str, Any]]:
    """The JSON log lines written since the last call (the handler's own diagnostic line left out)."""
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return [line for line in lines if "logging.googleapis.com/diagnostic" not in line]


def metric_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("event") == "story_entry_persisted"]


def story_event(db) -> tuple[dict[str, str], bytes]:
    snapshot = chunk(db, write_entry(db))
    return cloud_event_for(snapshot, PROJECT)


def test_part_one_emits_one_metric_line(db, client, capsys) -> None:
    requested_at = datetime.now(UTC) - timedelta(milliseconds=250)
    entry_id = write_entry(db, "Ça va? 漢字 😀", requested_at=requested_at, planning_block={"steps": ["a"]})
    snapshot = chunk(db, entry_id)
    headers, body = cloud_event_for(snapshot, PROJECT)
    log_lines(capsys)
    before = datetime.now(UTC)
    deliver(client, headers, body)
    after = datetime.now(UTC)
    lines = log_lines(capsys)
    (line,) = metric_lines(lines)
    assert len(lines) == 1
    assert line["severity"] == "INFO"
    assert line["message"] == "story entry persisted"
    assert {k: line[k] for k in ("entry_id", "campaign_id", "actor", "mode", "parts", "text_bytes",
                                 "text_bytes_complete")} == {
        "entry_id": entry_id, "campaign_id": CAMPAIGN, "actor": "gemini", "mode": "character", "parts": 1,
        "text_bytes": len("Ça va? 漢字 😀".encode()), "text_bytes_complete": True}
    assert line["commit_lag_ms"] == elapsed_ms(snapshot.get("requested_at"), snapshot.create_time)
    assert 250 <= line["commit_lag_ms"] < 60_000
    assert elapsed_ms(snapshot.create_time, before) <= line["trigger_delay_ms"] <= elapsed_ms(
        snapshot.create_time, after)
    assert line[INSERT_ID] == headers["ce-id"]
    assert UID not in json.dumps(line)  # the uid is personal data: never logged


def test_a_redelivered_event_logs_the_same_insert_id(db, client, capsys) -> None:
    headers, body = story_event(db)
    log_lines(capsys)
    for _ in range(3):
        deliver(client, headers, body)
    lines = metric_lines(log_lines(capsys))
    assert len(lines) == 3
    assert {line[INSERT_ID] for line in lines} == {headers["ce-id"]}
    # Cloud Logging takes entries as duplicates only when their timestamps match too: the event's time
    assert {parse_rfc3339(line["timestamp"]) for line in lines} == {parse_rfc3339(headers["ce-time"])}
    assert len({line["entry_id"] for line in lines}) == 1


def test_a_later_chunk_is_acknowledged_without_a_metric(db, client, capsys) -> None:
    text = "x" * (MAX_CHUNK_BYTES + 10)
    entry_id = write_entry(db, text, actor="user", mode=None)
    first, second = chunk(db, entry_id, 1), chunk(db, entry_id, 2)
    assert second.get("part") == 2
    log_lines(capsys)
    deliver(client, *cloud_event_for(second, PROJECT))
    lines = log_lines(capsys)
    assert metric_lines(lines) == []
    assert [line for line in lines if line["severity"] in ("WARNING", "ERROR")] == []
    deliver(client, *cloud_event_for(first, PROJECT))
    (line,) = metric_lines(log_lines(capsys))
    assert (line["parts"], line["mode"], line["text_bytes"], line["text_bytes_complete"]) == (
        2, None, MAX_CHUNK_BYTES, False)


def only_warning(lines: list[dict[str, Any]], reason: str) -> dict[str, Any]:
    assert metric_lines(lines) == []
    (line,) = lines
    assert line["severity"] == "WARNING"
    assert line["event"] == "persistence_event_ignored"
    assert line["reason"] == reason
    return line


@pytest.mark.parametrize("body, reason", [
    (b"\xff\xfe not a protobuf \x00\x01", "undecodable payload"),
    (b"hello", "undecodable payload"),  # parses as a protobuf with unknown fields, but holds no document
    (b"", "empty payload"),
    (b'{"value": {}}', "payload is not protobuf bytes"),  # JSON labelled as protobuf: the SDK parsed it
])
def test_a_payload_that_is_not_a_document_is_acknowledged_with_a_warning(db, client, capsys, body, reason) -> None:
    headers, _ = story_event(db)
    log_lines(capsys)
    deliver(client, headers, body)
    line = only_warning(log_lines(capsys), reason)
    assert line[INSERT_ID] == headers["ce-id"]


def test_a_json_payload_is_acknowledged_with_a_warning(db, client, capsys) -> None:
    headers, _ = story_event(db)
    headers = {**headers, "content-type": "application/json"}
    log_lines(capsys)
    deliver(client, headers, json.dumps({"value": {"name": "projects/p/databases/(default)/documents/x"}}).encode())
    line = only_warning(log_lines(capsys), "unsupported content type")
    assert line["content_type"] == "application/json"


def test_an_event_of_another_type_is_acknowledged_with_a_warning(db, client, capsys) -> None:
    headers, body = story_event(db)
    log_lines(capsys)
    deliver(client, {**headers, "ce-type": "google.cloud.firestore.document.v1.updated"}, body)
    only_warning(log_lines(capsys), "not a document-created event")


def test_a_document_outside_the_story_collection_is_acknowledged_with_a_warning(db, client, capsys) -> None:
    ref = db.collection("users").document(UID).collection("campaigns").document(CAMPAIGN).collection(
        "notes").document("n1")
    ref.create({"text": "not a story entry"})
    headers, body = cloud_event_for(ref.get(), PROJECT)
    log_lines(capsys)
    deliver(client, headers, body)
    line = only_warning(log_lines(capsys), "not a story document")
    assert line["document"] == f"users/*/campaigns/{CAMPAIGN}/notes/n1"
    assert UID not in json.dumps(line)


def test_a_story_document_missing_fields_is_acknowledged_with_a_warning(db, client, capsys) -> None:
    ref = db.collection("users").document(UID).collection("campaigns").document(CAMPAIGN).collection(
        "story").document("legacy")
    ref.create({"text": "written by something else", "actor": "user"})
    log_lines(capsys)
    deliver(client, *cloud_event_for(ref.get(), PROJECT))
    line = only_warning(log_lines(capsys), "malformed story document")
    assert "entry_id" in line["error"] and "requested_at" in line["error"]


def test_an_event_older_than_the_maximum_age_is_dropped_with_an_error(db, client, capsys) -> None:
    headers, body = story_event(db)
    old = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    log_lines(capsys)
    deliver(client, {**headers, "ce-time": old}, body)
    lines = log_lines(capsys)
    assert metric_lines(lines) == []
    (line,) = lines
    assert line["severity"] == "ERROR"
    assert (line["event"], line["reason"], line["max_age_s"]) == ("persistence_event_dropped", "too_old", 3600)
    assert 7199 < line["age_s"] < 7300


# -- the dev bridge --------------------------------------------------------------------------------

class Recorder(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append(({k.lower(): v for k, v in self.headers.items()}, body))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def wait_for(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_the_bridge_posts_each_new_story_document_as_a_binary_cloud_event(db, recorder) -> None:
    before = write_entry(db, "written before the bridge started")
    stop, ready = threading.Event(), threading.Event()
    url = f"http://127.0.0.1:{recorder.server_address[1]}/"
    bridge = threading.Thread(target=run_bridge, args=(PROJECT, url, stop), kwargs={"ready": ready}, daemon=True)
    bridge.start()
    try:
        assert ready.wait(10), "the bridge never got its first snapshot"
        entry_id = write_entry(db, "written while the bridge listens", mode="god")
        assert wait_for(lambda: len(recorder.received) >= 1), "the bridge delivered nothing"
        assert not wait_for(lambda: len(recorder.received) > 1, timeout_s=0.3), "more than one delivery"
    finally:
        stop.set()
        bridge.join(timeout=10)
    assert not bridge.is_alive()
    ((headers, body),) = recorder.received
    path = f"users/{UID}/campaigns/{CAMPAIGN}/story/{chunk_doc_id(entry_id, 1)}"
    snapshot = chunk(db, entry_id)
    assert headers["content-type"] == "application/protobuf"
    assert {k: headers[f"ce-{k}"] for k in ("specversion", "type", "source", "subject", "document", "database",
                                             "namespace", "project")} == {
        "specversion": "1.0", "type": "google.cloud.firestore.document.v1.created",
        "source": f"//firestore.googleapis.com/projects/{PROJECT}/databases/(default)",
        "subject": f"documents/{path}", "document": path, "database": "(default)", "namespace": "(default)",
        "project": PROJECT}
    assert headers["ce-id"] == cloud_event_for(snapshot, PROJECT)[0]["ce-id"]
    assert before not in body.decode("latin-1")
    document = decode_document_event(body)
    assert document.name == f"projects/{PROJECT}/databases/(default)/documents/{path}"
    assert document.fields == snapshot.to_dict()
    assert document.create_time == snapshot.create_time
