"""The offline storyteller: deterministic, answers the player, and keeps the planning-only shape."""

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from shared.core import validation
from shared.core.entry import Entry
from shared.core.storyteller import LocalStoryteller

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def entry(actor: str, text: str) -> Entry:
    return Entry(id="e" * 32, campaign_id="c", actor=actor, mode="character", text=text, structured_fields={},
                 timestamp=NOW, parts=1)


@given(said=st.text(min_size=1).filter(lambda s: not s.strip().lower().startswith(("think", "plan"))),
       mode=st.sampled_from(["character", "god"]))
def test_same_input_same_turn_and_storable(said: str, mode: str) -> None:
    teller = LocalStoryteller()
    history = [entry("user", "I enter the tavern."), entry("gemini", "The door creaks.")]
    first = teller.next_turn(history=history, player_input=said, mode=mode)
    assert first == teller.next_turn(history=history, player_input=said, mode=mode)
    assert first.text and validation.structured_fields(first.structured_fields) == first.structured_fields
    assert ("god_mode_response" in first.structured_fields) == (mode == "god")


@given(rest=st.text(max_size=50), word=st.sampled_from(["think", "plan", "Think", "PLAN"]))
def test_think_and_plan_give_only_a_planning_block(rest: str, word: str) -> None:
    turn = LocalStoryteller().next_turn(history=[], player_input=f"{word} {rest}", mode="character")
    assert turn.text == "" and turn.structured_fields["planning_block"]["choices"]


def test_the_story_moves_with_the_history() -> None:
    teller = LocalStoryteller()
    opening = teller.next_turn(history=[entry("user", "I wake.")], player_input="I wake.", mode="character")
    later = teller.next_turn(history=[entry("user", "I wake."), entry("gemini", opening.text), entry("user", "I go")],
                             player_input="I go", mode="character")
    assert opening.text.startswith("The tale begins") and later.text.startswith("Still in")
    assert later.structured_fields["resources"]["turn"] == 2
