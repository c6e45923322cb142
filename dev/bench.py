"""Benchmark of story writes on the Firestore emulator: this module's write-then-read against the
alternatives, measured side by side in one run (paths interleaved, so machine noise hits all alike).

    ./dev/bench [--small N] [--large N]

Paths, per entry:
  bare      add() per chunk, nothing read back (stores, but proves nothing)
  seed      add() + get() per chunk (the planning note's loop)
  original  add() per chunk, sleep 0.1 s, get() of the first chunk (the original app's check)
  module    StoryStore.append: one atomic batch + one get_all() read-back (this project)
  module, flag off   the same with ENABLE_WRITE_THEN_READ=false: the batch alone, to split the cost
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from google.cloud import firestore

from dev.emulator import Emulator, clear, is_up
from shared.core.entry import EntryDraft
from shared.core.ids import new_entry_id
from shared.core.records import chunk_records

PROJECT = "demo-story-bench"


def _chunk_fields(draft: EntryDraft) -> list[dict]:
    return [{**fields, "timestamp": firestore.SERVER_TIMESTAMP}
            for _, fields in chunk_records(draft, new_entry_id(), datetime.now(UTC))]


def make_paths(db: firestore.Client) -> dict[str, Callable[[EntryDraft, int], None]]:
    from shared.adapters.firestore_store import StoryStore

    store = StoryStore(db)
    unread = StoryStore(db, write_then_read=False)

    def story(i: int) -> firestore.CollectionReference:
        return db.collection("users").document("bench").collection("campaigns").document(f"c{i % 10}") \
            .collection("story")

    def bare(draft: EntryDraft, i: int) -> None:
        for fields in _chunk_fields(draft):
            story(i).add(fields)

    def seed(draft: EntryDraft, i: int) -> None:
        for fields in _chunk_fields(draft):
            _, ref = story(i).add(fields)
            assert ref.get().exists

    def original(draft: EntryDraft, i: int) -> None:
        refs = [story(i).add(fields)[1] for fields in _chunk_fields(draft)]
        time.sleep(0.1)
        assert refs[0].get().exists

    def module(draft: EntryDraft, i: int) -> None:
        assert store.append("bench", f"c{i % 10}", draft, new_entry_id(), datetime.now(UTC)).verified

    def module_unread(draft: EntryDraft, i: int) -> None:
        unread.append("bench", f"c{i % 10}", draft, new_entry_id(), datetime.now(UTC))

    return {"bare": bare, "seed": seed, "original": original, "module": module, "module, flag off": module_unread}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(db: firestore.Client, rounds: int, draft: EntryDraft, warmup: int = 5) -> dict[str, list[float]]:
    paths = make_paths(db)
    timings: dict[str, list[float]] = {name: [] for name in paths}
    for i in range(warmup + rounds):
        order = list(paths.items())
        order = order[i % len(order):] + order[:i % len(order)]  # rotate who goes first
        for name, path in order:
            started = time.perf_counter()
            path(draft, i)
            if i >= warmup:
                timings[name].append((time.perf_counter() - started) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=300, help="rounds with 1-chunk entries")
    parser.add_argument("--large", type=int, default=40, help="rounds with 3-chunk (2.5 MB) entries")
    args = parser.parse_args()
    emulator = None
    host = os.environ.get("FIRESTORE_EMULATOR_HOST")
    if not (host and is_up(host)):
        emulator = Emulator().wait_ready()
        host = emulator.host
        os.environ["FIRESTORE_EMULATOR_HOST"] = host
    try:
        db = firestore.Client(project=PROJECT)
        clear(host, PROJECT)
        db.collection("users").document("bench").collection("campaigns").document("c0").get()  # open the channel
        for i in range(10):  # campaigns exist, as they do for every entry after a campaign's first
            db.document(f"users/bench/campaigns/c{i}").set({"last_played": firestore.SERVER_TIMESTAMP})
        cases = [("1 chunk (2 KB)", args.small, EntryDraft(actor="gemini", text="Ça va, 漢字 😀 " * 140,
                                                              structured_fields={"session_header": "S"})),
                 ("3 chunks (2.5 MB)", args.large, EntryDraft(actor="gemini", text="Ça va, 漢字 😀 " * 172_000,
                                                                structured_fields={"session_header": "S"}))]
        print("| entry | path | n | median ms | p99 ms | median / bare | p99 − bare p99 (ms) |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for label, rounds, draft in cases:
            timings = run(db, rounds, draft)
            bare_median, bare_p99 = statistics.median(timings["bare"]), percentile(timings["bare"], 0.99)
            for name, samples in timings.items():
                median, p99 = statistics.median(samples), percentile(samples, 0.99)
                print(f"| {label} | {name} | {len(samples)} | {median:.2f} | {p99:.2f} | "
                      f"{median / bare_median:.2f}× | {p99 - bare_p99:+.2f} |", flush=True)
            clear(host, PROJECT)
            for i in range(10):
                db.document(f"users/bench/campaigns/c{i}").set({"last_played": firestore.SERVER_TIMESTAMP})
    finally:
        if emulator is not None:
            emulator.stop()


if __name__ == "__main__":
    main()
