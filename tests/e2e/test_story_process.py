"""The story function as deployed runs it: a functions-framework process, spoken to over real HTTP."""

from __future__ import annotations

import pytest
import requests

from tests.helpers import auth


@pytest.fixture
def story_url(db, function_urls):
    return function_urls["story"]


def test_post_and_get_over_http(story_url) -> None:
    url = f"{story_url}/campaigns/e2e/story"
    created = requests.post(url, json={"actor": "user", "text": "Hello, 世界"}, headers=auth(), timeout=30)
    assert created.status_code == 201, created.text
    assert created.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    listed = requests.get(url, headers=auth(), timeout=30)
    assert listed.status_code == 200
    assert listed.json()["entries"] == [created.json()["entry"]]
    bad = requests.post(url, data="nope", headers={**auth(), "Content-Type": "application/json"}, timeout=30)
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_argument"
