"""Real processes: the HTTP functions under functions-framework, on the session's emulator."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from dev.emulator import free_port
from dev.processes import start_function, stop, wait_for_port
from tests.helpers import PROJECT


def function_env(emulator_host: str, **extra: str) -> dict[str, str]:
    return {"FIRESTORE_EMULATOR_HOST": emulator_host, "GOOGLE_CLOUD_PROJECT": PROJECT,
            "FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9099", "STORYTELLER": "local",
            "FIRESTORE_TIMEOUT_SECONDS": "5", **extra}


@pytest.fixture(scope="session")
def function_urls(emulator_host: str) -> Iterator[dict[str, str]]:
    """``{"story": url, "interaction": url}``, started once for the session (tests clear data via ``db``)."""
    started, urls = [], {}
    log_dir = os.environ.get("TMPDIR", "/tmp")
    try:
        for target in ("story", "interaction"):
            port = free_port()
            log = open(os.path.join(log_dir, f"e2e-{target}.log"), "wb")  # noqa: SIM115
            process = start_function(target, port, function_env(emulator_host), stdout=log)
            started.append(process)
            wait_for_port(port, process=process)
            urls[target] = f"http://127.0.0.1:{port}"
        yield urls
    finally:
        for process in started:
            stop(process)


def run_function(target: str, emulator_host: str, **env: str) -> tuple[subprocess.Popen, str]:
    """A function process of a test's own (for tests that need their own settings)."""
    port = free_port()
    process = start_function(target, port, function_env(emulator_host, **env), stdout=subprocess.DEVNULL)
    wait_for_port(port, process=process)
    return process, f"http://127.0.0.1:{port}"
