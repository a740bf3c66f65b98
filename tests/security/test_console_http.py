"""The console's sign-in, session and CSRF rules over plain HTTP (the browser test drives
the same in Chromium)."""

from __future__ import annotations

import pytest

from tests.security.conftest import Watched

pytestmark = pytest.mark.slow


def sign_in(w: Watched, key: str) -> tuple[int, str, dict[str, str]]:
    with w.client(None) as c:
        r = c.post("/console/login", json={"api_key": key}, headers={"Origin": w.url})
        return r.status_code, r.text, dict(r.headers)


def test_only_an_auditor_key_opens_the_console(watched: Watched) -> None:
    w = watched
    for key in (w.operator_key, w.holder_key, w.admin_key):
        status, page, headers = sign_in(w, key)
        assert status == 403
        assert "Only an auditor" in page
        assert "set-cookie" not in headers
    status, page, _ = sign_in(w, "bg_" + "z" * 52)
    assert status == 401 and "not valid" in page
    with w.client(w.operator_key) as c:  # a bearer key is no way in either
        assert c.get("/console/api/overview").status_code == 401
        assert "auditor" in c.get("/console").text.lower()
    with w.client(w.auditor_key) as c:
        entries = c.get(
            "/v1/audit/entries", params={"action": "console.login", "decision": "deny"}
        ).json()["items"]
        assert len(entries) == 3


def test_session_cookie_csrf_and_revocation(watched: Watched) -> None:
    w = watched
    status, _, headers = sign_in(w, w.auditor_key)
    assert status == 200
    cookie = headers["set-cookie"]
    for flag in ("HttpOnly", "SameSite=strict", "Path=/console"):
        assert flag.lower() in cookie.lower()
    assert headers["content-security-policy"].startswith("default-src 'none'")
    session_id = cookie.split(";")[0].split("=", 1)[1]
    with w.client(None) as c:
        c.cookies.set("blindgate_console", session_id)
        me = c.get("/console/api/session").json()
        assert me["principal"] == w.fed.auditor.principal_id
        feed = c.get("/console/api/feed", params={"limit": 5}).json()["items"]
        assert len(feed) == 5 and feed[0]["index"] > feed[-1]["index"]  # newest first
        after = c.get("/console/api/feed", params={"after": feed[1]["index"]}).json()["items"]
        assert [i["index"] for i in after][:1] == [feed[0]["index"]]  # then in log order
        nothing = c.get("/console/api/feed", params={"after": -1, "principal": "prn_nobody"})
        assert nothing.status_code == 200 and nothing.json()["items"] == []
        overview = c.get("/console/api/overview").json()
        assert {"alerts", "budgets", "sites", "checkpoint", "activity"} <= set(overview)
        assert overview["checkpoint"]["verified"] in (True, False)
        body = {"kind": "org", "target_id": w.fed.operator.org_id, "reason": "test"}
        # no CSRF token, a wrong one, or another origin: refused
        assert c.post("/console/api/suspensions", json=body).status_code == 403
        wrong = {"X-CSRF-Token": "nope"}
        assert c.post("/console/api/suspensions", json=body, headers=wrong).status_code == 403
        cross = {"X-CSRF-Token": me["csrf"], "Origin": "http://evil.example"}
        assert c.post("/console/api/suspensions", json=body, headers=cross).status_code == 403
        good = {"X-CSRF-Token": me["csrf"], "Origin": w.url}
        r = c.post("/console/api/suspensions", json=body, headers=good)
        assert r.status_code == 201, r.text
        lifted = c.post(
            f"/console/api/suspensions/{r.json()['id']}/lift",
            json={"reason": "test over"},
            headers=good,
        )
        assert lifted.status_code == 200
        # disabling the auditor (as revoking the key would) ends the session at once
        auditor = f"/v1/principals/{w.fed.auditor.principal_id}"
        with w.client(w.admin_key) as admin:
            assert admin.patch(auditor, json={"disabled": True}).is_success
            try:
                assert c.get("/console/api/overview").status_code == 401
            finally:
                assert admin.patch(auditor, json={"disabled": False}).is_success
        assert c.get("/console/api/overview").status_code == 401  # the session is gone
