"""Property-based fuzzing of both HTTP functions from ``openapi.yaml`` (schemathesis), over real HTTP
against the running functions-framework processes and the real emulator.

Every generated request — valid by the spec or deliberately not — must get an answer the spec documents:
never a 5xx, a documented status code, the documented content type, headers and body schema, and the
CORS headers for the allowed origin it came from. Most requests carry a valid local ID token so they get
past authentication; every sixth goes without one, or with a forged one.
"""

from __future__ import annotations

import itertools
import os
import re
from collections import Counter
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from tests.helpers import PROJECT, local_token

SPEC = Path(__file__).resolve().parents[2] / "openapi.yaml"
COUNT_FILE = Path(os.environ.get("FUZZ_COUNT_FILE", "/tmp/fuzz-count.txt"))
ORIGIN = "http://localhost:3000"
UID = "fuzzer"
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "60"))  # per operation, fuzzing phase
CAMPAIGN_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}\Z")
ENTRY_ID = re.compile(r"^[0-9a-f]{32}\Z")

schema = schemathesis.openapi.from_path(SPEC)
# Unknown query parameters are ignored by design (the spec says so), so none are invented as "invalid".
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], database="none",
                                allow_extra_parameters=False)
schema.config.phases.update(phases=["examples", "coverage", "fuzzing"])

CHECKS = [
    not_a_server_error,  # no 5xx, ever
    status_code_conformance, content_type_conformance, response_headers_conformance, response_schema_conformance,
    negative_data_rejection,  # a request the spec calls invalid gets a 4xx
    unsupported_method,  # a method the spec does not list gets 405 with Allow
    missing_required_header,  # no Authorization: 401
    ignored_auth,  # a 2xx with a token is refused without one
]

_counts: Counter[str] = Counter()
_tokens: Counter[str] = Counter()
_sequence = itertools.count()
_session = requests.Session()


def _authorize(case) -> str:
    """Swap the generated (random) bearer token for a valid one; for every sixth case drop it or forge one
    (another project). A case schemathesis generated without the header on purpose keeps it missing."""
    name = next((h for h in case.headers or {} if h.lower() == "authorization"), None)
    if name is None:
        return "none"
    turn = next(_sequence) % 12
    if turn == 5:
        del case.headers[name]
        return "none"
    forged = turn == 11
    case.headers[name] = f"Bearer {local_token(UID, project='someone-else' if forged else PROJECT)}"
    return "forged" if forged else "valid"


def _base_url(function_urls: dict[str, str], path: str) -> str:
    return function_urls["interaction" if path.endswith("/interaction") else "story"]


@pytest.fixture
def seeded(db, function_urls):
    """``seed(campaign_id)``: give most campaigns three entries (once per test), so that listings find
    stories to page through; about one in four is left empty, for the 404 of a campaign that does not exist."""
    ids: dict[str, list[str]] = {}

    def seed(campaign_id: str) -> list[str]:
        if campaign_id not in ids and sum(campaign_id.encode()) % 4:
            url = f"{function_urls['story']}/campaigns/{campaign_id}/story"
            headers = {"Origin": ORIGIN, "Authorization": f"Bearer {local_token(UID)}"}
            bodies = [{"actor": "user", "text": "I open the door.", "mode": "character"},
                      {"actor": "gemini", "text": "", "structured_fields": {"planning_block": {"steps": ["a", 1]}}},
                      {"actor": "gemini", "text": "The hinges creak. 漢字 😀", "mode": "god"}]
            created = [_session.post(url, json=body, headers=headers, timeout=60) for body in bodies]
            assert [r.status_code for r in created] == [201, 201, 201], [r.text for r in created]
            ids[campaign_id] = [r.json()["entry"]["id"] for r in created]
        return ids.get(campaign_id, [])

    return seed


@pytest.fixture(scope="module", autouse=True)
def _report_count(pytestconfig):
    """How many requests were fuzzed, per operation: on the terminal and in ``/tmp/fuzz-count.txt``."""
    yield
    total = sum(_counts.values())
    detail = ", ".join(f"{label}: {n}" for label, n in sorted(_counts.items()))
    detail += "; tokens " + ", ".join(f"{kind}: {n}" for kind, n in sorted(_tokens.items()))
    COUNT_FILE.write_text(f"{total}\n{detail}\n")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\nfuzzed {total} cases ({detail})")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.generate], database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_every_answer_is_documented(case, function_urls, seeded) -> None:
    if case.method == "GET" and CAMPAIGN_ID.match(str(case.path_parameters.get("campaignId", ""))):
        entries = seeded(case.path_parameters["campaignId"])
        before = (case.query or {}).get("before")
        if entries and isinstance(before, str) and ENTRY_ID.match(before):  # well-formed: make it a real one
            case.query["before"] = entries[int(before, 16) % len(entries)]
    token = _authorize(case)
    headers = {"Origin": ORIGIN}
    response = case.call(base_url=_base_url(function_urls, case.path), session=_session, headers=headers,
                         timeout=60)
    _counts[f"{case.method} {case.path}"] += 1
    _tokens[token] += 1
    case.validate_response(response, checks=CHECKS, headers=headers)
    if response.headers.get("Content-Type", "").startswith("application/json"):
        assert response.headers.get("Access-Control-Allow-Origin") == ORIGIN, response.headers
    if token != "valid" and case.method != "OPTIONS":  # 401 unless routing refused it first (404, 405)
        assert response.status_code in (401, 404, 405), (token, response.status_code, response.text[:300])
