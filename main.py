"""Entry points of the deployed functions (``--entry-point`` names). Nothing else lives here."""

from functions.story import story

__all__ = ["story"]
