"""A small HTTP client for OpenAI-compatible servers: JSON requests and server-sent event streams, with timeouts,
on the standard library (no extra dependency), and every failure turned into one line that names the server."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from core.errors import AuthError, NetworkError, NotFoundError

#: Largest JSON body accepted from a server (a model list, a completion): garbage never fills memory.
MAX_BODY = 16 * 1024 * 1024
#: Longest line in an event stream.
MAX_LINE = 1024 * 1024


def normalise_url(url: str) -> str:
    """``host:port`` or ``http://host:port/v1/`` → ``http://host:port`` (the API root, without ``/v1``)."""
    url = url.strip()
    if not url:
        raise NetworkError("The server address is empty.")
    if "://" not in url:
        url = "http://" + url
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise NetworkError(f"{url} is not an http(s) address.", hint="Use an address like http://192.168.1.5:8080.")
    path = parsed.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    return urllib.parse.urlunparse((parsed.scheme, parsed.netloc, path, "", "", ""))


class RemoteHTTP:
    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 30.0, label: str = "") -> None:
        self.base = normalise_url(base_url)
        self._key = api_key
        self.timeout = timeout
        self.label = label or self.base

    def _request(self, method: str, path: str, body: object | None) -> urllib.request.Request:
        headers = {"Accept": "application/json, text/event-stream", "User-Agent": "Hangar"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
            headers["x-api-key"] = self._key
        return urllib.request.Request(self.base + path, data=data, headers=headers, method=method)

    def _open(self, method: str, path: str, body: object | None, timeout: float | None = None) -> Any:
        try:
            return urllib.request.urlopen(self._request(method, path, body), timeout=timeout or self.timeout)
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc, path) from None
        except TimeoutError:
            raise NetworkError(
                f"{self.label} did not answer within {timeout or self.timeout:.0f} s.",
                hint="Check that the server is running, or raise the timeout of this connection.",
            ) from None
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NetworkError(
                f"{self.label} cannot be reached ({_short(reason)}).", hint="Check the address and that it is running."
            ) from None

    def _http_error(self, exc: urllib.error.HTTPError, path: str) -> Exception:
        detail = ""
        try:
            payload = json.loads(exc.read(64 * 1024) or b"{}")
            error = payload.get("error", payload) if isinstance(payload, dict) else payload
            detail = error.get("message", "") if isinstance(error, dict) else str(error)
        except (ValueError, OSError):
            pass
        detail = _short(detail) if detail else exc.reason
        if exc.code in (401, 403):
            return AuthError(f"{self.label} refused the API key ({exc.code}: {detail}).")
        if exc.code == 404:
            return NotFoundError(f"{self.label} has no {path} ({detail}).")
        return NetworkError(f"{self.label} answered {exc.code} to {path}: {detail}")

    def get_json(self, path: str, timeout: float | None = None) -> Any:
        with self._open("GET", path, None, timeout) as response:
            return _parse_json(response.read(MAX_BODY + 1), self.label, path)

    def post_json(self, path: str, body: object, timeout: float | None = None) -> Any:
        with self._open("POST", path, body, timeout) as response:
            return _parse_json(response.read(MAX_BODY + 1), self.label, path)

    def stream(self, path: str, body: object, should_stop: Callable[[], bool] = lambda: False) -> Iterator[Any]:
        """POST and yield each ``data:`` event of a server-sent event stream, parsed as JSON, until ``[DONE]``.

        A server that answers plain JSON instead of a stream yields that one object."""
        response = self._open("POST", path, body)
        try:
            content_type = response.headers.get("Content-Type", "")
            if "text/event-stream" not in content_type:
                yield _parse_json(response.read(MAX_BODY + 1), self.label, path)
                return
            while not should_stop():
                try:
                    line = response.readline(MAX_LINE)
                except TimeoutError:
                    raise NetworkError(f"{self.label} stopped sending within {self.timeout:.0f} s.") from None
                except OSError as exc:
                    raise NetworkError(f"{self.label} dropped the connection ({_short(exc)}).") from None
                if not line:
                    return
                text = line.decode("utf-8", "replace").strip()
                if not text.startswith("data:"):
                    continue
                data = text[len("data:") :].strip()
                if data == "[DONE]":
                    return
                yield _parse_json(data.encode("utf-8"), self.label, path)
        finally:
            response.close()


def _parse_json(raw: bytes, label: str, path: str) -> Any:
    if len(raw) > MAX_BODY:
        raise NetworkError(f"{label} sent more than {MAX_BODY // (1024 * 1024)} MB for {path}; that is not an answer.")
    try:
        return json.loads(raw)
    except ValueError:
        raise NetworkError(f"{label} answered {path} with something that is not JSON: {_short(raw)!r}") from None


def _short(value: object, limit: int = 120) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
