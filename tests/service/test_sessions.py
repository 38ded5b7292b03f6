"""routes/sessions.py and PortSessions: token-guarded port sessions that never leave a note sounding."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.settings import Settings
from testing.waiting import wait_until

from .conftest import FakePorts, JackReceiver, unmatched_note_ons  # type: ignore[import-not-found]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def note_ons(port: Any) -> int:
    return sum(1 for m in port.messages if m.type == "note_on" and m.velocity > 0)


def test_create_list_change_stop(client: TestClient, fake_ports: FakePorts) -> None:
    r = client.post("/api/sessions", json={"port_name": "test out", "seed": 4, "channel": 3, "key": "D"})
    assert r.status_code == 201, r.text
    created = r.json()
    sid, token = created["id"], created["token"]
    assert created["port_name"] == "test out" and created["key"] == "D" and len(token) >= 32
    assert created["channel"] == 3  # numbered 1..16 as DAWs show them: MIDI channel byte 2
    listed = client.get("/api/sessions").json()
    assert [s["id"] for s in listed] == [sid] and "token" not in listed[0]
    port = fake_ports.opened["test out"]
    assert wait_until(lambda: note_ons(port) > 0)

    change = {"temperature": 0.7, "density": 4, "key": None}
    assert client.patch(f"/api/sessions/{sid}", json=change).status_code == 401
    assert client.patch(f"/api/sessions/{sid}", json=change, headers=bearer("x" * 32)).status_code == 403
    r = client.patch(f"/api/sessions/{sid}", json=change, headers=bearer(token))
    assert r.status_code == 200, r.text
    assert (r.json()["temperature"], r.json()["density"], r.json()["key"]) == (0.7, 4, None)
    assert client.patch(f"/api/sessions/{sid}", json={"temperature": 20}, headers=bearer(token)).status_code == 422

    assert client.delete(f"/api/sessions/{sid}").status_code == 401
    assert client.delete(f"/api/sessions/{sid}", headers=bearer("nope")).status_code == 403
    assert client.delete(f"/api/sessions/{sid}", headers=bearer(token)).status_code == 204
    assert port.closed and not unmatched_note_ons(port.messages)  # all notes off
    assert all(m.channel == 2 for m in port.messages if hasattr(m, "channel"))
    assert client.get("/api/sessions").json() == []
    assert client.get(f"/api/sessions/{sid}").status_code == 404
    assert wait_until(lambda: client.app.state.runtime.engine.active == 0, timeout_s=5)  # at the engine's next pass


def test_pause_silences_and_resume_continues(client: TestClient, fake_ports: FakePorts) -> None:
    created = client.post("/api/sessions", json={"port_name": "p"}).json()
    port, auth = fake_ports.opened["p"], bearer(created["token"])
    assert wait_until(lambda: note_ons(port) > 0)
    r = client.patch(f"/api/sessions/{created['id']}", json={"paused": True}, headers=auth)
    assert r.json()["paused"] is True
    assert not unmatched_note_ons(port.messages)
    client.patch(f"/api/sessions/{created['id']}", json={"paused": False}, headers=auth)
    count = note_ons(port)
    assert wait_until(lambda: note_ons(port) > count)
    client.delete(f"/api/sessions/{created['id']}", headers=auth)


def test_an_abandoned_session_stops_itself_with_all_notes_off(make_client, settings: Settings,
                                                              fake_ports: FakePorts) -> None:
    c = make_client(settings.model_copy(update={"session_lease_s": 2.0}))
    created = c.post("/api/sessions", json={"port_name": "orphan", "seed": 1}).json()  # its music starts at once
    port = fake_ports.opened["orphan"]
    assert wait_until(lambda: note_ons(port) > 0, timeout_s=1.5)
    # the owner goes away without a word: the lease runs out
    assert c.get("/api/sessions").json() != []
    assert wait_until(lambda: c.get("/api/sessions").json() == [], timeout_s=5)
    assert wait_until(lambda: port.closed, timeout_s=5)  # unlisted first, then stopped and closed
    assert not unmatched_note_ons(port.messages)
    # the engine drops a closed stream at its next pass, which may come a lookahead later
    assert wait_until(lambda: c.app.state.runtime.engine.active == 0, timeout_s=5)
    assert c.get(f"/api/sessions/{created['id']}").status_code == 404


def test_a_session_that_reaches_its_length_ends_cleanly(client: TestClient, fake_ports: FakePorts) -> None:
    client.post("/api/sessions", json={"port_name": "short", "max_seconds": 0.5})
    port = fake_ports.opened["short"]
    assert wait_until(lambda: client.get("/api/sessions").json() == [], timeout_s=5)
    assert port.closed and not unmatched_note_ons(port.messages)


def test_limits_and_bad_requests(client: TestClient) -> None:
    made = [client.post("/api/sessions", json={"port_name": f"s{i}"}) for i in range(2)]
    assert [r.status_code for r in made] == [201, 201]
    assert client.post("/api/sessions", json={"port_name": "s3"}).status_code == 429
    assert client.post("/api/sessions", json={"port_name": "../x"}).status_code == 422
    assert client.post("/api/sessions", json={"channel": 17}).status_code == 422
    assert client.post("/api/sessions", json={"channel": 0}).status_code == 422
    for r in made:
        body = r.json()
        client.delete(f"/api/sessions/{body['id']}", headers=bearer(body["token"]))
    assert client.post("/api/sessions", json={"port_name": "s0"}).status_code == 201


def test_shutdown_stops_every_session(make_client, settings: Settings, fake_ports: FakePorts) -> None:
    c = make_client(settings)
    c.post("/api/sessions", json={"port_name": "a"})
    port = fake_ports.opened["a"]
    assert wait_until(lambda: note_ons(port) > 0)
    c.__exit__(None, None, None)  # the server stops mid-note
    assert port.closed and not unmatched_note_ons(port.messages)


@pytest.mark.jack
def test_a_session_plays_into_a_jack_port(make_client, settings: Settings, jack_server: object) -> None:
    from midi_io.ports import open_output

    c = make_client(settings, ports=lambda name, api: open_output(name, virtual=True, api="jack"))
    created = c.post("/api/sessions", json={"port_name": "perfrnn-svc-test", "api": "jack", "seed": 1})
    assert created.status_code == 201, created.text
    session = c.app.state.runtime.sessions.get(created.json()["id"])
    rx = JackReceiver(session.port.name)
    try:
        assert wait_until(lambda: any(m.type == "note_on" and m.velocity > 0 for m in rx.messages()), 10)
        r = c.delete(f"/api/sessions/{created.json()['id']}", headers=bearer(created.json()["token"]))
        assert r.status_code == 204
        time.sleep(0.2)
        assert not unmatched_note_ons(rx.messages())  # the owner stopped it: nothing left sounding
    finally:
        rx.close()
