"""``persistence_metrics``: one ``story_entry_persisted`` log line per story entry Firestore stores.

Triggered by Eventarc on ``google.cloud.firestore.document.v1.created`` for
``users/{uid}/campaigns/{campaignId}/story/{docId}``, deployed with retries; the logs-based metrics that
``deploy.sh`` creates read the line. What an event means is decided in ``shared.services.entry_metrics``.
"""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from shared.adapters.logs import setup_logging
from shared.services.entry_metrics import DocumentEvent, report_document_created

setup_logging("persistence_metrics")


@functions_framework.cloud_event
def persistence_metrics(cloud_event: CloudEvent) -> None:
    report_document_created(DocumentEvent(
        id=cloud_event["id"],
        type=cloud_event.get("type"),
        time=cloud_event.get("time"),
        document=cloud_event.get("document") or cloud_event.get("subject") or None,
        content_type=cloud_event.get("datacontenttype"),
        data=cloud_event.data,
    ))
