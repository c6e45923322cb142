"""The local stack in one command: the Firestore emulator, every function under functions-framework on
its own port, and the Firestore→CloudEvent bridge that stands in for Eventarc. Ctrl-C stops it all.

    ./dev/run-local            (ports from 8081; the emulator on 8080, or FIRESTORE_EMULATOR_HOST's)
"""

from __future__ import annotations

import argparse
import ast
import importlib
import os
import signal
import threading
from typing import Any

from dev.emulator import Emulator, free_port, is_up, port_bindable
from dev.local_token import local_token
from dev.processes import ROOT, start_function, stop, wait_for_port
from shared.adapters.logs import setup_logging

PROJECT = "demo-story"
HTTP_FUNCTIONS = ("story", "interaction")


def _deployed_functions() -> list[str]:
    """The entry points ``main.py`` exports, read without importing it (importing sets up logging)."""
    tree = ast.parse((ROOT / "main.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise RuntimeError("main.py has no __all__")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port-base", type=int, default=8081, help="first function port (default 8081)")
    parser.add_argument("--emulator-port", type=int, default=8080)
    args = parser.parse_args()

    project = os.environ.get("GOOGLE_CLOUD_PROJECT") or PROJECT
    os.environ.setdefault("GOOGLE_CLOUD_PROJECT", project)
    setup_logging("local-stack")  # the bridge's lines, labelled as this process's
    started: list[Any] = []
    stop_bridge = threading.Event()
    emulator = None
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    host = os.environ.get("FIRESTORE_EMULATOR_HOST")
    try:
        if host and is_up(host):
            print(f"reusing the Firestore emulator at {host}", flush=True)
        else:
            port = args.emulator_port if port_bindable(args.emulator_port) else free_port()
            emulator = Emulator(port=port, log_path="/tmp/firestore-emulator-local.log").wait_ready()
            host = emulator.host
            print(f"Firestore emulator: http://{host}  (log: /tmp/firestore-emulator-local.log)", flush=True)
        env = {"FIRESTORE_EMULATOR_HOST": host, "GOOGLE_CLOUD_PROJECT": project,
               "FIREBASE_AUTH_EMULATOR_HOST": os.environ.get("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:9099"),
               "PYTHONUNBUFFERED": "1"}
        os.environ.update(env)
        urls: dict[str, str] = {}
        port = args.port_base
        for target in _deployed_functions():
            while not port_bindable(port):
                port += 1
            process = start_function(target, port, env)
            started.append(process)
            wait_for_port(port, process=process)
            urls[target] = f"http://127.0.0.1:{port}"
            port += 1
        if "persistence_metrics" in urls:
            bridge = importlib.import_module("dev.event_bridge")
            threading.Thread(target=bridge.run_bridge, args=(project, urls["persistence_metrics"], stop_bridge),
                             daemon=True).start()
        _print_banner(urls, project)
        while not stopping.wait(0.5):
            dead = [p for p in started if p.poll() is not None]
            if dead:
                print(f"a function process exited (code {dead[0].returncode}); stopping", flush=True)
                break
    finally:
        print("\nstopping ...", flush=True)
        stop_bridge.set()
        for process in started:
            stop(process)
        if emulator is not None:
            emulator.stop()
        print("stopped.", flush=True)


def _print_banner(urls: dict[str, str], project: str) -> None:
    token = local_token("local-player", project, lifetime_s=7 * 24 * 3600)
    lines = ["", "Local stack is up:"]
    lines += [f"  {name:<20} {url}" for name, url in urls.items()]
    lines += ["", "Try it (the token is a local one for uid 'local-player', valid for 7 days):",
              f"  export TOKEN='{token}'"]
    lines += [f"  export {name.upper()}={url}" for name, url in urls.items() if name in HTTP_FUNCTIONS]
    if "story" in urls:
        lines += [f"  curl -sS -X POST {urls['story']}/campaigns/demo/story -H \"Authorization: Bearer $TOKEN\" "
                  "-H 'Content-Type: application/json' -d '{\"actor\": \"user\", \"text\": \"I enter the tavern.\"}'",
                  f"  curl -sS {urls['story']}/campaigns/demo/story -H \"Authorization: Bearer $TOKEN\""]
    if "interaction" in urls:
        lines += [f"  curl -sS -X POST {urls['interaction']}/campaigns/demo/interaction "
                  "-H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' "
                  "-d '{\"input\": \"I ask the innkeeper about the missing caravan.\"}'"]
    lines += ["", "Metric log lines appear below. Ctrl-C stops everything.", ""]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
