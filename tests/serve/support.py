"""Raw HTTP for the tests that send what an official client never would (broken JSON, huge bodies)."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit


def request(
    base_url: str, method: str, path: str, body: bytes | str | dict[str, Any] | None = None, headers: dict | None = None
) -> tuple[int, Any, dict[str, str]]:
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    data = json.dumps(body).encode() if isinstance(body, dict) else body.encode() if isinstance(body, str) else body
    sent = {"content-type": "application/json", **(headers or {})}
    try:
        connection.request(method, parts.path.rstrip("/") + path, body=data, headers=sent)
        response = connection.getresponse()
        raw = response.read()
        try:
            payload: Any = json.loads(raw)
        except ValueError:
            payload = raw.decode(errors="replace")
        return response.status, payload, {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()
