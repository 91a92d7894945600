"""The console shows the carriers' connections (access relations) on the numbers page."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.conftest import Api


def test_console_lists_connections(as_viewer: FlaskClient, carrier: Api) -> None:
    page = as_viewer.get("/admin/numbers").get_data(as_text=True)
    assert "No carrier has recorded a connection yet." in page
    resp = carrier.post(
        "/connections", {"organization": "acme", "kind": "sms_port", "addresses": ["10690001"]}
    )
    assert resp.status_code == 201, resp.get_json()
    [made] = resp.get_json()["connections"]
    page = as_viewer.get("/admin/numbers").get_data(as_text=True)
    assert f'<tr id="connection-{made["id"]}">' in page
    row = page.split(f'<tr id="connection-{made["id"]}">')[1].split("</tr>")[0]
    assert "carrier" in row
    assert "acme" in row
    assert "10690001" in row
    assert "acme-cards" in row
    carrier.post(f"/connections/{made['id']}/withdraw", {})
    assert f'connection-{made["id"]}"' not in as_viewer.get("/admin/numbers").get_data(as_text=True)
    assert f'connection-{made["id"]}"' in as_viewer.get("/admin/numbers?all=1").get_data(
        as_text=True
    )
