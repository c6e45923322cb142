"""Concurrent clients for the HTTP functions: what each request was told, and how long it took.

Used by the load command (``dev/load.py``) and the fault-injection tests, so both speak to the functions
exactly as a browser would: real HTTP, a bearer token, an Origin, an ``Idempotency-Key`` per turn.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from dev.local_token import local_token

ORIGIN = "http://localhost:3000"


@dataclass
class Result:
    endpoint: str
    campaign_id: str
    key: str
    sent: dict[str, Any]
    started: float
    elapsed_s: float = 0.0
    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # no HTTP answer at all (connection refused, client timeout)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def entries(self) -> list[dict[str, Any]]:
        """The entries this response showed the player."""
        if not self.ok or not isinstance(self.body, dict):
            return []
        if self.endpoint == "story":
            return [self.body["entry"]]
        return [self.body["user_entry"], self.body["ai_entry"]]


class Client:
    """One player: its own session (connection reuse, as a browser), token and campaign."""

    def __init__(self, urls: dict[str, str], project: str, uid: str, timeout_s: float = 30.0) -> None:
        self.urls = urls
        self.session = requests.Session()
        self.headers = {"Authorization": f"Bearer {local_token(uid, project)}", "Origin": ORIGIN}
        self.timeout_s = timeout_s

    def send(self, endpoint: str, campaign_id: str, body: dict[str, Any], key: str | None = None) -> Result:
        key = key or uuid.uuid4().hex
        result = Result(endpoint, campaign_id, key, body, time.monotonic())
        url = f"{self.urls[endpoint]}/campaigns/{campaign_id}/{endpoint}"
        try:
            response = self.session.post(url, json=body, headers={**self.headers, "Idempotency-Key": key},
                                         timeout=self.timeout_s)
            result.status, result.headers = response.status_code, dict(response.headers)
            try:
                result.body = response.json()
            except ValueError:
                result.body = response.text
        except requests.RequestException as exc:
            result.error = type(exc).__name__
        result.elapsed_s = time.monotonic() - result.started
        return result


def story_or_turn(client: Client, index: int, step: int, campaign_id: str, interaction_every: int = 3) -> Result:
    """Every ``interaction_every``-th request a full turn, the others a plain story entry."""
    if interaction_every and step % interaction_every == interaction_every - 1:
        return client.send("interaction", campaign_id, {"input": f"Player {index} acts, step {step}."})
    return client.send("story", campaign_id, {"actor": "user", "text": f"Client {index}, entry {step}: é漢😀"})


def run_clients(urls: dict[str, str], project: str, clients: int, requests_each: int,
                make: Callable[[Client, int, int], Result] | None = None, pause_s: float = 0.0,
                progress: Callable[[int], None] | None = None) -> list[Result]:
    """``clients`` players in parallel, each sending ``requests_each`` requests one after another."""
    make = make or (lambda client, index, step: story_or_turn(client, index, step, f"load-{index}"))
    results: list[Result] = []
    lock = threading.Lock()

    def player(index: int) -> None:
        client = Client(urls, project, f"player-{index}")
        for step in range(requests_each):
            result = make(client, index, step)
            with lock:
                results.append(result)
                done = len(results)
            if progress is not None:
                progress(done)
            if pause_s:
                time.sleep(pause_s)

    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(player, range(clients)))
    return results
