"""The HTTP face both HTTP functions share: routing, CORS, auth, body limits and the error shape.

A function declares its resource (``story``, ``interaction``) and one handler per method; everything a
client sees around the handler — preflight, 404/405/413/415, CORS headers on every response including
crashes, JSON errors without tracebacks — is decided here once, so both functions behave the same.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import flask

from shared.adapters.auth import authenticated_uid
from shared.adapters.config import LOCAL_ORIGINS_PATTERN, settings
from shared.core import validation
from shared.core.errors import ApiError, InternalError, MethodNotAllowed, NotFound, PayloadTooLarge

log = logging.getLogger(__name__)

ALLOWED_HEADERS = "Authorization, Content-Type, Idempotency-Key"
PREFLIGHT_MAX_AGE = "3600"
_LOCAL_ORIGIN = re.compile(LOCAL_ORIGINS_PATTERN)


@dataclass(frozen=True)
class Call:
    """One authenticated request, as handlers see it."""

    request: flask.Request
    uid: str
    campaign_id: str
    requested_at: datetime

    @property
    def idempotency_key(self) -> str | None:
        return validation.idempotency_key(self.request.headers.get("Idempotency-Key"))

    def json_body(self) -> dict[str, Any]:
        """The body as one JSON object; never reads more than the size limit."""
        length = self.request.content_length
        if length is not None and length > validation.MAX_BODY_BYTES:
            raise PayloadTooLarge(f"The request body is larger than {validation.MAX_BODY_BYTES} bytes.")
        body = self.request.stream.read(validation.MAX_BODY_BYTES + 1)
        return validation.json_object(body, self.request.headers.get("Content-Type"))


Handler = Callable[[Call], tuple[int, Mapping[str, Any]]]


def origin_allowed(origin: str | None) -> bool:
    if not origin:
        return False
    allowed = settings().allowed_origins
    if allowed:
        return origin in allowed or "*" in allowed
    return bool(_LOCAL_ORIGIN.match(origin))


def _cors_headers(request: flask.Request, methods: tuple[str, ...]) -> dict[str, str]:
    headers = {"Vary": "Origin"}
    origin = request.headers.get("Origin")
    if origin_allowed(origin):
        headers["Access-Control-Allow-Origin"] = origin  # type: ignore[assignment]
        headers["Access-Control-Allow-Methods"] = ", ".join((*methods, "OPTIONS"))
        headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
    return headers


def _json_response(status: int, body: Mapping[str, Any], headers: Mapping[str, str]) -> flask.Response:
    response = flask.Response(json.dumps(body, ensure_ascii=False), status=status, mimetype="application/json")
    response.headers.update(headers)
    return response


def error_body(error: ApiError) -> dict[str, Any]:
    return {"success": False, "code": error.code, "error": error.message, **error.extra}


def endpoint(resource: str, handlers: Mapping[str, Handler]) -> Callable[[flask.Request], flask.Response]:
    """The functions-framework entry point for ``/campaigns/{campaignId}/<resource>`` (``/api`` prefix
    optional, as in the original app)."""
    pattern = re.compile(rf"^(?:/api)?/campaigns/(?P<campaign>.*)/{re.escape(resource)}/?$", re.DOTALL)
    methods = tuple(handlers)

    def handle(request: flask.Request) -> flask.Response:
        cors = _cors_headers(request, methods)
        try:
            match = pattern.match(request.path)
            if match is None:
                raise NotFound(f"No such endpoint; use /campaigns/{{campaignId}}/{resource}.")
            if request.method == "OPTIONS":
                response = flask.Response(status=204)
                response.headers.update(cors)
                return response
            handler = handlers.get(request.method)
            if handler is None:
                raise MethodNotAllowed(request.method, (*methods, "OPTIONS"))
            requested_at = datetime.now(UTC)
            uid = authenticated_uid(request.headers.get("Authorization"))
            call = Call(request, uid, validation.campaign_id(match.group("campaign")), requested_at)
            status, body = handler(call)
            return _json_response(status, body, cors)
        except ApiError as error:
            if error.status >= 500:
                log.error("request failed: %s", error.message, exc_info=error.__cause__ is not None,
                          extra={"json_fields": {"code": error.code, "path": request.path}})
            return _json_response(error.status, error_body(error), {**cors, **error.headers})
        except Exception:  # a bug: log it whole, show the client nothing of it
            log.exception("unhandled error", extra={"json_fields": {"path": request.path}})
            return _json_response(500, error_body(InternalError("Something went wrong on our side; please retry.")),
                                  cors)

    handle.__name__ = resource
    handle.__doc__ = f"HTTP entry point of the {resource} function."
    return handle
