"""The secure defaults of the tritonserver command line, checked against a real server (the local one)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tritongen.runtime.command import ADMIN_HEADER

pytestmark = pytest.mark.server


def _post(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=b"{}", method="POST", headers={"Content-Type": "application/json",
                                                                          **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_default_server_refuses_runtime_model_loading(tiny_server):
    base = f"http://{tiny_server.http_url}/v2/repository"
    status, body = _post(f"{base}/models/ensemble/load")
    assert status >= 400 and "not allowed" in json.loads(body)["error"]
    status, body = _post(f"{base}/models/ensemble/unload")
    assert status >= 400


def test_explicit_model_control_needs_the_admin_key(tiny_repo, server_factory):
    record = server_factory(tiny_repo, "test-explicit", model_control="explicit", admin_key="s3cret-key")
    base = f"http://{record.http_url}/v2/repository"
    status, _ = _post(f"{base}/index")
    assert status == 403
    status, _ = _post(f"{base}/index", {ADMIN_HEADER: "wrong"})
    assert status == 403
    status, body = _post(f"{base}/index", {ADMIN_HEADER: "s3cret-key"})
    assert status == 200 and "ensemble" in body
    # Inference is not an admin API: it needs no key.
    with urllib.request.urlopen(f"http://{record.http_url}/v2/health/ready", timeout=10) as resp:
        assert resp.status == 200
