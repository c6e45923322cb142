"""ID tokens, as the story function sees them: what is refused (401, nothing written), what is accepted.

Two modes. Local mode (``FIREBASE_AUTH_EMULATOR_HOST`` set, the test default) accepts the Auth emulator's
unsigned tokens. Production mode (the variable unset) verifies RS256 signatures against Google's public
certificates; here they come from a local HTTP server that serves a certificate made by the test, in the
format and with the caching headers of Google's x509 endpoint, so the real firebase-admin / google-auth
code path runs without network.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.conftest import reset_caches
from tests.helpers import PROJECT, all_docs, auth, local_token, story_docs

PATH = "/campaigns/c1/story"
ORIGIN = "http://localhost:3000"
BODY = {"actor": "user", "text": "I knock twice."}
GOOGLE_CERT_URL = "https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com"
CERT_MAX_AGE_S = 3600


# -- keys, certificates and signed tokens ------------------------------------------------------------


def _self_signed(key: rsa.RSAPrivateKey) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "securetoken.system.gserviceaccount.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass(frozen=True)
class Signer:
    """A key pair with its certificate, signing ID tokens as Firebase Auth issues them."""

    key: rsa.RSAPrivateKey
    kid: str
    cert_pem: str

    @classmethod
    def new(cls) -> Signer:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(key, uuid.uuid4().hex, _self_signed(key))

    def token(self, uid: str = "alice", project: str = PROJECT, *, kid: str | None = None, **claims: Any) -> str:
        """RS256, ``kid`` header; a claim passed as ``None`` is left out."""
        return jwt.encode(firebase_claims(uid, project, **claims), self.key, algorithm="RS256",
                          headers={"kid": kid or self.kid})

    def private_pem(self) -> str:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()


def firebase_claims(uid: str, project: str, **claims: Any) -> dict[str, Any]:
    now = int(time.time())
    payload = {"iss": f"https://securetoken.google.com/{project}", "aud": project, "auth_time": now - 30,
               "user_id": uid, "sub": uid, "iat": now - 30, "exp": now + 3600,
               "firebase": {"identities": {}, "sign_in_provider": "anonymous"}, **claims}
    return {name: value for name, value in payload.items() if value is not None}


class CertServer:
    """Google's x509 endpoint on 127.0.0.1: ``{kid: PEM certificate}`` with ``Cache-Control: max-age``."""

    def __init__(self, certs: dict[str, str]) -> None:
        self.body = json.dumps(certs).encode()
        self.hits = 0
        self.path = f"/{uuid.uuid4().hex}/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com"
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != server.path:
                    self.send_error(404)
                    return
                server.hits += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Cache-Control", f"public, max-age={CERT_MAX_AGE_S}, must-revalidate, no-transform")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_port}{self.path}"

    def __enter__(self) -> CertServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.new()


@pytest.fixture(scope="module")
def stranger() -> Signer:
    """A key whose certificate is not served."""
    return Signer.new()


@pytest.fixture
def production(monkeypatch, tmp_path, signer: Signer, story_client) -> Iterator[CertServer]:
    """Production mode: no emulator variable, signatures checked against certificates fetched over HTTP.

    firebase-admin reads the certificate URL from its app's token verifier; that one attribute is pointed
    at the local server (the caching, the fetch and the signature check stay firebase-admin's and
    google-auth's own). Building the auth client outside emulator mode loads Application Default
    Credentials, so a service-account file made from the test key stands in for them (no metadata server).
    """
    from firebase_admin import _token_gen
    from firebase_admin import auth as firebase_auth

    from shared.adapters import auth as auth_adapter

    credentials = tmp_path / "service-account.json"
    credentials.write_text(json.dumps({
        "type": "service_account", "project_id": PROJECT, "private_key_id": signer.kid,
        "private_key": signer.private_pem(), "client_email": f"tests@{PROJECT}.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token"}))
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    monkeypatch.delenv("K_SERVICE", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(credentials))
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    reset_caches()
    with CertServer({signer.kid: signer.cert_pem}) as certs:
        verifier = firebase_auth._get_client(auth_adapter._firebase_app())._token_verifier.id_token_verifier
        # the firebase-admin internals this relies on (7.x); an upgrade that moves them fails here
        assert verifier.cert_url == _token_gen.ID_TOKEN_CERT_URI == GOOGLE_CERT_URL
        monkeypatch.setattr(verifier, "cert_url", certs.url)
        yield certs
    monkeypatch.undo()
    reset_caches()


# -- requests and assertions -------------------------------------------------------------------------


def post(client, *, token: str | None = None, authorization: str | None = None, path: str = PATH):
    headers = {"Origin": ORIGIN}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if authorization is not None:
        headers["Authorization"] = authorization
    return client.post(path, data=json.dumps(BODY), content_type="application/json", headers=headers)


def assert_error(response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["success"] is False and body["code"] == code and body["error"]
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in response.headers["Vary"]
    assert "Traceback" not in response.get_data(as_text=True)
    return body


def assert_refused(response, db) -> dict[str, Any]:
    body = assert_error(response, 401, "unauthenticated")
    assert all_docs(db) == []
    return body


def expired(**claims: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iat": now - 7200, "auth_time": now - 7200, "exp": now - 60, **claims}


# Claims that make a token invalid in either mode.
BAD_CLAIMS = {
    "expired": expired(),
    "wrong_aud": {"aud": "someone-elses-project"},
    "wrong_iss": {"iss": "https://securetoken.google.com/someone-elses-project"},
    "foreign_issuer": {"iss": "https://accounts.google.com"},
    "no_sub": {"sub": None},
    "empty_sub": {"sub": "", "user_id": ""},
    "long_sub": {"sub": "u" * 129, "user_id": "u" * 129},
    "sub_with_slash": {"sub": "eve/../alice", "user_id": "eve/../alice"},
    "sub_dot_dot": {"sub": "..", "user_id": ".."},
}


# -- malformed headers (both modes) -----------------------------------------------------------------


MALFORMED = ["", "Bearer", "Bearer ", "Bearer x.y", "Bearer x.y.z", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz",
             "Token {token}", "Basic {token}", "{token}", "Bearer {token} extra"]


@pytest.mark.parametrize("header", [None, *MALFORMED], ids=lambda h: "missing" if h is None else repr(h))
def test_missing_or_malformed_authorization_is_401_local(story_client, db, header) -> None:
    value = None if header is None else header.format(token=local_token())
    assert_refused(post(story_client, authorization=value), db)


@pytest.mark.parametrize("header", [None, *MALFORMED], ids=lambda h: "missing" if h is None else repr(h))
def test_missing_or_malformed_authorization_is_401_production(production, signer, story_client, db,
                                                              header) -> None:
    value = None if header is None else header.format(token=signer.token())
    assert_refused(post(story_client, authorization=value), db)


# -- bad claims --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", BAD_CLAIMS)
def test_bad_claims_are_401_local(story_client, db, case) -> None:
    body = assert_refused(post(story_client, token=local_token("alice", **BAD_CLAIMS[case])), db)
    assert ("expired" in body["error"]) == (case == "expired")


def test_local_token_without_expiry_is_401(story_client, db) -> None:
    assert_refused(post(story_client, token=local_token("alice", exp=None)), db)


@pytest.mark.parametrize("case", BAD_CLAIMS)
def test_bad_claims_are_401_production(production, signer, story_client, db, case) -> None:
    body = assert_refused(post(story_client, token=signer.token("alice", **BAD_CLAIMS[case])), db)
    assert ("expired" in body["error"]) == (case == "expired")


# -- signatures (production mode) --------------------------------------------------------------------


def test_valid_signed_token_is_accepted_and_certificates_are_cached(production, signer, story_client, db) -> None:
    first = post(story_client, token=signer.token("prod-user"))
    assert first.status_code == 201, first.get_data(as_text=True)
    assert first.get_json()["entry"]["text"] == BODY["text"]
    assert first.headers["Access-Control-Allow-Origin"] == ORIGIN
    [doc] = story_docs(db, "prod-user", "c1")
    assert doc.get("entry_id") == first.get_json()["entry"]["id"]
    second = post(story_client, token=signer.token("prod-user"))
    assert second.status_code == 201
    assert production.hits == 1, "certificates are fetched once and then served from the HTTP cache"


def test_unsigned_emulator_token_is_401_in_production(production, story_client, db) -> None:
    assert_refused(post(story_client, token=local_token("alice")), db)
    assert production.hits == 0, "refused before any signature check"


def _unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return jwt.encode(payload, None, algorithm="none", headers=header)  # type: ignore[arg-type]


def test_alg_none_with_a_known_kid_is_401_in_production(production, signer, story_client, db) -> None:
    token = _unsigned({"kid": signer.kid}, firebase_claims("alice", PROJECT))
    assert_refused(post(story_client, token=token), db)


def test_hs256_keyed_with_the_public_certificate_is_401(production, signer, story_client, db) -> None:
    """The classic algorithm confusion: an HMAC "signed" with the public certificate as the secret."""
    header = {"alg": "HS256", "typ": "JWT", "kid": signer.kid}
    segments = [jwt.utils.base64url_encode(json.dumps(part).encode()) for part in
                (header, firebase_claims("alice", PROJECT))]
    signing_input = b".".join(segments)
    signature = hmac.new(signer.cert_pem.encode(), signing_input, hashlib.sha256).digest()
    token = (signing_input + b"." + jwt.utils.base64url_encode(signature)).decode()
    assert_refused(post(story_client, token=token), db)


def test_token_signed_by_an_unknown_key_is_401(production, stranger, story_client, db) -> None:
    assert_refused(post(story_client, token=stranger.token("alice")), db)
    assert production.hits == 1, "refused by the signature check, against the served certificates"


def test_forged_signature_under_a_served_kid_is_401(production, signer, stranger, story_client, db) -> None:
    assert_refused(post(story_client, token=stranger.token("alice", kid=signer.kid)), db)
    assert production.hits == 1, "refused by the signature check, against the served certificates"


def test_tampered_payload_is_401(production, signer, story_client, db) -> None:
    header, _, signature = signer.token("mallory").split(".")
    payload = jwt.utils.base64url_encode(json.dumps(firebase_claims("alice", PROJECT)).encode()).decode()
    assert_refused(post(story_client, token=f"{header}.{payload}.{signature}"), db)
    assert production.hits == 1


# -- ownership ---------------------------------------------------------------------------------------


def test_another_users_campaign_is_indistinguishable_from_a_missing_one(story_client, interaction_client,
                                                                       db) -> None:
    created = story_client.post(PATH, data=json.dumps(BODY), content_type="application/json", headers=auth("alice"))
    assert created.status_code == 201
    alices_entry = created.get_json()["entry"]["id"]

    theirs = story_client.get(PATH, headers=auth("mallory"))
    nowhere = story_client.get("/campaigns/never-existed/story", headers=auth("mallory"))
    cursor = story_client.get(f"{PATH}?before={alices_entry}", headers=auth("mallory"))
    for response in (theirs, nowhere, cursor):
        assert_error(response, 404, "not_found")
    assert theirs.get_data() == nowhere.get_data() == cursor.get_data()
    assert {k: v for k, v in theirs.headers.items() if k != "Date"} == \
        {k: v for k, v in nowhere.headers.items() if k != "Date"}

    # Writing to "the same" campaign id writes to the caller's own campaign and sees nothing of Alice's.
    mine = interaction_client.post("/campaigns/c1/interaction", data=json.dumps({"input": "I look around."}),
                                   content_type="application/json", headers=auth("mallory"))
    assert mine.status_code == 200
    assert mine.get_json()["ai_entry"]["text"].startswith("The tale begins"), "no history of Alice's was used"
    [alices] = story_docs(db, "alice", "c1")
    assert alices.get("text") == BODY["text"]
    assert len(story_docs(db, "mallory", "c1")) == 2


# -- misconfiguration --------------------------------------------------------------------------------


def test_emulator_variable_on_cloud_refuses_every_request(story_client, db, monkeypatch, capsys) -> None:
    monkeypatch.setenv("K_SERVICE", "story")
    reset_caches()
    capsys.readouterr()
    try:
        responses = [
            post(story_client, token=local_token("alice")),
            post(story_client),
            story_client.get(PATH, headers=auth("alice")),
            post(story_client, authorization="Bearer x.y"),
        ]
    finally:
        monkeypatch.delenv("K_SERVICE")
        reset_caches()
    for response in responses:
        assert_error(response, 500, "internal_error")
    assert all_docs(db) == []
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    critical = [line for line in lines if line.get("severity") == "CRITICAL"]
    assert len(critical) == len(responses)
    assert all("FIREBASE_AUTH_EMULATOR_HOST" in line["message"] for line in critical)
