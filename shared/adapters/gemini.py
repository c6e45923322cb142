"""The Gemini storyteller: google-genai behind the ``Storyteller`` interface.

Everything that can go wrong on the way to Gemini and back (HTTP errors, timeouts, blocked prompts, an
answer that is not the JSON we asked for) ends here as a ``StorytellerError`` whose message can be shown
to a player; details go to the log, with the API key redacted. The caller has already stored the player's
entry, so a failure costs a retry, never data.

Time is bounded explicitly instead of trusting SDK defaults (which have changed between versions): at
most ``MAX_ATTEMPTS`` requests, each with its own timeout, all within ``timeout_s * MAX_ATTEMPTS``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from collections.abc import Sequence
from typing import Any

from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from shared.core.entry import Entry, Mode
from shared.core.errors import InvalidArgument
from shared.core.storyteller import StorytellerError, StoryTurn
from shared.core.validation import structured_fields

try:  # google-genai talks through httpx2 by default and through httpx when asked; recognise both.
    import httpx2
except ImportError:  # pragma: no cover - google-genai 3.x depends on httpx2
    httpx2 = None  # type: ignore[assignment]
try:
    import httpx
except ImportError:  # pragma: no cover - optional
    httpx = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "gemini-2.5-flash"
API_VERSION = "v1beta"  # pinned: the SDK's default moves between releases and env vars can change it
MAX_ATTEMPTS = 2
RETRY_DELAY_S = 0.3
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})

_TIMEOUTS = tuple(m.TimeoutException for m in (httpx2, httpx) if m is not None)
_NETWORK = tuple(m.TransportError for m in (httpx2, httpx) if m is not None)  # includes the timeouts

SYSTEM_INSTRUCTION = """\
You are the game master of a tabletop role-playing campaign played through chat. Continue the story \
from the conversation so far and the player's latest message, in second person, vividly but concisely.
Answer only with one JSON object that follows the response schema:
- narrative: the story text the player reads. It may be empty when the turn is only planning.
- session_header: one short line locating the scene (turn, place, situation).
- planning_block: "thinking" is your brief reasoning about where the scene can go; "choices" are 2-5 \
short options the player could take next.
- dice_rolls: each roll you made this turn, like "d20 = 14 (Perception, DC 12): success"; empty if none.
- resources: the character's tracked resources as name/value pairs (HP, gold, spell slots...).
Messages marked [god mode] come from the player as the campaign's author, not from their character."""

GOD_MODE_INSTRUCTION = """
This turn is in GOD MODE: the player speaks as the campaign's author, outside the fiction. Apply their \
instruction to the world, rules or story as asked, and fill god_mode_response with a direct, \
out-of-character reply saying what you changed. The narrative may describe the effect, or be empty."""

_FAILED = "The storyteller could not answer right now. Please try again."
_UNREADABLE = "The storyteller's answer could not be read. Please try again."
_DECLINED = "The storyteller declined this turn (blocked by its content filters). Try rephrasing."
_FILTERED = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "LANGUAGE"})


def _string(description: str) -> types.Schema:
    return types.Schema(type=types.Type.STRING, description=description)


def answer_schema(mode: Mode) -> types.Schema:
    """The JSON the model must return; ``god_mode_response`` exists (and is required) only in god mode.

    ``resources`` is a list of name/value pairs because the Gemini API's response schema cannot express
    a map with free keys (``additionalProperties``); it becomes an object in the stored fields.
    """
    properties = {
        "session_header": _string("One short line locating the scene."),
        "narrative": _string("The story text shown to the player; may be empty."),
        "dice_rolls": types.Schema(type=types.Type.ARRAY, items=_string("One roll and its outcome.")),
        "resources": types.Schema(type=types.Type.ARRAY, items=types.Schema(
            type=types.Type.OBJECT, required=["name", "value"],
            properties={"name": _string("Resource name, e.g. HP."), "value": _string("Current value, e.g. 12/20.")},
        )),
        "planning_block": types.Schema(
            type=types.Type.OBJECT, required=["choices"],
            properties={"thinking": _string("Brief reasoning about the scene."),
                        "choices": types.Schema(type=types.Type.ARRAY, items=_string("One option."))},
        ),
    }
    required = ["session_header", "narrative", "planning_block", "dice_rolls"]
    if mode == "god":
        properties = {"god_mode_response": _string("Out-of-character reply to the god-mode instruction."),
                      **properties}
        required.append("god_mode_response")
    return types.Schema(type=types.Type.OBJECT, properties=properties, required=required,
                        property_ordering=list(properties))


def _entry_text(entry: Entry) -> str:
    """A history entry as chat text; never empty, since the API rejects empty parts."""
    if entry.actor == "user":
        return f"[god mode] {entry.text}" if entry.mode == "god" else entry.text or "(silence)"
    if entry.text:
        return entry.text
    choices = (entry.structured_fields.get("planning_block") or {}).get("choices") or []
    offered = "; ".join(str(choice) for choice in choices)
    return f"(No narrative this turn; choices offered: {offered})" if offered else "(No narrative this turn.)"


def build_contents(history: Sequence[Entry], player_input: str, mode: Mode) -> list[types.Content]:
    """History as alternating user/model turns, then the player's input.

    The history normally ends with the player's entry that was just stored; it is not repeated. Turns
    by the same actor in a row (an earlier storyteller failure leaves two user turns) are merged,
    because the API expects the roles to alternate.
    """
    entries = list(history)
    if entries and entries[-1].actor == "user" and entries[-1].text == player_input:
        entries.pop()
    turns = [("user" if e.actor == "user" else "model", _entry_text(e)) for e in entries]
    turns.append(("user", f"[god mode] {player_input}" if mode == "god" else player_input))
    contents: list[types.Content] = []
    for role, text in turns:
        if contents and contents[-1].role == role:
            contents[-1].parts.append(types.Part(text=text))  # type: ignore[union-attr]
        else:
            contents.append(types.Content(role=role, parts=[types.Part(text=text)]))
    return contents


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str) and item.strip()] if isinstance(value, list) else []


def _resources(pairs: Any) -> dict[str, str]:
    """``[{"name": "HP", "value": "12/20"}, ...]`` as ``{"HP": "12/20"}``; malformed pairs are skipped."""
    if not isinstance(pairs, list):
        return {}
    return {pair["name"].strip(): pair["value"] for pair in pairs
            if isinstance(pair, dict) and isinstance(pair.get("name"), str) and pair["name"].strip()
            and isinstance(pair.get("value"), str)}


def parse_answer(raw: str) -> StoryTurn:
    """The model's JSON text as a turn. Optional fields of the wrong type are dropped rather than
    failing the turn; a missing object or a narrative that is not text fails it."""
    try:
        answer = json.loads(raw)
    except ValueError:
        raise StorytellerError(_UNREADABLE) from None
    if not isinstance(answer, dict):
        raise StorytellerError(_UNREADABLE)
    narrative = answer.get("narrative", "")
    if not isinstance(narrative, str):
        raise StorytellerError(_UNREADABLE)
    fields: dict[str, Any] = {}
    for name in ("session_header", "god_mode_response"):
        if isinstance(answer.get(name), str) and answer[name].strip():
            fields[name] = answer[name]
    if rolls := _strings(answer.get("dice_rolls")):
        fields["dice_rolls"] = rolls
    plan = answer.get("planning_block")
    if isinstance(plan, dict):
        block: dict[str, Any] = {}
        if isinstance(plan.get("thinking"), str) and plan["thinking"].strip():
            block["thinking"] = plan["thinking"]
        if choices := _strings(plan.get("choices")):
            block["choices"] = choices
        if block:
            fields["planning_block"] = block
    if resources := _resources(answer.get("resources")):
        fields["resources"] = resources
    if not narrative and not fields:
        raise StorytellerError("The storyteller returned an empty turn. Please try again.")
    try:
        return StoryTurn(text=narrative, structured_fields=structured_fields(fields))
    except InvalidArgument as exc:
        raise StorytellerError(_UNREADABLE) from exc


def _answer_text(response: types.GenerateContentResponse) -> str:
    """The text of the first candidate, or why there is none (blocked, cut off, empty)."""
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        raise StorytellerError(_DECLINED)
    candidate = response.candidates[0] if response.candidates else None
    parts = candidate.content.parts if candidate and candidate.content and candidate.content.parts else []
    text = "".join(part.text for part in parts if part.text and not part.thought)
    if text:
        return text
    if candidate is not None and candidate.finish_reason in _FILTERED:
        raise StorytellerError(_DECLINED)
    raise StorytellerError(_UNREADABLE)


def _finish_reason(response: types.GenerateContentResponse) -> str | None:
    reason = response.candidates[0].finish_reason if response.candidates else None
    return getattr(reason, "value", reason)


def _api_error_message(status: int) -> str:
    if status == 429:
        return "The storyteller is busy right now. Please try again in a moment."
    if status in (401, 403):
        return "The storyteller is not available: the AI service refused its credentials."
    if status == 404:
        return "The storyteller is not available: its AI model was not found."
    if status >= 500 or status == 408:
        return "The storyteller's AI service had a problem. Please try again."
    return "The storyteller could not handle this turn."


class GeminiStoryteller:
    """One per process; the SDK client (and its connection pool) is made on first use and kept."""

    name = "gemini"

    def __init__(self, api_key: str, model: str = DEFAULT_MODEL, timeout_s: float = 30.0,
                 base_url: str | None = None) -> None:
        if not api_key or not api_key.strip():
            raise ValueError("GeminiStoryteller needs an API key.")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive.")
        self._api_key = api_key
        self.model = model
        self.timeout_s = timeout_s
        self._base_url = base_url
        self._client: genai.Client | None = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:  # the key must not show up in logs or tracebacks
        return f"GeminiStoryteller(model={self.model!r}, timeout_s={self.timeout_s})"

    @property
    def client(self) -> genai.Client:
        with self._client_lock:
            if self._client is None:
                self._client = genai.Client(
                    api_key=self._api_key, vertexai=False,
                    # retry_options=None means exactly one attempt per call: retries are done in next_turn.
                    http_options=types.HttpOptions(base_url=self._base_url, api_version=API_VERSION,
                                                   timeout=_ms(self.timeout_s), retry_options=None),
                )
            return self._client

    def next_turn(self, *, history: Sequence[Entry], player_input: str, mode: Mode) -> StoryTurn:
        instruction = SYSTEM_INSTRUCTION + (GOD_MODE_INSTRUCTION if mode == "god" else "")
        contents = build_contents(history, player_input, mode)
        deadline = time.monotonic() + self.timeout_s * MAX_ATTEMPTS
        for attempt in range(1, MAX_ATTEMPTS + 1):
            remaining = deadline - time.monotonic()
            config = types.GenerateContentConfig(
                system_instruction=instruction, response_mime_type="application/json",
                response_schema=answer_schema(mode), candidate_count=1,
                automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
                automatic_continuation=False,  # one HTTP request per attempt, nothing hidden
                http_options=types.HttpOptions(timeout=_ms(min(self.timeout_s, remaining))),
            )
            try:
                response = self.client.models.generate_content(model=self.model, contents=contents, config=config)
            except Exception as exc:  # noqa: BLE001 - every SDK failure must become a StorytellerError
                error, retryable = self._classify(exc, attempt)
                if not retryable or attempt == MAX_ATTEMPTS or deadline - time.monotonic() < RETRY_DELAY_S + 0.1:
                    raise error from None
                time.sleep(RETRY_DELAY_S)
                continue
            try:
                return parse_answer(_answer_text(response))
            except StorytellerError as exc:
                logger.warning("Gemini answer unusable: %s", exc, extra={"json_fields": {
                    "event": "storyteller_failed", "storyteller": self.name, "model": self.model,
                    "finish_reason": _finish_reason(response)}})
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _classify(self, exc: Exception, attempt: int) -> tuple[StorytellerError, bool]:
        """The player's message for ``exc`` and whether another attempt could help; logs the detail."""
        detail = {"event": "storyteller_failed", "storyteller": self.name, "model": self.model,
                  "attempt": attempt, "error_type": type(exc).__name__}
        if isinstance(exc, genai_errors.APIError):
            detail.update(status=exc.code, api_status=exc.status)
            error, retryable = StorytellerError(_api_error_message(exc.code)), exc.code in RETRYABLE_STATUS
        elif isinstance(exc, _TIMEOUTS):
            error, retryable = StorytellerError("The storyteller took too long to answer. Please try again."), True
        elif isinstance(exc, _NETWORK):
            error, retryable = StorytellerError("The storyteller could not be reached. Please try again."), True
        elif isinstance(exc, genai_errors.UnknownApiResponseError):
            error, retryable = StorytellerError(_UNREADABLE), False
        else:
            detail["traceback"] = self._redact("".join(traceback.format_exception(exc)))
            error, retryable = StorytellerError(_FAILED), False
        logger.warning("Gemini request failed: %s", self._redact(str(exc))[:500], extra={"json_fields": detail})
        return error, retryable

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "[redacted]")


def _ms(seconds: float) -> int:
    """HttpOptions.timeout is whole milliseconds; never 0, which the SDK reads as "no timeout"."""
    return max(1, int(seconds * 1000))
