"""Firestore emulator → ``persistence_metrics``: what Eventarc does in the cloud, for the local stack.

The emulator has no Eventarc, so this listens to the ``story`` collection group and POSTs every new
document to the function as a binary-mode CloudEvent carrying protobuf ``DocumentEventData``, with the
attributes Eventarc sets for ``google.cloud.firestore.document.v1.created``. The function cannot tell
the difference, so the local stack exercises the same decoding path as production.

Documents that existed before the bridge started are not sent: a trigger only ever sees documents
created after it was deployed, and replaying history would double-count entries on every restart.

Run: ``python -m dev.event_bridge --target http://127.0.0.1:8083/`` with ``FIRESTORE_EMULATOR_HOST`` and
``GOOGLE_CLOUD_PROJECT`` set. Dev-only: kept out of the deployed upload by ``.gcloudignore``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import queue
import signal
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent
from google.cloud import firestore
from google.cloud.firestore_v1.base_document import DocumentSnapshot
from google.events.cloud.firestore import DocumentEventData, Value
from google.protobuf import timestamp_pb2

log = logging.getLogger("event_bridge")

EVENT_TYPE = "google.cloud.firestore.document.v1.created"
DATA_SCHEMA = ("https://github.com/googleapis/google-cloudevents/blob/main/proto/google/events/cloud/"
               "firestore/v1/data.proto")
DEFAULT_LOCATION = "nam5"
DELIVERY_BACKOFF_S = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)  # waits between attempts while the target is not up
POLL_S = 0.05

_RawEvent = DocumentEventData.pb()
_RawValue = Value.pb()


def _timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    """A protobuf Timestamp, keeping nanoseconds when Firestore's datetime carries them."""
    if hasattr(moment, "timestamp_pb"):  # google.api_core's DatetimeWithNanoseconds
        return moment.timestamp_pb()
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    return ts


def _set_value(target: Any, value: Any, database_name: str) -> None:
    """Fill the raw Firestore ``Value`` ``target`` from a Python value as the client library returns it."""
    if value is None:
        target.null_value = 0
    elif isinstance(value, bool):
        target.boolean_value = value
    elif isinstance(value, int):
        target.integer_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, bytes):
        target.bytes_value = value
    elif isinstance(value, datetime):
        target.timestamp_value.CopyFrom(_timestamp(value))
    elif isinstance(value, firestore.GeoPoint):
        target.geo_point_value.latitude = value.latitude
        target.geo_point_value.longitude = value.longitude
    elif isinstance(value, firestore.DocumentReference):
        target.reference_value = f"{database_name}/documents/{value.path}"
    elif isinstance(value, Mapping):
        target.map_value.SetInParent()  # an empty map is still a map
        for key, item in value.items():
            _set_value(target.map_value.fields[key], item, database_name)
    elif isinstance(value, (list, tuple)):
        target.array_value.SetInParent()
        for item in value:
            _set_value(target.array_value.values.add(), item, database_name)
    else:
        raise TypeError(f"no Firestore Value for {type(value).__name__}")


def _database_name(snapshot: DocumentSnapshot, project: str | None, database: str | None) -> str:
    client = snapshot.reference._client  # the client that read the snapshot knows its project and database
    return f"projects/{project or client.project}/databases/{database or client._database}"


def document_event(snapshot: DocumentSnapshot, project: str | None = None, database: str | None = None) -> bytes:
    """The protobuf ``DocumentEventData`` of a document's creation, as Eventarc sends it.

    ``project`` and ``database`` default to those of the client that read ``snapshot``.
    """
    database_name = _database_name(snapshot, project, database)
    event = _RawEvent()
    document = event.value
    document.name = f"{database_name}/documents/{snapshot.reference.path}"
    for key, item in (snapshot.to_dict() or {}).items():
        _set_value(document.fields[key], item, database_name)
    document.create_time.CopyFrom(_timestamp(snapshot.create_time))
    document.update_time.CopyFrom(_timestamp(snapshot.update_time))
    return event.SerializeToString()


def event_id(path: str, create_time: datetime) -> str:
    """The same id for every delivery of one document's creation, a new one if it is deleted and recreated."""
    material = f"{path}\x00{_timestamp(create_time).ToJsonString()}"
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]


def cloud_event_for(snapshot: DocumentSnapshot, project: str, database: str = "(default)",
                    location: str = DEFAULT_LOCATION) -> tuple[dict[str, str], bytes]:
    """``(headers, body)`` of the binary-mode CloudEvent Eventarc would POST for this document's creation."""
    path = snapshot.reference.path
    attributes = {
        "type": EVENT_TYPE,
        "source": f"//firestore.googleapis.com/projects/{project}/databases/{database}",
        "subject": f"documents/{path}",
        "id": event_id(path, snapshot.create_time),
        "time": _timestamp(snapshot.create_time).ToJsonString(),
        "datacontenttype": "application/protobuf",
        "dataschema": DATA_SCHEMA,
        "document": path,
        "database": database,
        "namespace": "(default)",
        "project": project,
        "location": location,
    }
    event = CloudEvent(attributes, document_event(snapshot, project, database))
    headers, body = to_binary(event, data_marshaller=lambda data: data)
    return dict(headers), body


def deliver(target_url: str, headers: Mapping[str, str], body: bytes, stop: threading.Event | None = None,
            timeout_s: float = 10.0) -> int | None:
    """POST one event, retrying briefly while the target is down or answers 429/5xx (as Eventarc would).

    Returns the final HTTP status, or ``None`` when the target never answered.
    """
    pause = stop or threading.Event()
    status: int | None = None
    for attempt in range(len(DELIVERY_BACKOFF_S) + 1):
        request = urllib.request.Request(target_url, data=body, headers=dict(headers), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
            if status != 429 and status < 500:
                return status  # the target refused the event itself: sending it again cannot help
        except OSError as exc:  # connection refused, reset, timed out: the target is not up (yet)
            log.debug("delivery attempt %d failed: %s", attempt + 1, exc)
        if attempt < len(DELIVERY_BACKOFF_S) and pause.wait(DELIVERY_BACKOFF_S[attempt]):
            break  # stopping: give up on this event
    return status


def run_bridge(project: str, target_url: str, stop: threading.Event, database: str = "(default)",
               location: str = DEFAULT_LOCATION, ready: threading.Event | None = None) -> None:
    """Forward every story document created from now on to ``target_url`` until ``stop`` is set.

    The listener's callback only queues snapshots; this thread does the (possibly slow) delivery, so a
    target that is down never stalls the listener. ``ready`` is set once the listener has its first
    snapshot.
    """
    if not os.environ.get("FIRESTORE_EMULATOR_HOST"):
        raise RuntimeError("FIRESTORE_EMULATOR_HOST is not set: the bridge is for the emulator only")
    client = firestore.Client(project=project, database=database)
    started = datetime.now(UTC)
    pending: queue.Queue[DocumentSnapshot] = queue.Queue()
    first = threading.Event()

    def on_snapshot(_docs: Any, changes: Any, _read_time: Any) -> None:
        initial = not first.is_set()
        for change in changes:
            if change.type.name != "ADDED":
                continue
            # The first snapshot lists what already exists; of that, send only what was created since
            # the bridge started (it may have been written while the listener was connecting).
            if initial and change.document.create_time < started:
                continue
            pending.put(change.document)
        first.set()
        if ready is not None:
            ready.set()

    watch = client.collection_group("story").on_snapshot(on_snapshot)
    log.info("bridge listening to story documents of %s, delivering to %s", project, target_url)
    try:
        while not stop.is_set():
            try:
                snapshot = pending.get(timeout=POLL_S)
            except queue.Empty:
                continue
            headers, body = cloud_event_for(snapshot, project, database, location)
            status = deliver(target_url, headers, body, stop)
            level = logging.INFO if status is not None and 200 <= status < 300 else logging.WARNING
            log.log(level, "delivered %s (%s): %s", snapshot.reference.path, headers["ce-id"], status)
    finally:
        watch.unsubscribe()
        client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dev.event_bridge", description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="URL of the persistence_metrics function")
    parser.add_argument("--database", default=os.environ.get("FIRESTORE_DATABASE") or "(default)")
    parser.add_argument("--location", default=DEFAULT_LOCATION, help="the 'location' attribute of each event")
    args = parser.parse_args(argv)
    project = os.environ.get("GOOGLE_CLOUD_PROJECT")
    if not project or not os.environ.get("FIRESTORE_EMULATOR_HOST"):
        print("set GOOGLE_CLOUD_PROJECT and FIRESTORE_EMULATOR_HOST (the bridge listens to the emulator)",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="event_bridge: %(message)s", stream=sys.stderr)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run_bridge(project, args.target, stop, database=args.database, location=args.location)
    return 0


if __name__ == "__main__":
    sys.exit(main())
