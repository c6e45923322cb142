"""Entry and document ids.

Ids are deterministic so that a commit whose outcome is unknown can be settled by reading them, and so
that a retried request with the same ``Idempotency-Key`` lands on the same documents instead of new ones.
"""

from __future__ import annotations

import hashlib
import re
import secrets

_ENTRY_ID = re.compile(r"^[0-9a-f]{32}$")


def new_entry_id() -> str:
    """A random id for a request that carries no ``Idempotency-Key``."""
    return secrets.token_hex(16)


def derived_entry_id(uid: str, campaign_id: str, idempotency_key: str, role: str) -> str:
    """The id an idempotent request always gets. ``role`` separates the entries one request writes
    (e.g. the player's and the AI's turn) and the functions that share a key space."""
    material = "\x00".join(("story-entry/v1", uid, campaign_id, role, idempotency_key))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]


def chunk_doc_id(entry_id: str, part: int) -> str:
    """The document id of one chunk: ``<entry_id>_<part>`` (1-based, zero-padded so ids sort by part)."""
    return f"{entry_id}_{part:04d}"


def is_entry_id(value: str) -> bool:
    return bool(_ENTRY_ID.fullmatch(value))
