"""The inbox's routes on ApprovalsFunction: the page shell and its files, public and free of data."""

from __future__ import annotations

import pytest


def test_the_inbox_page_needs_no_token_and_holds_no_approval(api, monkeypatch):
    # Given a paused run, under JWT authentication
    assert api.start(user_id="dana").json()["status"] == "PAUSED"
    monkeypatch.setenv("SIGNOFF_AUTH_MODE", "jwt")

    # When the page is fetched without a token
    page = api.call("GET", "/inbox")

    # Then it answers with the shell under its policy, and nothing of the run is in it
    assert page.status == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "require-trusted-types-for 'script'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    for secret in ("delete_records", "dana", "users"):
        assert secret not in page.text


@pytest.mark.parametrize(("name", "kind"), [("inbox.js", "text/javascript"), ("inbox.css", "text/css")])
def test_the_inbox_files_are_served_by_name(api, name, kind):
    response = api.call("GET", "/inbox/{asset}", {"asset": name})

    assert response.status == 200
    assert response.headers["content-type"].startswith(kind)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert len(response.text) > 1000


@pytest.mark.parametrize("name", ["app.py", "..", "%2e%2e%2fconfig.py", "inbox.js.map"])
def test_any_other_name_is_not_found(api, name):
    response = api.call("GET", "/inbox/{asset}", {"asset": name})

    assert response.status == 404
    assert "detail" in response.json()
