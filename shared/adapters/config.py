"""Configuration from the environment, read once per process.

Every knob an operator may turn lives here with its default, so ``deploy.sh``, the local stack and the
tests agree on names.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

LOCAL_ORIGINS_PATTERN = r"^http://(localhost|127\.0\.0\.1)(:\d{1,5})?$"


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


@dataclass(frozen=True)
class Settings:
    project: str
    database: str
    allowed_origins: tuple[str, ...]  # empty: only http://localhost and http://127.0.0.1, any port
    write_then_read: bool
    firestore_timeout_s: float
    storyteller: str
    gemini_api_key: str | None
    gemini_model: str | None
    gemini_base_url: str | None  # a proxy or a local stand-in for the Gemini API
    storyteller_timeout_s: float
    metrics_max_event_age_s: float
    auth_emulator: bool
    on_cloud: bool


@functools.cache
def settings() -> Settings:
    """The process's settings. Tests that change the environment call ``settings.cache_clear()``."""
    origins = tuple(o.strip() for o in os.environ.get("ALLOWED_ORIGINS", "").split(",") if o.strip())
    api_key = os.environ.get("GEMINI_API_KEY") or None
    return Settings(
        project=os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT") or "demo-story",
        database=os.environ.get("FIRESTORE_DATABASE") or "(default)",
        allowed_origins=origins,
        write_then_read=_flag("ENABLE_WRITE_THEN_READ", True),
        firestore_timeout_s=_number("FIRESTORE_TIMEOUT_SECONDS", 10.0),
        storyteller=(os.environ.get("STORYTELLER") or ("gemini" if api_key else "local")).strip().lower(),
        gemini_api_key=api_key,
        gemini_model=os.environ.get("GEMINI_MODEL") or None,
        gemini_base_url=os.environ.get("GEMINI_BASE_URL") or None,
        storyteller_timeout_s=_number("STORYTELLER_TIMEOUT_SECONDS", 30.0),
        metrics_max_event_age_s=_number("METRICS_MAX_EVENT_AGE_SECONDS", 3600.0),
        auth_emulator=bool(os.environ.get("FIREBASE_AUTH_EMULATOR_HOST")),
        on_cloud=bool(os.environ.get("K_SERVICE")),
    )
