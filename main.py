"""Entry points of the deployed functions (``--entry-point`` names). Nothing else lives here."""

from functions.interaction import interaction
from functions.persistence_metrics import persistence_metrics
from functions.story import story

__all__ = ["interaction", "persistence_metrics", "story"]
