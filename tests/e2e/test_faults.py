"""Faults under load, through the real processes: the emulator frozen (SIGSTOP) or killed mid-traffic.

8 clients send story entries and interaction turns while the fault happens. Afterwards Firestore is
read: every entry a client was shown must be there, whole; no entry is half-written; every failure was
a JSON 5xx with CORS headers, answered within the deadline; and the service works again after.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter, defaultdict
from typing import Any

import pytest
from google.cloud import firestore

from dev.emulator import Emulator, free_port
from dev.processes import stop
from dev.traffic import ORIGIN, Client, Result, run_clients
from tests.e2e.conftest import run_function
from tests.helpers import PROJECT

CLIENTS, REQUESTS_EACH = 8, 30  # 240 requests per run
DEADLINE_S = 25.0  # every request is answered well within the function's 60 s
FIRESTORE_TIMEOUT_S = "2"
FIGURES = os.path.join(os.environ.get("TMPDIR", "/tmp"), "fault-figures.jsonl")


class Backend:
    """An emulator of this test's own (it gets frozen and killed) and the two HTTP functions on it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.emulator = Emulator(port=self.port).wait_ready()
        self.processes, self.urls = [], {}
        for target in ("story", "interaction"):
            process, url = run_function(target, self.emulator.host, FIRESTORE_TIMEOUT_SECONDS=FIRESTORE_TIMEOUT_S)
            self.processes.append(process)
            self.urls[target] = url

    def client(self) -> firestore.Client:
        saved = os.environ.get("FIRESTORE_EMULATOR_HOST")
        os.environ["FIRESTORE_EMULATOR_HOST"] = self.emulator.host
        try:
            return firestore.Client(project=PROJECT)
        finally:
            if saved is None:
                os.environ.pop("FIRESTORE_EMULATOR_HOST")
            else:
                os.environ["FIRESTORE_EMULATOR_HOST"] = saved

    def restart_emulator(self) -> None:
        self.emulator = Emulator(port=self.port).wait_ready()

    def close(self) -> None:
        for process in self.processes:
            stop(process)
        self.emulator.stop()


@pytest.fixture
def backend():
    backend = Backend()
    yield backend
    backend.close()


def stored_entries(db: firestore.Client) -> dict[str, dict[str, Any]]:
    """Every entry in Firestore, reassembled: ``{entry_id: {"parts": [...], "text": ..., "complete": bool}}``."""
    chunks: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for doc in db.collection_group("story").stream(timeout=30):
        data = doc.to_dict()
        chunks[data["entry_id"]].append(data)
    entries = {}
    for entry_id, parts in chunks.items():
        parts.sort(key=lambda p: p["part"])
        entries[entry_id] = {"complete": [p["part"] for p in parts] == list(range(1, parts[0]["parts"] + 1)),
                             "text": "".join(p["text"] for p in parts)}
    return entries


def check_responses(results: list[Result]) -> Counter:
    statuses = Counter(r.status if r.status is not None else r.error for r in results)
    for r in results:
        assert r.error is None, f"no HTTP answer ({r.error}) after {r.elapsed_s:.1f}s: a hung or dropped request"
        assert r.elapsed_s < DEADLINE_S, f"answered after {r.elapsed_s:.1f}s"
        assert r.headers.get("Access-Control-Allow-Origin") == ORIGIN and "Origin" in r.headers.get("Vary", "")
        assert isinstance(r.body, dict) and "success" in r.body, f"non-JSON answer: {r.body!r:.200}"
        if not r.ok:
            assert r.status >= 500 and r.body["success"] is False and r.body["code"] in (
                "persistence_failed", "storyteller_failed", "internal_error"), r.body
    return statuses


def check_acknowledged(results: list[Result], stored: dict[str, dict[str, Any]],
                       excused: set[str] = frozenset()) -> int:
    shown = 0
    for r in results:
        for entry in r.entries():
            shown += 1
            if entry["id"] in excused:
                continue
            assert entry["id"] in stored, f"acknowledged but lost: {entry['id']} ({r.endpoint}, {r.status})"
            assert stored[entry["id"]]["complete"] and stored[entry["id"]]["text"] == entry["text"]
    assert all(e["complete"] for e in stored.values()), "a half-written entry is in Firestore"
    return shown


def recovered(backend: Backend) -> float:
    """After the fault, the service answers normally again (within a bounded wait for reconnection);
    returns how long that took."""
    client = Client(backend.urls, PROJECT, "after-fault")
    started = time.monotonic()
    deadline = started + 30
    while True:
        story = client.send("story", "after", {"actor": "user", "text": "back"})
        turn = client.send("interaction", "after", {"input": "I look around."})
        if story.status == 201 and turn.status == 200:
            return time.monotonic() - started
        assert time.monotonic() < deadline, f"not recovered: {story.status} {turn.status}"
        time.sleep(0.2)


def record(name: str, results: list[Result], statuses: Counter, shown: int, **extra: Any) -> None:
    line = {"run": name, "requests": len(results), "statuses": {str(k): v for k, v in statuses.items()},
            "entries_shown": shown, "max_s": round(max(r.elapsed_s for r in results), 2), **extra}
    with open(FIGURES, "a") as figures:
        figures.write(json.dumps(line) + "\n")
    print(json.dumps(line))


def fault_when(done_target: int, action) -> tuple[threading.Event, Any]:
    trigger = threading.Event()

    def progress(done: int) -> None:
        if done >= done_target:
            trigger.set()

    def controller() -> None:
        trigger.wait(60)
        action()

    thread = threading.Thread(target=controller, daemon=True)
    thread.start()
    return thread, progress


def test_frozen_emulator(backend: Backend) -> None:
    def freeze() -> None:
        backend.emulator.signal(signal.SIGSTOP)
        time.sleep(4)
        backend.emulator.signal(signal.SIGCONT)

    thread, progress = fault_when(CLIENTS * REQUESTS_EACH // 4, freeze)
    results = run_clients(backend.urls, PROJECT, CLIENTS, REQUESTS_EACH, pause_s=0.02, progress=progress)
    thread.join(30)
    statuses = check_responses(results)
    assert any(not r.ok for r in results), "the freeze must have hit some requests"
    shown = check_acknowledged(results, stored_entries(backend.client()))
    recovered(backend)
    record("SIGSTOP 4 s", results, statuses, shown)


def test_killed_and_restarted_emulator(backend: Backend) -> None:
    """The emulator keeps data in memory: a kill loses what it held. Entries acknowledged before the kill
    are checked against a snapshot taken right before it; those the snapshot could not see (committed
    in the last milliseconds before the kill) are counted, not excused silently."""
    snapshot: dict[str, dict[str, Any]] = {}
    snapshot_at: list[float] = []
    restarted_at: list[float] = []

    def kill() -> None:
        snapshot_at.append(time.monotonic())
        snapshot.update(stored_entries(backend.client()))
        backend.emulator.signal(signal.SIGKILL)
        backend.emulator.process.wait(10)
        time.sleep(2)
        backend.restart_emulator()
        restarted_at.append(time.monotonic())

    thread, progress = fault_when(CLIENTS * REQUESTS_EACH // 4, kill)
    # a slower pace, so that part of the run comes after the restart
    results = run_clients(backend.urls, PROJECT, CLIENTS, REQUESTS_EACH, pause_s=0.35, progress=progress)
    thread.join(60)
    statuses = check_responses(results)
    after = stored_entries(backend.client())
    # Entries shown before the snapshot began must be in it; later ones in it or in the new instance,
    # except those committed between the snapshot and the kill, which died with the emulator's memory.
    before = [r for r in results if r.started + r.elapsed_s < snapshot_at[0]]
    later = [r for r in results if r.started + r.elapsed_s >= snapshot_at[0]]
    window = {e["id"] for r in later for e in r.entries()} - set(after) - set(snapshot)
    shown = check_acknowledged(before, snapshot) + check_acknowledged(later, {**snapshot, **after}, excused=window)
    assert len(window) <= CLIENTS * 2, "only requests in flight at the kill may be unverifiable"
    recovery_s = recovered(backend)
    first_ok = min((r.started + r.elapsed_s for r in results if r.ok and r.started > restarted_at[0]), default=None)
    record("SIGKILL + restart", results, statuses, shown, lost_with_emulator_memory=len(window),
           down_s=round(restarted_at[0] - snapshot_at[0], 2),
           first_success_after_restart_s=None if first_ok is None else round(first_ok - restarted_at[0], 2),
           recovered_s_after_run=round(recovery_s, 2),
           run_s=round(max(r.started + r.elapsed_s for r in results) - min(r.started for r in results), 2))
