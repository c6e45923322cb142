"""Firebase Authentication: the caller's uid, from a verified ID token and nothing else.

The uid owns the Firestore path (``users/{uid}/...``), so it is also checked to be a safe path segment.
In local mode (``FIREBASE_AUTH_EMULATOR_HOST`` set) firebase-admin accepts the Auth emulator's unsigned
tokens; a deployed function with that variable set would accept forged tokens, so it refuses to serve.
"""

from __future__ import annotations

import functools
import logging
import re
import time

import firebase_admin
from firebase_admin import auth as firebase_auth
from firebase_admin import credentials
from google.auth.credentials import AnonymousCredentials

from shared.adapters.config import settings
from shared.core.errors import InternalError, Unauthenticated

log = logging.getLogger(__name__)

_SAFE_UID = re.compile(r"^(?!\.\.?$)(?!__.*__$)[^/]{1,128}$", re.DOTALL)


_APP_NAME = "story-backend"


class _NoCredentials(credentials.Base):
    """Verifying an ID token needs only Google's public certificates, never this process's identity:
    without this, firebase-admin would look for Application Default Credentials first."""

    def get_credential(self) -> AnonymousCredentials:
        return AnonymousCredentials()


@functools.cache
def _firebase_app() -> firebase_admin.App:
    """One app per process, for the configured project (re-made if the project changed)."""
    project = settings().project
    try:
        app = firebase_admin.get_app(_APP_NAME)
    except ValueError:
        return firebase_admin.initialize_app(_NoCredentials(), options={"projectId": project}, name=_APP_NAME)
    if app.project_id == project:
        return app
    firebase_admin.delete_app(app)
    return firebase_admin.initialize_app(_NoCredentials(), options={"projectId": project}, name=_APP_NAME)


def authenticated_uid(authorization: str | None) -> str:
    """The uid of a valid ``Authorization: Bearer <Firebase ID token>``; ``Unauthenticated`` otherwise."""
    config = settings()
    if config.auth_emulator and config.on_cloud:
        log.critical("FIREBASE_AUTH_EMULATOR_HOST is set on a deployed function; refusing every request")
        raise InternalError("The service is misconfigured and refuses to serve.")
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Sign in: send 'Authorization: Bearer <Firebase ID token>'.")
    app = _firebase_app()  # outside the try: a configuration error is a 500, not a "bad token"
    try:
        claims = firebase_auth.verify_id_token(token.strip(), app=app)
    except firebase_auth.ExpiredIdTokenError:
        raise Unauthenticated("Your sign-in has expired; refresh the ID token.") from None
    except firebase_auth.CertificateFetchError as exc:
        log.error("could not fetch Firebase token certificates", extra={"json_fields": {"error": repr(exc)}})
        raise InternalError("Sign-in could not be checked right now; please retry.") from None
    except (firebase_auth.InvalidIdTokenError, ValueError):
        raise Unauthenticated("The ID token is not valid for this project.") from None
    # firebase-admin skips the expiry check for emulator tokens; the contract does not.
    if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] <= time.time():
        raise Unauthenticated("Your sign-in has expired; refresh the ID token.")
    uid = claims.get("uid") or claims.get("sub")
    if not isinstance(uid, str) or not _SAFE_UID.match(uid):
        raise Unauthenticated("The ID token names no usable user.")
    return uid
