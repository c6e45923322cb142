"""Functions as real processes: ``functions-framework`` on a port, in its own process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def wait_for_port(port: int, timeout_s: float = 30, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with code {process.returncode} before listening on {port}")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout_s} s")


def start_function(target: str, port: int, env: dict[str, str], stdout=None) -> subprocess.Popen:
    """``functions-framework --target <target>`` from this source tree, as the deployed runtime runs it."""
    command = [str(Path(sys.executable).parent / "functions-framework"), "--target", target,
               "--source", str(ROOT / "main.py"), "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env, "FUNCTION_TARGET": target}, stdout=stdout,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def stop(process: subprocess.Popen, timeout_s: float = 10) -> None:
    """Stop a process and everything in its group (gunicorn workers included)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout_s)
        except ProcessLookupError:
            pass
    try:  # workers left behind by a parent that died
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
