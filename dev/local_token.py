"""ID tokens in the Firebase Auth emulator's format (unsigned, ``alg: none``), for local use and tests.

The functions accept these only while ``FIREBASE_AUTH_EMULATOR_HOST`` is set, as firebase-admin does.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def local_token(uid: str, project: str, lifetime_s: int = 3600, **claims: Any) -> str:
    now = int(time.time())
    payload = {"aud": project, "iss": f"https://securetoken.google.com/{project}", "sub": uid, "user_id": uid,
               "iat": now - 10, "exp": now + lifetime_s, "auth_time": now - 10, **claims}
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(payload)}."
