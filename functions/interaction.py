"""``interaction``: the player's turn, the storyteller's answer, both stored before either is shown."""

from __future__ import annotations

from typing import Any

from shared.adapters.firestore_store import story_store
from shared.adapters.http_api import Call, endpoint
from shared.adapters.logs import setup_logging
from shared.adapters.storytellers import storyteller
from shared.core import validation
from shared.services.turns import play_turn

setup_logging("interaction")


def _play(call: Call) -> tuple[int, dict[str, Any]]:
    player = validation.interaction_input(call.json_body())
    turn = play_turn(story_store(), storyteller, uid=call.uid, campaign_id=call.campaign_id, player=player,
                     idempotency_key=call.idempotency_key, requested_at=call.requested_at)
    return 200, {"success": True, "response": turn.ai.text, "user_entry": turn.user.to_json(),
                 "ai_entry": turn.ai.to_json(), "verified": turn.verified, "replayed": turn.replayed}


interaction = endpoint("interaction", {"POST": _play})
