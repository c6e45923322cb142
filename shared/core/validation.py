"""Request validation: everything a client sends is checked here before anything is written.

Each check raises an ``ApiError`` with a message that tells the caller what to change. Limits follow
Firestore's own (1 MiB documents, 20 levels of nesting, no arrays in arrays, no ``__x__`` names), so a
request that passes here cannot fail later for being unstorable.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from shared.core.entry import ACTORS, CHUNK_FIELDS, MODES, EntryDraft, Mode
from shared.core.errors import InvalidArgument, PayloadTooLarge, UnsupportedMediaType
from shared.core.ids import is_entry_id

MAX_BODY_BYTES = 5 * 1024 * 1024
MAX_TEXT_BYTES = 4_000_000
MAX_STRUCTURED_BYTES = 256 * 1024
MAX_NESTING = 20
# Production Firestore allows 20,000 fields and 40,000 index entries per document (the emulator does not
# enforce either): a cap on values keeps every storable-looking request storable.
MAX_STRUCTURED_VALUES = 10_000
MAX_FIELD_NAME_BYTES = 1500
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_CAMPAIGN_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_IDEMPOTENCY_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")
_RESERVED_NAME = re.compile(r"^__.*__$", re.DOTALL)


def campaign_id(value: str) -> str:
    if not _CAMPAIGN_ID.fullmatch(value):
        raise InvalidArgument("campaignId must be 1-128 characters of A-Z, a-z, 0-9, '_' or '-'.")
    if _RESERVED_NAME.match(value):  # Firestore reserves __name__ ids
        raise InvalidArgument("campaignId may not start and end with '__'.")
    return value


def idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(value):
        raise InvalidArgument("Idempotency-Key must be 1-255 printable ASCII characters.")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def json_object(body: bytes, content_type: str | None) -> dict[str, Any]:
    """Parse a request body that must be one JSON object, sent as ``application/json``."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType("Send the body as JSON with 'Content-Type: application/json'.")
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"The body is not valid UTF-8 (byte {exc.start}).") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise InvalidArgument("The JSON body is nested too deeply.") from None
    except ValueError as exc:
        raise InvalidArgument(f"The body is not valid JSON: {exc}.") from None
    if not isinstance(value, dict):
        raise InvalidArgument("The body must be a JSON object.")
    return value


def _only_fields(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidArgument(f"Unknown field(s): {', '.join(map(repr, unknown))}; "
                              f"allowed: {', '.join(sorted(allowed))}.")


def _utf8_size(value: str, what: str) -> int:
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidArgument(f"{what} contains an unpaired surrogate, which is not valid Unicode text.") from None


def text_field(value: Any, what: str, *, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"'{what}' must be a string.")
    size = _utf8_size(value, f"'{what}'")
    if size > MAX_TEXT_BYTES:
        raise InvalidArgument(f"'{what}' is {size} UTF-8 bytes; at most {MAX_TEXT_BYTES} are allowed.")
    if not allow_empty and not value.strip():
        raise InvalidArgument(f"'{what}' must not be empty.")
    return value


def mode_field(value: Any, *, default: Mode | None) -> Mode | None:
    if value is None:
        return default
    if value not in MODES:
        raise InvalidArgument(f"'mode' must be one of {', '.join(MODES)}.")
    return value


def _check_name(name: Any, path: str) -> None:
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"structured_fields{path}: field names must be non-empty strings.")
    if _utf8_size(name, f"structured_fields{path} field name") > MAX_FIELD_NAME_BYTES:
        raise InvalidArgument(f"structured_fields{path}: a field name is longer than {MAX_FIELD_NAME_BYTES} bytes.")
    if _RESERVED_NAME.match(name):
        raise InvalidArgument(f"structured_fields{path}: field name {name!r} is reserved (__name__ form).")


def _check_value(value: Any, path: str, depth: int, in_array: bool) -> None:
    if depth > MAX_NESTING:
        raise InvalidArgument(f"structured_fields{path}: nested deeper than {MAX_NESTING} levels.")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, float):
        if not math.isfinite(value):  # 1e400 parses as inf: not representable in a JSON answer
            raise InvalidArgument(f"structured_fields{path}: number out of the double range.")
        return
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidArgument(f"structured_fields{path}: integer out of the 64-bit range.")
        return
    if isinstance(value, str):
        _utf8_size(value, f"structured_fields{path}")
        return
    if isinstance(value, list):
        if in_array:
            raise InvalidArgument(f"structured_fields{path}: arrays inside arrays cannot be stored.")
        for index, item in enumerate(value):
            _check_value(item, f"{path}[{index}]", depth + 1, True)
        return
    if isinstance(value, dict):
        for name, item in value.items():
            _check_name(name, path)
            _check_value(item, f"{path}.{name}", depth + 1, False)
        return
    raise InvalidArgument(f"structured_fields{path}: unsupported value type {type(value).__name__}.")


def structured_fields(value: Any) -> dict[str, Any]:
    """A JSON object Firestore can store at the top level of a chunk document, next to its own fields."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument("'structured_fields' must be a JSON object.")
    clash = sorted(CHUNK_FIELDS & set(value))
    if clash:
        raise InvalidArgument(f"structured_fields may not use the entry's own field names: {', '.join(clash)}.")
    _check_value(value, "", 1, False)
    count = _count_values(value)
    if count > MAX_STRUCTURED_VALUES:
        raise InvalidArgument(f"structured_fields holds {count} values; at most {MAX_STRUCTURED_VALUES}.")
    size = structured_size(value)
    if size > MAX_STRUCTURED_BYTES:
        raise InvalidArgument(f"structured_fields is {size} bytes serialized; at most {MAX_STRUCTURED_BYTES}.")
    return value


def _count_values(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + sum(_count_values(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(_count_values(v) for v in value)
    return 1


def structured_size(value: dict[str, Any]) -> int:
    """Serialized size of structured fields; also what part 1 gives up of its text budget."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def story_draft(body: dict[str, Any]) -> EntryDraft:
    """The body of ``POST /campaigns/{id}/story``."""
    _only_fields(body, {"actor", "text", "mode", "structured_fields"})
    if body.get("actor") not in ACTORS:
        raise InvalidArgument(f"'actor' must be one of {', '.join(ACTORS)}.")
    if "text" not in body:
        raise InvalidArgument("'text' is required.")
    return EntryDraft(
        actor=body["actor"],
        text=text_field(body["text"], "text"),
        mode=mode_field(body.get("mode"), default=None),
        structured_fields=structured_fields(body.get("structured_fields")),
    )


def interaction_input(body: dict[str, Any]) -> EntryDraft:
    """The body of ``POST /campaigns/{id}/interaction``, as the player's entry."""
    _only_fields(body, {"input", "mode"})
    if "input" not in body:
        raise InvalidArgument("'input' is required.")
    return EntryDraft(
        actor="user",
        text=text_field(body["input"], "input", allow_empty=False),
        mode=mode_field(body.get("mode"), default="character"),
    )


DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500


def page_limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_PAGE_SIZE
    if not re.fullmatch(r"[0-9]{1,4}", value) or not 1 <= int(value) <= MAX_PAGE_SIZE:
        raise InvalidArgument(f"'limit' must be a whole number from 1 to {MAX_PAGE_SIZE}.")
    return int(value)


def page_cursor(value: str | None) -> str | None:
    """``before`` is the ``next_before`` of an earlier page: the id of the oldest entry it showed."""
    if value is None:
        return None
    if not is_entry_id(value):
        raise InvalidArgument("'before' must be a 'next_before' value from an earlier page.")
    return value
