"""The storyteller seam: what the AI is asked and what it answers, and the offline storyteller.

``interaction`` only knows this interface; ``STORYTELLER`` picks the implementation (the Gemini adapter
in ``shared.adapters.gemini`` or :class:`LocalStoryteller` here). The local one is deterministic and
offline so that development and tests never need the network, yet it moves the story along and returns
the same shapes as the real one, including the planning-only turn with an empty narrative.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.core.entry import Entry, Mode

HISTORY_WINDOW = 20


@dataclass(frozen=True)
class StoryTurn:
    """The storyteller's answer: narrative text (may be empty) and structured fields for part 1."""

    text: str
    structured_fields: dict[str, Any] = field(default_factory=dict)


class StorytellerError(Exception):
    """The storyteller failed, timed out or answered something unusable. Message is safe to show."""


class Storyteller(Protocol):
    name: str

    def next_turn(self, *, history: Sequence[Entry], player_input: str, mode: Mode) -> StoryTurn:
        """The AI's turn after ``player_input``; ``history`` is the campaign's recent entries, oldest
        first, ending with the player's entry just stored."""
        ...


_PLACES = ("the lantern-lit tavern", "the old north road", "the flooded crypt", "the market square",
           "the ruined watchtower", "the whispering forest")
_EVENTS = ("a stranger watches from the shadows", "thunder rolls over the hills",
           "a bell tolls somewhere far off", "the smell of smoke drifts closer",
           "a raven lands nearby and tilts its head", "footsteps echo and then stop")


class LocalStoryteller:
    """Deterministic offline storyteller: the same history and input always give the same turn."""

    name = "local"

    def next_turn(self, *, history: Sequence[Entry], player_input: str, mode: Mode) -> StoryTurn:
        seed = hashlib.sha256("\x00".join([e.text for e in history] + [player_input, mode]).encode()).digest()
        turn_number = sum(1 for e in history if e.actor == "user")
        opening = next((e.text for e in history if e.actor == "user"), player_input)
        place = _PLACES[hashlib.sha256(opening.encode()).digest()[0] % len(_PLACES)]  # the campaign's setting
        event = _EVENTS[seed[1] % len(_EVENTS)]
        roll = seed[2] % 20 + 1
        said = player_input.strip()[:500]  # an echo, not a copy: the input itself is stored already
        header = f"Turn {turn_number} · {place}"
        if said.lower().startswith(("think", "plan")):
            return StoryTurn(text="", structured_fields={
                "session_header": header,
                "planning_block": {
                    "thinking": f"You weigh your options: {said}",
                    "choices": [f"Press on toward {place}", "Wait and watch", "Ask the others for counsel"],
                },
            })
        if mode == "god":
            return StoryTurn(
                text=f"[God mode] The world bends to your will: {said}",
                structured_fields={
                    "session_header": header,
                    "god_mode_response": f"Applied: {said}",
                    "planning_block": {"choices": ["Return to the story"]},
                },
            )
        previous = next((e.text for e in reversed(history) if e.actor == "gemini" and e.text), None)
        recap = f"Still in {place}, " if previous else f"The tale begins in {place}. "
        text = (f"{recap}you act: \u201c{said[:200]}\u201d As you do, {event}. "
                f"(d20 roll: {roll}{' — success' if roll >= 10 else ' — the attempt falters'}.)")
        return StoryTurn(text=text, structured_fields={
            "session_header": header,
            "dice_rolls": [f"d20 = {roll}"],
            "resources": {"turn": turn_number, "hp": max(1, 20 - (turn_number % 7))},
            "planning_block": {"choices": ["Look around", "Move on", "Talk to someone"]},
        })
