"""Test fixtures: the real Firestore emulator for the whole session, cleared before every test that
uses it. A missing emulator makes those tests error (the suite fails); nothing skips."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.helpers import PROJECT

# Set before any function module is imported: they read the environment once.
os.environ["GOOGLE_CLOUD_PROJECT"] = PROJECT
os.environ["FIREBASE_AUTH_EMULATOR_HOST"] = "127.0.0.1:9099"  # accept local (unsigned) tokens
os.environ.pop("K_SERVICE", None)
os.environ.pop("GEMINI_API_KEY", None)
os.environ.setdefault("STORYTELLER", "local")


def reset_caches() -> None:
    """Forget per-process singletons so a test's environment change takes effect."""
    from shared.adapters import auth, firestore_store
    from shared.adapters.config import settings
    from shared.adapters.storytellers import storyteller

    settings.cache_clear()
    storyteller.cache_clear()
    auth._firebase_app.cache_clear()
    firestore_store.firestore_client.cache_clear()
    firestore_store.story_store.cache_clear()


@pytest.fixture(scope="session")
def emulator_host() -> Iterator[str]:
    from dev.emulator import Emulator, is_up

    existing = os.environ.get("FIRESTORE_EMULATOR_HOST")
    if existing and is_up(existing):
        yield existing
        return
    emulator = Emulator(log_path=os.path.join(os.environ.get("TMPDIR", "/tmp"), "firestore-emulator-tests.log"))
    try:
        emulator.wait_ready()
        os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host
        reset_caches()
        yield emulator.host
    finally:
        emulator.stop()


@pytest.fixture
def db(emulator_host: str):
    """A Firestore client on the emulator, with the database emptied first."""
    from dev.emulator import clear
    from shared.adapters.firestore_store import firestore_client

    os.environ["FIRESTORE_EMULATOR_HOST"] = emulator_host
    clear(emulator_host, PROJECT)
    reset_caches()
    yield firestore_client()
    reset_caches()


@pytest.fixture(scope="session")
def function_app():
    """``function_app(target)``: functions-framework's real app for an entry point, made once per target."""
    import functions_framework

    apps = {}

    def app(target: str):
        if target not in apps:
            apps[target] = functions_framework.create_app(target=target, source="main.py")
        return apps[target]

    return app


@pytest.fixture
def story_client(db, function_app):
    return function_app("story").test_client()


@pytest.fixture
def interaction_client(db, function_app):
    return function_app("interaction").test_client()


@pytest.fixture
def fake_gemini(monkeypatch):
    """The Gemini REST API on a local port, with the interaction function's storyteller pointed at it."""
    from tests.fake_gemini import FakeGemini

    with FakeGemini() as fake:
        monkeypatch.setenv("STORYTELLER", "gemini")
        monkeypatch.setenv("GEMINI_API_KEY", "test-key-not-secret")
        monkeypatch.setenv("GEMINI_BASE_URL", fake.base_url)
        monkeypatch.setenv("STORYTELLER_TIMEOUT_SECONDS", "2")
        reset_caches()
        yield fake
    reset_caches()
