"""Which storyteller this process uses (``STORYTELLER``), built once."""

from __future__ import annotations

import functools

from shared.adapters.config import settings
from shared.core.storyteller import LocalStoryteller, Storyteller, StorytellerError


@functools.cache
def storyteller() -> Storyteller:
    config = settings()
    if config.storyteller == "local":
        return LocalStoryteller()
    if config.storyteller == "gemini":
        from shared.adapters.gemini import DEFAULT_MODEL, GeminiStoryteller

        if not config.gemini_api_key:
            raise StorytellerError("The storyteller is not configured (GEMINI_API_KEY is missing).")
        return GeminiStoryteller(config.gemini_api_key, config.gemini_model or DEFAULT_MODEL,
                                 config.storyteller_timeout_s, base_url=config.gemini_base_url)
    raise StorytellerError(f"Unknown STORYTELLER {config.storyteller!r}; use 'local' or 'gemini'.")
