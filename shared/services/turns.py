"""One interaction turn: store the player's entry, ask the storyteller, store its answer.

Each entry is durable before anything depends on it: the storyteller is asked only after the player's
entry is stored, and a storyteller failure leaves that entry in place (and says so). With an
``Idempotency-Key`` a retry resumes where the last attempt stopped: the player's entry is a replay, the
storyteller is asked only if no answer was stored, and a stored answer is returned as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from shared.adapters.firestore_store import StoryStore
from shared.adapters.logs import log_event
from shared.core import validation
from shared.core.entry import Entry, EntryDraft
from shared.core.errors import IdempotencyConflict, InvalidArgument, StorytellerFailed
from shared.core.storyteller import HISTORY_WINDOW, Storyteller, StorytellerError
from shared.services.entries import entry_id_for, persist_entry

log = logging.getLogger(__name__)
FUNCTION = "interaction"


@dataclass(frozen=True)
class Turn:
    user: Entry
    ai: Entry
    verified: bool
    replayed: bool


def _history_until(store: StoryStore, uid: str, campaign_id: str, user: Entry) -> list[Entry]:
    """The recent entries up to and including the player's (a replayed old turn sees its own past)."""
    recent, _ = store.recent_entries(uid, campaign_id, HISTORY_WINDOW + 10)
    upto = [e for e in recent if e.timestamp <= user.timestamp]
    if not upto or upto[-1].id != user.id:
        upto = [e for e in upto if e.id != user.id] + [user]
    return upto[-HISTORY_WINDOW:]


def _ask(storyteller: Storyteller, history: list[Entry], player: EntryDraft, user: Entry) -> EntryDraft:
    try:
        turn = storyteller.next_turn(history=history, player_input=player.text, mode=player.mode or "character")
        fields = validation.structured_fields(turn.structured_fields)
        text = validation.text_field(turn.text, "narrative")
    except (StorytellerError, InvalidArgument) as exc:
        log_event(log, logging.ERROR, "storyteller failed", event="storyteller_failed",
                  storyteller=getattr(storyteller, "name", "?"), error=str(exc), entry_id=user.id)
        raise StorytellerFailed(f"The storyteller could not answer: {exc} Your turn is saved; retry to continue.",
                                extra={"user_entry": user.to_json()}) from exc
    return EntryDraft(actor="gemini", text=text, mode=player.mode, structured_fields=fields)


def play_turn(store: StoryStore, storyteller_factory: Callable[[], Storyteller], *, uid: str, campaign_id: str,
              player: EntryDraft, idempotency_key: str | None, requested_at: datetime) -> Turn:
    """Run one turn; ``storyteller_factory`` is called only when an answer is really needed."""
    user_id = entry_id_for(uid, campaign_id, idempotency_key, "interaction/user")
    ai_id = entry_id_for(uid, campaign_id, idempotency_key, "interaction/ai")
    if idempotency_key is not None:
        stored_ai = store.find_entry(uid, campaign_id, ai_id)
        if stored_ai is not None:  # the whole turn happened already: answer it again, ask no one
            stored_user = store.find_entry(uid, campaign_id, user_id)
            if stored_user is None or not player.same_content(stored_user):
                raise IdempotencyConflict("This Idempotency-Key was already used with a different body.")
            return Turn(stored_user, stored_ai, verified=True, replayed=True)
    user = persist_entry(store, function=FUNCTION, uid=uid, campaign_id=campaign_id, draft=player,
                         entry_id=user_id, requested_at=requested_at)
    try:
        teller = storyteller_factory()
    except StorytellerError as exc:
        raise StorytellerFailed(f"{exc} Your turn is saved.", extra={"user_entry": user.entry.to_json()}) from exc
    answer = _ask(teller, _history_until(store, uid, campaign_id, user.entry), player, user.entry)
    ai = persist_entry(store, function=FUNCTION, uid=uid, campaign_id=campaign_id, draft=answer, entry_id=ai_id,
                       requested_at=requested_at, stored_wins=True)
    return Turn(user.entry, ai.entry, verified=user.verified and ai.verified, replayed=user.replayed and ai.replayed)
