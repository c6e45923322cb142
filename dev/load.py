"""Load: N concurrent players against the local story and interaction functions (real processes on the
Firestore emulator). Prints throughput and p50/p99 per endpoint, and the server settings used.

    ./dev/load [--clients 8] [--requests 50] [--workers 1] [--threads 8]

Each player sends its requests one after another (2 plain story entries, then a full interaction turn,
repeated); the players run in parallel. ``--workers`` / ``--threads`` are functions-framework's gunicorn
settings (env ``WORKERS`` / ``THREADS``; on Cloud Run one worker and the instance's concurrency apply).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from dev.emulator import Emulator, free_port, is_up
from dev.processes import start_function, stop, wait_for_port
from dev.traffic import Result, run_clients

PROJECT = "demo-story-load"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(results: list[Result], wall_s: float) -> None:
    print("| endpoint | requests | errors | throughput (req/s) | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for endpoint in ("story", "interaction"):
        mine = [r for r in results if r.endpoint == endpoint]
        if not mine:
            continue
        errors = sum(1 for r in mine if not r.ok)
        ms = [r.elapsed_s * 1000 for r in mine]
        print(f"| {endpoint} | {len(mine)} | {errors} | {len(mine) / wall_s:.1f} | "
              f"{statistics.median(ms):.1f} | {percentile(ms, 0.99):.1f} |")
    statuses: dict[str, int] = {}
    for r in results:
        key = str(r.status or r.error)
        statuses[key] = statuses.get(key, 0) + 1
    print(f"\n{len(results)} requests in {wall_s:.1f} s ({len(results) / wall_s:.1f} req/s overall); "
          f"statuses: {statuses}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=50, help="requests per client")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers per function")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker")
    args = parser.parse_args()

    emulator, processes = None, []
    host = os.environ.get("FIRESTORE_EMULATOR_HOST")
    try:
        if not (host and is_up(host)):
            emulator = Emulator().wait_ready()
            host = emulator.host
        env = {"FIRESTORE_EMULATOR_HOST": host, "GOOGLE_CLOUD_PROJECT": PROJECT, "STORYTELLER": "local",
               "FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9099", "WORKERS": str(args.workers),
               "THREADS": str(args.threads)}
        urls = {}
        for target in ("story", "interaction"):
            port = free_port()
            process = start_function(target, port, {**env, "LOG_LEVEL": "WARNING"},
                                     stdout=open(os.devnull, "wb"))  # noqa: SIM115
            processes.append(process)
            wait_for_port(port, process=process)
            urls[target] = f"http://127.0.0.1:{port}"
        print(f"functions-framework (gunicorn gthread): WORKERS={args.workers} THREADS={args.threads} per function; "
              f"{args.clients} clients × {args.requests} requests; Firestore emulator at {host}\n", flush=True)
        run_clients(urls, PROJECT, 2, 3)  # warm-up: connections, Firestore channels
        started = time.monotonic()
        results = run_clients(urls, PROJECT, args.clients, args.requests)
        report(results, time.monotonic() - started)
    finally:
        for process in processes:
            stop(process)
        if emulator is not None:
            emulator.stop()


if __name__ == "__main__":
    main()
