"""Fixtures of the fit feature: a minimal Hub-like HTTP server on 127.0.0.1 that honours Range requests.

It serves ``/{owner}/{name}/resolve/{revision}/{path}`` from a folder per repository (and the file list at
``/api/models/{owner}/{name}/tree/{revision}``), counts the bytes it sends
(tests check that only headers travel), and can demand a token or ignore Range like a plain server would.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_TREE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)/?$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass
class RangeServer:
    url: str
    root: Path
    bytes_sent: int = 0
    requests: list[str] = field(default_factory=list)
    token: str | None = None  # when set, requests must carry "Authorization: Bearer <token>"
    honour_range: bool = True

    def repo_dir(self, repo_id: str) -> Path:
        folder = self.root / repo_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def _handler(server: RangeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            from urllib.parse import unquote

            server.requests.append(self.path)
            tree = _TREE.match(unquote(self.path.split("?", 1)[0]))
            if tree:
                self._tree(tree.group("repo"))
                return
            match = _RESOLVE.match(unquote(self.path))
            if server.token and self.headers.get("Authorization") != f"Bearer {server.token}":
                self.send_error(401)
                return
            path = server.root / match.group("repo") / match.group("path") if match else None
            if path is None or not path.is_file() or ".." in match.group("path"):
                self.send_error(404)
                return
            size = path.stat().st_size
            wanted = _RANGE.match(self.headers.get("Range", "")) if server.honour_range else None
            start, end = 0, size - 1
            if wanted:
                start = int(wanted.group(1))
                end = min(int(wanted.group(2)) if wanted.group(2) else size - 1, size - 1)
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(end + 1 - start))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            # Stream from disk (files may be multi-GB sparse stubs); a client that hangs up ends the reply.
            with path.open("rb") as handle:
                handle.seek(start)
                left = end + 1 - start
                try:
                    while left > 0:
                        chunk = handle.read(min(left, 1 << 20))
                        if not chunk:
                            break
                        server.bytes_sent += len(chunk)  # before writing: the client may read it at once
                        self.wfile.write(chunk)
                        left -= len(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        def _tree(self, repo: str) -> None:
            import json

            folder = server.root / repo
            if not folder.is_dir():
                self.send_error(404)
                return
            entries = [
                {"type": "file", "path": p.relative_to(folder).as_posix(), "size": p.stat().st_size, "oid": "0" * 40}
                for p in sorted(folder.rglob("*"))
                if p.is_file()
            ]
            body = json.dumps(entries).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture
def range_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RangeServer]:
    """A Range-capable file server posing as the Hub (HF_ENDPOINT points at it for the test)."""
    state = RangeServer(url="", root=tmp_path / "hub")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", state.url)
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
