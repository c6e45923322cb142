"""``story``: append an entry to a campaign's story, or list the story a page at a time."""

from __future__ import annotations

from typing import Any

from shared.adapters.firestore_store import story_store
from shared.adapters.http_api import Call, endpoint
from shared.adapters.logs import setup_logging
from shared.core import validation
from shared.services.entries import entry_id_for, persist_entry

setup_logging("story")


def _append(call: Call) -> tuple[int, dict[str, Any]]:
    draft = validation.story_draft(call.json_body())
    entry_id = entry_id_for(call.uid, call.campaign_id, call.idempotency_key, "story")
    outcome = persist_entry(story_store(), function="story", uid=call.uid, campaign_id=call.campaign_id,
                            draft=draft, entry_id=entry_id, requested_at=call.requested_at)
    body = {"success": True, "entry": outcome.entry.to_json(), "verified": outcome.verified,
            "replayed": outcome.replayed}
    return (200 if outcome.replayed else 201), body


def _list(call: Call) -> tuple[int, dict[str, Any]]:
    limit = validation.page_limit(call.request.args.get("limit"))
    before = validation.page_cursor(call.request.args.get("before"))
    entries, next_before = story_store().list_story(call.uid, call.campaign_id, limit, before)
    return 200, {"success": True, "entries": [e.to_json() for e in entries], "next_before": next_before}


story = endpoint("story", {"POST": _append, "GET": _list})
