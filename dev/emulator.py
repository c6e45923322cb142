"""The official Cloud Firestore emulator as a child process: found through gcloud, started on a free
port in its own process group (so stopping it takes its JVM too), cleared through its REST API."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path


class EmulatorMissing(RuntimeError):
    pass


def find_emulator() -> str:
    """The emulator launcher: ``FIRESTORE_EMULATOR_BIN``, or the one under gcloud's SDK root."""
    configured = os.environ.get("FIRESTORE_EMULATOR_BIN")
    candidates = [configured] if configured else []
    if shutil.which("gcloud"):
        root = subprocess.run(["gcloud", "info", "--format=value(installation.sdk_root)"],
                              capture_output=True, text=True, timeout=60).stdout.strip()
        if root:
            candidates.append(str(Path(root) / "platform/cloud-firestore-emulator/cloud_firestore_emulator"))
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise EmulatorMissing("the Cloud Firestore emulator is missing — install it with: apt-get install "
                          "google-cloud-cli-firestore-emulator "
                          "(or: gcloud components install cloud-firestore-emulator)")


# Below Linux's ephemeral range (32768-60999), where the kernel and the emulator's JVM pick the ports
# they bind to port 0: a port chosen here cannot be taken by one of those between choice and use.
PORT_RANGE = (20000, 32000)


def port_bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port nothing listens on now, outside the range the OS hands out by itself."""
    for _ in range(500):
        port = random.randrange(*PORT_RANGE)
        if port_bindable(port):
            return port
    raise RuntimeError(f"no free port in {PORT_RANGE}")


def is_up(host: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}/", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


class Emulator:
    """A running emulator we started; ``host`` is what ``FIRESTORE_EMULATOR_HOST`` should say."""

    def __init__(self, port: int | None = None, log_path: str | None = None) -> None:
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        self._log = open(log_path or os.devnull, "wb")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            [find_emulator(), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self, timeout_s: float = 60) -> Emulator:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Firestore emulator exited with code {self.process.returncode}")
            if is_up(self.host):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the Firestore emulator did not answer on {self.host} within {timeout_s} s")

    def signal(self, sig: int) -> None:
        os.killpg(self.process.pid, sig)

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.signal(signal.SIGCONT)
                self.signal(signal.SIGTERM)
                self.process.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    self.signal(signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait(timeout=10)
        else:  # the launcher is gone; its JVM may not be
            try:
                self.signal(signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._log.close()


def clear(host: str, project: str, database: str = "(default)") -> None:
    """Delete every document in the emulator's database (its own REST endpoint, no client needed)."""
    request = urllib.request.Request(
        f"http://{host}/emulator/v1/projects/{project}/databases/{database}/documents", method="DELETE")
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
