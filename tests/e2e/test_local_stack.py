"""The README's run command as a developer runs it: the whole stack as processes (its own emulator),
entries posted over HTTP, one ``story_entry_persisted`` line per entry in the stack's output, and no
process left after Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from dev.emulator import free_port

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "demo-story"


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc), whatever session it moved to."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(predicate, timeout_s: float, what: str, output: str = ""):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    tail = Path(output).read_text(errors="replace")[-3000:] if output else ""
    raise AssertionError(f"timed out waiting for {what}; the stack said:\n{tail}")


def test_stack_serves_logs_metrics_and_stops_cleanly() -> None:
    output = tempfile.NamedTemporaryFile(prefix="stack-", suffix=".log", delete=False)  # noqa: SIM115
    env = {k: v for k, v in os.environ.items() if k not in ("FIRESTORE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT")}
    stack = subprocess.Popen([sys.executable, "-m", "dev.stack", "--port-base", str(free_port()),
                              "--emulator-port", str(free_port())], cwd=ROOT, env=env, stdout=output,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    text = lambda: Path(output.name).read_text(errors="replace")  # noqa: E731
    try:
        wait_for(lambda: "Ctrl-C stops everything" in text(), 120, "the stack's banner", output.name)
        urls = dict(re.findall(r"export (STORY|INTERACTION)=(\S+)", text()))
        token = re.search(r"export TOKEN='([^']+)'", text()).group(1)
        headers = {"Authorization": f"Bearer {token}"}
        posted = [requests.post(f"{urls['STORY']}/campaigns/stack/story", json={"actor": "user", "text": t},
                                headers=headers, timeout=30) for t in ("one", "é" * 600_000)]
        turn = requests.post(f"{urls['INTERACTION']}/campaigns/stack/interaction", json={"input": "I wave."},
                             headers=headers, timeout=30)
        assert [p.status_code for p in posted] == [201, 201] and turn.status_code == 200
        ids = {p.json()["entry"]["id"] for p in posted} | {turn.json()["user_entry"]["id"],
                                                         turn.json()["ai_entry"]["id"]}

        def metric_lines() -> list[dict]:
            lines = [json.loads(line) for line in text().splitlines() if line.startswith("{")]
            return [line for line in lines if line.get("event") == "story_entry_persisted"]

        wait_for(lambda: {m["entry_id"] for m in metric_lines()} >= ids, 30, "a metric line per entry", output.name)
        writes = [json.loads(line) for line in text().splitlines()
                  if line.startswith("{") and '"story_write"' in line]
        assert {w["entry_id"] for w in writes} >= ids
        time.sleep(1)  # a duplicate delivery would show up by now
        persisted = [m["entry_id"] for m in metric_lines()]
        assert sorted(persisted) == sorted(ids), "exactly one line per entry (the 2-chunk entry counted once)"
        children = descendants(stack.pid)
        assert len(children) >= 4, "emulator and three functions"
    finally:
        stack.send_signal(signal.SIGINT)
        stack.wait(timeout=60)
    wait_for(lambda: not [pid for pid in children if alive(pid)], 30, "every process of the stack to stop",
             output.name)
    assert "stopped." in text()
