"""A local stand-in for the Gemini REST API, so the real google-genai client can be tested offline.

The storyteller adapter is tested through the SDK rather than by mocking it, because what matters is
what goes over the wire (URL, API key header, schema, contents) and how the SDK's own parsing, errors
and timeouts reach the adapter. This server answers ``POST /{version}/models/{model}:generateContent``
with the JSON shapes the real API uses and records every request it receives.

Replies are scripted per test. Each request takes the next scripted reply; the last one keeps being
used, so "always fail with 429" is one call.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_GENERATE = re.compile(r"^/(?P<version>v1(?:beta)?)/models/(?P<model>[^/:]+):generateContent$")
_STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


@dataclass(frozen=True)
class Reply:
    """One scripted answer: status, JSON body (or raw bytes) and how long to wait before sending it."""

    status: int = 200
    body: dict[str, Any] | bytes = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or the raw text when it is not JSON

    @property
    def model(self) -> str | None:
        match = _GENERATE.match(self.path)
        return match["model"] if match else None


def generate_response(text: str | None, *, finish_reason: str = "STOP", model: str = "gemini-2.5-flash",
                      block_reason: str | None = None) -> dict[str, Any]:
    """A ``GenerateContentResponse`` as the REST API sends it (camelCase, usage metadata, ids)."""
    usage = {"promptTokenCount": 42, "candidatesTokenCount": 17, "totalTokenCount": 59,
             "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 42}]}
    body: dict[str, Any] = {"usageMetadata": usage, "modelVersion": model, "responseId": "fake-response-id"}
    if block_reason is not None:
        body["promptFeedback"] = {"blockReason": block_reason}
        return body
    if text is not None:
        body["candidates"] = [{"content": {"parts": [{"text": text}], "role": "model"},
                               "finishReason": finish_reason, "index": 0}]
    return body


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    """Google's error envelope, as the API returns it with a non-200 status."""
    name = _STATUS_NAMES.get(status, "UNKNOWN")
    return {"error": {"code": status, "message": message or f"Fake {name.lower()} error.", "status": name}}


class FakeGemini:
    """The fake server; use as a context manager (``with FakeGemini() as fake:``)."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._script: list[Reply] = [Reply(body=generate_response(json.dumps({"narrative": "Hello."})))]
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="fake-gemini", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    # --- scripting -------------------------------------------------------------------------------
    def script(self, *replies: Reply) -> None:
        """Replace the script: request n gets ``replies[n]``; later requests get the last one."""
        if not replies:
            raise ValueError("script needs at least one reply")
        with self._lock:
            self._script = list(replies)

    def answer(self, payload: Any) -> None:
        """The model answers with ``payload`` serialized as JSON text (what a schema'd answer looks like)."""
        self.script(Reply(body=generate_response(json.dumps(payload))))

    def answer_text(self, text: str, **kwargs: Any) -> None:
        """The model answers with this exact text (e.g. something that is not JSON)."""
        self.script(Reply(body=generate_response(text, **kwargs)))

    def fail(self, status: int, message: str | None = None) -> None:
        self.script(Reply(status=status, body=error_body(status, message)))

    def stall(self, seconds: float, payload: Any = None) -> None:
        """Answer only after ``seconds``: longer than the client's timeout, the client gives up first."""
        self.script(Reply(body=generate_response(json.dumps(payload or {"narrative": "Too late."})),
                          delay_s=seconds))

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> FakeGemini:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes stalled handlers so shutdown never waits on them
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeGemini:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- serving ---------------------------------------------------------------------------------
    def _next_reply(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            return self._script.pop(0) if len(self._script) > 1 else self._script[0]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not _GENERATE.match(self.path.split("?", 1)[0]):
                    self._send(Reply(status=404, body=error_body(404, f"Unknown path {self.path}")))
                    return
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                headers = {name.lower(): value for name, value in self.headers.items()}
                reply = fake._next_reply(RecordedRequest(path=self.path, headers=headers, body=body))
                if reply.delay_s and fake._stopping.wait(reply.delay_s):
                    return
                self._send(reply)

            def _send(self, reply: Reply) -> None:
                payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json; charset=UTF-8")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (timeout) and closed the connection
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
                return

        return Handler
