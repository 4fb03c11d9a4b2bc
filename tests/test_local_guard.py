"""The local services answer Tether's clients, not web pages: Host allow-list, Origin check, a CSRF-proof fault route,
and an access key on every service when bound beyond loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from tether_services.faults import Faults
from tether_services.guard import split_host
from tether_services.server import LocalServices


def test_a_rebound_host_is_refused(local_services: LocalServices) -> None:
    base = local_services.base_url
    for path in ("/health", "/clipzy/api/v1/jobs", "/_faults"):
        reply = httpx.get(f"{base}{path}", headers={"Host": "attacker.example"})
        assert reply.status_code == 421, path
        assert "Host" in reply.json()["message"]
    # the same name with another port is another origin too
    assert httpx.get(f"{base}/health", headers={"Host": "127.0.0.1:1"}).status_code == 421
    for host in (f"localhost:{local_services.port}", f"127.0.0.1:{local_services.port}"):
        assert httpx.get(f"{base}/health", headers={"Host": host}).status_code == 200


def test_web_pages_cannot_drive_the_services(local_services: LocalServices, faults: Faults) -> None:
    base = local_services.base_url
    hostile = {"Origin": "http://attacker.example", "Content-Type": "text/plain"}
    # the "simple" POST a page sends without a preflight
    reply = httpx.post(f"{base}/_faults", content='{"kind": "status", "status": 500}', headers=hostile)
    assert reply.status_code == 403 and "web pages" in reply.json()["message"]
    assert "access-control-allow-origin" not in reply.headers
    assert httpx.get(f"{base}/autopilot/api/jobs", headers={"Origin": "http://attacker.example"}).status_code == 403
    assert httpx.get(f"{base}/health", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    # no Origin at all, but not JSON either: the form a page could send is refused as well
    plain = httpx.post(f"{base}/_faults", content='{"kind": "status", "status": 500}',
                       headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415
    assert faults.list() == []
    # the services' own origin and plain clients still work
    own = httpx.post(f"{base}/_faults", json={"kind": "slow", "delay": 0.01, "path": "/nothing$"},
                     headers={"Origin": base})
    assert own.status_code == 201 and len(faults.list()) == 1


def test_beyond_loopback_every_service_wants_the_access_key(tmp_path: Path) -> None:
    with LocalServices("0.0.0.0", port=0, state_dir=tmp_path / "s", services=["clipzy", "autopilot", "farm"],
                       workers=1) as services:
        key = services.access_key
        assert key and len(key) >= 24
        base = f"http://127.0.0.1:{services.port}"
        # Clipzy, open on loopback, and the well-known local keys no longer let anyone in
        assert httpx.get(f"{base}/clipzy/api/v1/jobs").status_code == 401
        assert httpx.get(f"{base}/autopilot/api/jobs", headers={"x-api-key": "local-autopilot-key"}).status_code == 401
        login = {"email": "artist@tether.local", "password": "tether-local"}
        assert httpx.post(f"{base}/farm/api/auth/login", json=login).status_code == 401
        assert httpx.get(f"{base}/_faults").status_code == 401
        # the key does; any Host name is fine out there
        assert httpx.get(f"{base}/clipzy/api/v1/jobs", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert httpx.get(f"{base}/autopilot/api/jobs", headers={"x-api-key": key}).status_code == 200
        assert httpx.post(f"{base}/farm/api/auth/login", json={**login, "password": key}).status_code == 200
        assert httpx.get(f"{base}/_faults", headers={"X-Tether-Access-Key": key,
                                                     "Host": "render-box.studio.lan"}).status_code == 200
    with pytest.raises(ValueError, match="empty"):
        LocalServices("0.0.0.0", port=0, access_key=" ")


def test_serve_beyond_loopback_warns_loudly(tmp_path: Path) -> None:
    env = {**os.environ, "TETHER_SERVE_ACCESS_KEY": "studio-key-123456"}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("tether")), "serve", "--host", "0.0.0.0", "--port", "0",
                             "--temporary"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        while line and "WARNING" not in line:
            line = proc.stderr.readline()
        rest = proc.stderr.readline()
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
    assert "WARNING: listening on 0.0.0.0" in line
    assert "studio-key-123456" in rest


@pytest.mark.parametrize("value, expected", [("127.0.0.1:8765", ("127.0.0.1", 8765)), ("[::1]:80", ("::1", 80)),
                                             ("LOCALHOST", ("localhost", None)), ("a:b", ("a", -1))])
def test_split_host(value: str, expected: tuple) -> None:
    assert split_host(value) == expected
